#!/bin/sh
# Installs what the project needs from Debian (as root, only what is
# missing), then configures and builds into ./build.  Sourced by the
# README's two commands (pipelines/demo.sh and tests/run.sh).
#   sh tests/setup.sh [BUILD_DIR [MESON_SETUP_OPTION...]]
# (tests/run.sh asan|tsan: build-asan, build-tsan with their options)
set -eu
cd "$(dirname "$0")/.."

PACKAGES="meson ninja-build pkg-config gcc
  libglib2.0-dev libjson-glib-dev libopenblas-dev libkissfft-dev libsndfile1-dev libgdk-pixbuf-2.0-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-pocketsphinx libpocketsphinx-dev pocketsphinx-en-us flite
  gstreamer1.0-plugins-base-apps tuxpaint-stamps-default
  python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  python3 valgrind clang-format python3-numpy python3-onnx clang libclang-rt-14-dev
  mosquitto mosquitto-clients libmosquitto-dev"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  if [ "$(id -u)" != 0 ]; then
    echo "need root to install packages (run as root or: sudo apt-get install$missing)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q $missing
fi

build=${1:-build}
[ $# -eq 0 ] || shift
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=debugoptimized "$@"
fi
ninja -C "$build"

#!/bin/sh
# meson install into a temporary DESTDIR, then build a small C application
# against the installed mm-gst.pc (headers mm.h and gstmmmeta.h, the meta
# library, libmm) and run it with the installed plugin: it must read every
# decision's MmClassificationMeta with its provenance.
# SPDX-License-Identifier: LGPL-2.1-or-later
#   installed-app.sh BUILD_DIR SOURCE_DIR
set -eu
# tests/run.sh asan|tsan: this checks the installed files and linking
# against them; the plugin's code runs under the sanitizers in the element
# tests
if [ -n "${MM_SANITIZER:-}" ]; then
  echo "skipped under $MM_SANITIZER (an uninstrumented application)"
  exit 77
fi
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; exit 1; }
pc=$(find "$tmp/root" -name mm-gst.pc | head -1)
[ -n "$pc" ] || { echo "mm-gst.pc not installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
plugindir=$libdir/gstreamer-1.0
[ -f "$plugindir/libgstmm.so" ] || { echo "plugin not installed in $plugindir"; exit 1; }
# the .pc as the application sees it, with the prefix moved under DESTDIR
mkdir "$tmp/pc"
prefix=$(sed -n 's/^prefix=//p' "$pc")
sed "s|^prefix=.*|prefix=$tmp/root$prefix|" "$pc" >"$tmp/pc/mm-gst.pc"
export PKG_CONFIG_PATH="$tmp/pc"
flags=$(pkg-config --cflags --libs mm-gst)
echo "pkg-config: $flags"
cc -o "$tmp/app" "$src/tests/check/installed_app.c" $flags
cat >"$tmp/cues.srt" <<'SRT'
1
00:00:00,000 --> 00:00:01,000
the news today

2
00:00:02,000 --> 00:00:02,500
a guitar song and piano music
SRT
LD_LIBRARY_PATH="$libdir" GST_PLUGIN_PATH_1_0="$plugindir" GST_PLUGIN_PATH="$plugindir" \
  GST_REGISTRY="$tmp/registry.bin" "$tmp/app" "$src/tests/fixtures/tiny.safetensors" "$tmp/cues.srt"

#!/bin/sh
# Fuzz the model loader for SECONDS (default 300) with libFuzzer, seeded with
# the committed fixture models.  Needs clang and libclang-rt-14-dev.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-300}
command -v clang >/dev/null || apt-get install -y clang libclang-rt-14-dev
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dplugins=disabled
ninja -C build-fuzz tests/fuzz/fuzz-model
corpus=build-fuzz/fuzz-corpus
mkdir -p "$corpus"
cp tests/fixtures/*.safetensors "$corpus"/ 2>/dev/null || true
build-fuzz/tests/fuzz/fuzz-model -max_total_time="$SECONDS_TO_RUN" -max_len=262144 -rss_limit_mb=4096 \
  -dict=tests/fuzz/safetensors.dict "$corpus"

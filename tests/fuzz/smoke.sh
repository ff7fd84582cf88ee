#!/bin/sh
# Fuzz smoke run (meson test fuzz-smoke): builds the targets with clang,
# libFuzzer, ASan and UBSan (fatal) in BUILD_ROOT/fuzz-smoke (once), then
# fuzzes each for FUZZ_SMOKE_SECONDS (default 20): fuzz-model from every
# repository model file up to 128 KB (graph fixtures included),
# fuzz-preprocess from tests/fuzz/seeds-preprocess.  Exit 77
# (skipped) without clang or its libFuzzer runtime (Debian: clang,
# libclang-rt-14-dev).  Any crash, leak, sanitizer report, timeout or
# out-of-memory fails it; the reproducer is left in BUILD_ROOT/fuzz-smoke/.
# Usage: sh tests/fuzz/smoke.sh SOURCE_ROOT BUILD_ROOT
set -eu
src=$1
out=$2/fuzz-smoke
seconds=${FUZZ_SMOKE_SECONDS:-20}

if ! command -v clang > /dev/null; then
  echo "no clang: skipped"
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput (const unsigned char *d, unsigned long n) { return 0; }\n' \
  > "$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2> /dev/null; then
  echo "clang cannot link libFuzzer (libclang-rt-14-dev missing?): skipped"
  exit 77
fi

if [ ! -f "$out/build/build.ninja" ]; then
  CC=clang meson setup "$out/build" "$src" -Dfuzz=true -Dplugins=disabled > "$out.setup.log" 2>&1 \
    || { cat "$out.setup.log"; exit 1; }
fi
ninja -C "$out/build" tests/fuzz/fuzz-model tests/fuzz/fuzz-preprocess

max_len=$(sh "$src/tests/fuzz/seeds.sh" "$src" "$probe/seeds" 131072)
mkdir -p "$probe/corpus-model" "$probe/corpus-preprocess"
cat "$src/tests/fuzz/safetensors.dict" "$src/tests/fuzz/graph.dict" > "$probe/all.dict"
echo "fuzz-model: $(ls "$probe/seeds" | wc -l) seeds, max_len $max_len; $seconds s"
"$out/build/tests/fuzz/fuzz-model" -max_total_time="$seconds" -max_len="$max_len" \
  -rss_limit_mb=2048 -timeout=10 -dict="$probe/all.dict" -artifact_prefix="$out/" \
  -print_final_stats=1 "$probe/corpus-model" "$probe/seeds"
echo "fuzz-preprocess: $seconds s"
"$out/build/tests/fuzz/fuzz-preprocess" -max_total_time="$seconds" -max_len=16384 \
  -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$out/" -print_final_stats=1 \
  "$probe/corpus-preprocess" "$src/tests/fuzz/seeds-preprocess"

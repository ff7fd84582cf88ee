#!/bin/sh
# Fuzz TARGET (default fuzz-model; or fuzz-preprocess) for SECONDS (default
# 300) with libFuzzer (ASan and UBSan fatal).  fuzz-model is seeded with
# every model file of the repository, whole (-max_len is the largest seed:
# the bundled models are not truncated), and the safetensors + graph
# dictionaries; fuzz-preprocess with tests/fuzz/seeds-preprocess.  Needs
# clang and libclang-rt-14-dev.  The corpus grows in
# build-fuzz/corpus-TARGET; crashes land in build-fuzz/.  Extra arguments go
# to libFuzzer.  See tests/fuzz/README.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-300}
shift || true
command -v clang >/dev/null || apt-get install -y clang libclang-rt-14-dev
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dplugins=disabled
TARGET=${TARGET:-fuzz-model}
ninja -C build-fuzz "tests/fuzz/$TARGET"
corpus=build-fuzz/corpus-$TARGET
mkdir -p "$corpus"
if [ "$TARGET" = fuzz-model ]; then
  max_len=$(sh tests/fuzz/seeds.sh . build-fuzz/fuzz-seeds)
  cat tests/fuzz/safetensors.dict tests/fuzz/graph.dict > build-fuzz/fuzz.dict
  set -- -max_len="$max_len" -dict=build-fuzz/fuzz.dict "$@" "$corpus" build-fuzz/fuzz-seeds
else
  set -- -max_len=16384 "$@" "$corpus" tests/fuzz/seeds-preprocess
fi
"build-fuzz/tests/fuzz/$TARGET" -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=4096 -timeout=30 \
  -artifact_prefix=build-fuzz/ -print_final_stats=1 "$@"

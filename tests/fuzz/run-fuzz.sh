#!/bin/sh
# Fuzz the model loader for SECONDS (default 300) with libFuzzer (ASan and
# UBSan fatal), seeded with every model file of the repository, whole
# (-max_len is the largest seed: the bundled models are not truncated), and
# the safetensors + graph dictionaries.  Needs clang and libclang-rt-14-dev.
# The corpus grows in build-fuzz/fuzz-corpus; crashes land in build-fuzz/.
# See tests/fuzz/README.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-300}
shift || true
command -v clang >/dev/null || apt-get install -y clang libclang-rt-14-dev
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dplugins=disabled
ninja -C build-fuzz tests/fuzz/fuzz-model
corpus=build-fuzz/fuzz-corpus
mkdir -p "$corpus"
max_len=$(sh tests/fuzz/seeds.sh . build-fuzz/fuzz-seeds)
cat tests/fuzz/safetensors.dict tests/fuzz/graph.dict > build-fuzz/fuzz.dict
build-fuzz/tests/fuzz/fuzz-model -max_total_time="$SECONDS_TO_RUN" -max_len="$max_len" \
  -rss_limit_mb=4096 -timeout=30 -dict=build-fuzz/fuzz.dict -artifact_prefix=build-fuzz/ \
  -print_final_stats=1 "$@" "$corpus" build-fuzz/fuzz-seeds

#!/bin/sh
# Copies the fuzz seeds into DIR: every model file of the repository
# (tests/fixtures/**, models/) of at most MAX_BYTES (default: no limit),
# whole.  Prints the size of the largest, for -max_len.
# Usage: sh tests/fuzz/seeds.sh SOURCE_ROOT DIR [MAX_BYTES]
set -eu
src=$1
dir=$2
max=${3:-0}
mkdir -p "$dir"
largest=0
for f in $(find "$src/tests/fixtures" "$src/models" -name '*.safetensors' | sort); do
  size=$(wc -c < "$f")
  if [ "$max" -gt 0 ] && [ "$size" -gt "$max" ]; then
    continue
  fi
  cp "$f" "$dir/$(echo "${f#"$src"/}" | tr / _)"
  [ "$size" -gt "$largest" ] && largest=$size
done
echo "$largest"

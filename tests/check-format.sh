#!/bin/sh
# The tree has one formatter: clang-format with the project's .clang-format
# (GStreamer-like GNU layout).  Fails listing the files that differ; fix with
#   clang-format -i $(git ls-files '*.c' '*.h')
set -eu
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format missing (apt-get install clang-format)"; exit 1; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find lib plugins tests tools pipelines -name '*.[ch]')
bad=""
for f in $files; do
  clang-format --style=file "$f" | cmp -s - "$f" || bad="$bad $f"
done
if [ -n "$bad" ]; then
  echo "not formatted:$bad"
  echo "run: clang-format -i$bad"
  exit 1
fi
echo "formatting ok ($(echo $files | wc -w) files)"

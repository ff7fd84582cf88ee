#!/bin/sh
# demo.sh -- the README's first command: shows the product working.
#
#   sh pipelines/demo.sh          (as root on Debian 12)
#
# 1. sh tests/setup.sh: installs missing Debian packages, builds into ./build;
# 2. sh pipelines/make-sample.sh: makes build/sample/news.mkv, 30 s of six
#    topics (held-out Tux Paint stamps, their captions spoken by flite and,
#    on some segments, shown as subtitles);
# 3. sh pipelines/mkv-file.sh: the flagship pipeline over it with the bundled
#    model models/scenes.safetensors --
#      matroskademux -> imageenc / audioenc / textenc -> mmfuse -> mmdecode
#    and mmdecode's labels burned into the video by textoverlay -- printing
#    the timeline of decisions (time, label, confidence, the modalities that
#    were present, and the topic the sample really shows at that moment);
# 4. checks the annotated video with gst-discoverer-1.0 and prints its path.
# Environment: MODEL (another model file), BUILD is always ./build here.
set -eu
cd "$(dirname "$0")/.."
LOG=${TMPDIR:-/tmp}/mm-demo-setup.log
echo "== set-up: missing Debian packages, meson + ninja into ./build (log: $LOG)"
if ! sh tests/setup.sh >"$LOG" 2>&1; then
  tail -n 30 "$LOG" >&2
  echo "demo: set-up failed (end of $LOG above)" >&2
  exit 1
fi
SAMPLE=build/sample
sh pipelines/make-sample.sh "$SAMPLE" >/dev/null
echo "== sample media: $SAMPLE/news.mkv (topics in $SAMPLE/segments.tsv)"
cut -f 1-4,6 "$SAMPLE/segments.tsv" | sed 's/^/   /'
echo "== decisions (imageenc + audioenc + textenc -> mmfuse -> mmdecode)"
rm -f "$SAMPLE/annotated.mkv"
BUILD=build sh pipelines/mkv-file.sh "$SAMPLE/news.mkv" "$SAMPLE/annotated.mkv" \
  --truth "$SAMPLE/segments.tsv" --jsonl "$SAMPLE/decisions.jsonl"
if ! gst-discoverer-1.0 "$SAMPLE/annotated.mkv" > "$SAMPLE/annotated.txt" 2>&1 \
    || ! grep -q "video #" "$SAMPLE/annotated.txt"; then
  cat "$SAMPLE/annotated.txt" >&2
  echo "demo: the annotated video is not playable" >&2
  exit 1
fi
echo "== annotated video ($(grep -m1 Duration "$SAMPLE/annotated.txt" | sed 's/^ *//'), labels burned in):"
echo "$(pwd)/$SAMPLE/annotated.mkv"

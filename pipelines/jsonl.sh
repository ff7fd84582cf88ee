#!/bin/sh
# jsonl.sh -- decisions written as JSON lines, for other programs.
#
#   sh pipelines/jsonl.sh [IN.mkv [OUT.jsonl]]
#
# Runs the file pipeline of mkv-file.sh over IN (default
# build/sample/news.mkv) and writes one JSON object per decision to OUT
# (default build/sample/decisions.jsonl; "-" = stdout), then prints OUT's
# path.  Each line is mmdecode's mm-classification message, times in ns
# (null when unknown), "time" in seconds of stream time:
#
#   {"duration": 1000000000, "label": "animals", "labels": ["animals"],
#    "present": ["image", "audio", "text"], "pts": 1000000000,
#    "running-time": 1000000000, "score": 0.96, "scores": [0.96],
#    "stream-time": 1000000000, "time": 1.0}
#
# e.g.  jq -r 'select(.score > 0.5) | "\(.time) \(.label)"' build/sample/decisions.jsonl
#
# The pipeline is mkv-file.sh's (see there); the JSON lines come from the
# bus, written by pipelines/mmrun.py --jsonl.  Environment: as mkv-file.sh
# (BUILD, MODEL, DURATION, INTERVAL, TOPK, SMOOTHING, NO_TEXT, NO_AUDIO).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
IN=${1:-$HERE/../build/sample/news.mkv}
OUT=${2:-$HERE/../build/sample/decisions.jsonl}
sh "$HERE/mkv-file.sh" "$IN" --quiet --jsonl "$OUT"
[ "$OUT" = - ] || echo "$OUT"

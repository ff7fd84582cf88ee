#!/bin/sh
# speech-transcript.sh -- speech classified from its sound and its words.
#
#   sh pipelines/speech-transcript.sh [IN.wav] [mmrun options...]
#
# The audio (default build/sample/news.wav) feeds two encoders: audioenc
# hears it (log-mel + CNN), and mmtranscribe (pocketsphinx, this plugin)
# transcribes it, each utterance going as text to textenc; mmfuse fuses both
# every second (interval cadence: there is no video) and mmdecode decides.
# mmrun.py prints the transcripts next to the decisions.
#
# mmtranscribe stamps each utterance with the interval of the speech it
# comes from (PTS = its first word's start, duration to its last word's
# end), so a file runs as fast as the CPU allows: 30 s of speech in a few
# seconds, decoding included.  DURATION (seconds) uses only the first
# DURATION seconds of the file.  Environment: see pipelines/common.sh, plus
# INTERVAL (ns between decisions, default 1 s).  For a microphone, put
# pulsesrc (or `audiotestsrc is-live=true`) in place of filesrc ! wavparse:
# mmtranscribe answers the latency query, so mmfuse waits for the text.
# IN must be a WAV file: anything else stops the script at once, saying so.
#
#   gst-launch-1.0 filesrc location=IN.wav ! wavparse ! audioconvert ! audioresample ! \
#       audio/x-raw,format=S16LE,rate=16000,channels=1 ! tee name=t \
#     t. ! Q ! audioenc model=M ! f.sink_0 \
#     t. ! Q ! mmtranscribe ! Q ! textenc model=M ! f.sink_1 \
#     mmfuse name=f model=M interval=1000000000 ! mmdecode model=M ! fakesink
. "$(dirname "$0")/common.sh"

IN=$ROOT/build/sample/news.wav
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then IN=$1; shift; fi
[ -f "$IN" ] || { echo "speech-transcript.sh: $IN not found (sh pipelines/make-sample.sh)" >&2; exit 1; }
INTERVAL=${INTERVAL:-1000000000}
discover_tracks "$IN"
if [ "$CONTAINER" != audio/x-wav ] || [ "$N_AUDIO" = 0 ]; then
  echo "speech-transcript.sh: $IN is not a WAV file with an audio track" \
    "(${CONTAINER:-no container}, $N_AUDIO audio tracks): convert it first, e.g." \
    "gst-launch-1.0 uridecodebin uri=file:///path/IN ! audioconvert ! wavenc ! filesink location=IN.wav" >&2
  exit 1
fi

if [ "$DURATION" != 0 ]; then
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  "$PYTHON" - "$IN" "$TMP/in.wav" "$DURATION" <<'PY'
import sys, wave
src, dst, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
with wave.open(src) as r, wave.open(dst, "wb") as w:
    w.setparams(r.getparams())
    w.writeframes(r.readframes(int(seconds * r.getframerate())))
PY
  IN=$TMP/in.wav
fi

# shellcheck disable=SC2086
$MMRUN "$@" \
  filesrc location="\"$IN\"" ! wavparse ! audioconvert ! audioresample ! \
    audio/x-raw,format=S16LE,rate=16000,channels=1 ! tee name=t \
    t. ! $Q ! audioenc model="\"$MODEL\"" ! f.sink_0 \
    t. ! $Q ! mmtranscribe ! $Q ! textenc model="\"$MODEL\"" ! f.sink_1 \
  mmfuse name=f model="\"$MODEL\"" interval=$INTERVAL ! mmdecode model="\"$MODEL\"" ! \
    fakesink sync=false

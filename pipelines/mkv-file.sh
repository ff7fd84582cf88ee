#!/bin/sh
# mkv-file.sh -- classifies a file with video, audio and subtitles (MKV).
#
#   sh pipelines/mkv-file.sh [IN.mkv [ANNOTATED.mkv]] [mmrun options...]
#
# IN defaults to build/sample/news.mkv (pipelines/make-sample.sh).  With
# ANNOTATED, the video is written there (H.264 + Vorbis in Matroska) with the
# decisions burned in by textoverlay; without it only the decisions are
# printed.  mmrun options (pipelines/mmrun.py): --truth segments.tsv,
# --jsonl FILE, --stats FILE, --quiet.  Environment: see pipelines/common.sh
# (BUILD, MODEL, DURATION -- not with ANNOTATED), plus INTERVAL (frames per decision, default 15 =
# one decision per second of 15 fps video), TOPK (labels per decision, 1),
# SMOOTHING (mmdecode smoothing, 0), MAX_AGE (mmfuse max-age, 0), NO_TEXT=1 / NO_AUDIO=1 for files
# without a subtitle or an audio track.
#
# The pipeline (what gst-launch-1.0 would run; Q = a 5 s queue):
#
#   gst-launch-1.0 filesrc location=IN ! matroskademux name=d \
#     d.video_0 ! Q ! decodebin ! videoconvert ! tee name=v \
#       v. ! Q ! imageenc model=M interval=15 ! f.sink_0 \
#       v. ! Q ! txt.video_sink \
#     d.audio_0 ! Q ! decodebin ! audioconvert ! audioresample ! tee name=a \
#       a. ! Q ! audioenc model=M ! f.sink_1 \
#       a. ! Q ! audioconvert ! vorbisenc ! mux. \
#     d.subtitle_0 ! Q ! textenc model=M ! f.sink_2 \
#     mmfuse name=f model=M max-age=0 ! mmdecode model=M ! Q ! txt.text_sink \
#     textoverlay name=txt valignment=top halignment=left font-desc="Sans Bold 18" ! \
#       videoconvert ! video/x-raw,format=I420 ! x264enc ! h264parse ! \
#       matroskamux name=mux ! filesink location=ANNOTATED
#
# The first image pad drives mmfuse: one fused decision per encoded frame
# (every INTERVAL-th frame), with the audio window and the subtitle cue that
# cover it.  max-age=0 (env MAX_AGE, ns): a subtitle counts only while it is
# on screen, not for mmfuse's default second after it ends.
. "$(dirname "$0")/common.sh"

IN=$ROOT/build/sample/news.mkv
ANNOTATED=
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then IN=$1; shift; fi
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then ANNOTATED=$1; shift; fi
[ -f "$IN" ] || { echo "mkv-file.sh: $IN not found (sh pipelines/make-sample.sh)" >&2; exit 1; }
INTERVAL=${INTERVAL:-15}
TOPK=${TOPK:-1}
SMOOTHING=${SMOOTHING:-0}
MAX_AGE=${MAX_AGE:-0}

if [ -n "$ANNOTATED" ]; then
  if [ "$DURATION" != 0 ]; then
    # the --duration stop is a flushing seek after preroll, which a muxer
    # writing a file does not survive
    echo "mkv-file.sh: DURATION ignored when writing an annotated video" >&2
    DURATION=0
  fi
  VIDEO_OUT="v. ! $Q ! txt.video_sink"
  DECISIONS="txt.text_sink
    textoverlay name=txt valignment=top halignment=left font-desc=\"Sans Bold 18\"
      shaded-background=true ! videoconvert ! video/x-raw,format=I420 !
      x264enc speed-preset=veryfast ! h264parse !
      matroskamux name=mux ! filesink location=\"$ANNOTATED\""
  AUDIO_OUT="a. ! $Q ! audioconvert ! vorbisenc ! mux."
else
  VIDEO_OUT=
  DECISIONS="fakesink sync=false"
  AUDIO_OUT=
fi
AUDIO="d.audio_0 ! $Q ! decodebin ! audioconvert ! audioresample ! tee name=a
    a. ! $Q ! audioenc model=\"$MODEL\" ! f.sink_1
    $AUDIO_OUT"
TEXT="d.subtitle_0 ! $Q ! textenc model=\"$MODEL\" ! f.sink_2"
[ "${NO_AUDIO:-0}" = 1 ] && AUDIO=
[ "${NO_TEXT:-0}" = 1 ] && TEXT=

# shellcheck disable=SC2086
exec $MMRUN --duration "$DURATION" "$@" \
  filesrc location="\"$IN\"" ! matroskademux name=d \
    d.video_0 ! $Q ! decodebin ! videoconvert ! tee name=v \
      v. ! $Q ! imageenc model="\"$MODEL\"" interval=$INTERVAL ! f.sink_0 \
      $VIDEO_OUT \
    $AUDIO \
    $TEXT \
    mmfuse name=f model="\"$MODEL\"" max-age=$MAX_AGE ! mmdecode model="\"$MODEL\"" top-k=$TOPK smoothing=$SMOOTHING ! \
      $DECISIONS

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
# SMOOTHING (mmdecode smoothing, 0), MAX_AGE (mmfuse max-age, 0), PUBLISH
# (an element put after mmdecode, e.g. an mmpublish: see pipelines/mqtt.sh).
#
# Tracks: the script first reads IN's tracks (pipelines/mmrun.py --tracks,
# GstPbutils' discoverer) and builds a branch only for a track IN has: a
# file without subtitles runs without textenc, one without audio without
# audioenc (each says so on stderr), and one without video is classified
# from its audio and subtitles, one decision every PERIOD ns (default 1 s).
# NO_VIDEO / NO_AUDIO / NO_TEXT = 1 leave a track out, = 0 require it (the
# script stops at once, naming the missing track and the variable).  It
# also stops at once, with the reason, for a file that is not Matroska
# (or WebM), one it cannot read, one with none of the three tracks, and
# for ANNOTATED without a video track.
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
# With video, the first image pad drives mmfuse: one fused decision per encoded frame
# (every INTERVAL-th frame), with the audio window and the subtitle cue that
# cover it.  max-age=0 (env MAX_AGE, ns): a subtitle counts only while it is
# on screen, not for mmfuse's default second after it ends.
#
# The videoconvert after decodebin stays although imageenc (and textoverlay)
# take the decoders' I420, NV12 and YUY2: for those it negotiates
# passthrough and converts nothing, while a decoder giving another format
# (H.264 High 4:4:4 at 10 bits decodes to Y444_10LE, as the files of
# tests/pipelines/test_scripts.py do) would otherwise fail to negotiate.
. "$(dirname "$0")/common.sh"

IN=$ROOT/build/sample/news.mkv
ANNOTATED=
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then IN=$1; shift; fi
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then ANNOTATED=$1; shift; fi
[ -f "$IN" ] || { echo "mkv-file.sh: $IN not found (sh pipelines/make-sample.sh)" >&2; exit 1; }
INTERVAL=${INTERVAL:-15}
PERIOD=${PERIOD:-1000000000}
TOPK=${TOPK:-1}
SMOOTHING=${SMOOTHING:-0}
MAX_AGE=${MAX_AGE:-0}

discover_tracks "$IN"
case $CONTAINER in
  video/x-matroska | video/webm) ;;
  *) echo "mkv-file.sh: $IN is not a Matroska file (${CONTAINER:-no container}):" \
       "remux it first, e.g. with matroskamux" >&2
     exit 1 ;;
esac
HAVE_VIDEO=0 HAVE_AUDIO=0 HAVE_TEXT=0
use_track video "$N_VIDEO" NO_VIDEO && HAVE_VIDEO=1
use_track audio "$N_AUDIO" NO_AUDIO && HAVE_AUDIO=1
use_track subtitle "$N_TEXT" NO_TEXT && HAVE_TEXT=1
if [ $HAVE_VIDEO$HAVE_AUDIO$HAVE_TEXT = 000 ]; then
  echo "mkv-file.sh: nothing to classify in $IN: no video, audio or subtitle track in use" \
    "(it has $N_VIDEO video, $N_AUDIO audio, $N_TEXT subtitle tracks)" >&2
  exit 1
fi
if [ -n "$ANNOTATED" ] && [ $HAVE_VIDEO = 0 ]; then
  echo "mkv-file.sh: no video track in use in $IN: nothing to annotate (drop ANNOTATED" \
    "to print the decisions only)" >&2
  exit 1
fi

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
  DECISIONS="${PUBLISH:+$PUBLISH ! }fakesink sync=false"
  AUDIO_OUT=
fi
AUDIO="d.audio_0 ! $Q ! decodebin ! audioconvert ! audioresample ! tee name=a
    a. ! $Q ! audioenc model=\"$MODEL\" ! f.sink_1
    $AUDIO_OUT"
TEXT="d.subtitle_0 ! $Q ! textenc model=\"$MODEL\" ! f.sink_2"
VIDEO="d.video_0 ! $Q ! decodebin ! videoconvert ! tee name=v
    v. ! $Q ! imageenc model=\"$MODEL\" interval=$INTERVAL ! f.sink_0
    $VIDEO_OUT"
CADENCE=
[ $HAVE_VIDEO = 1 ] || { VIDEO=""; CADENCE="interval=$PERIOD"; }
[ $HAVE_AUDIO = 1 ] || AUDIO=
[ $HAVE_TEXT = 1 ] || TEXT=

# shellcheck disable=SC2086
exec $MMRUN --duration "$DURATION" "$@" \
  filesrc location="\"$IN\"" ! matroskademux name=d \
    $VIDEO \
    $AUDIO \
    $TEXT \
    mmfuse name=f model="\"$MODEL\"" max-age=$MAX_AGE $CADENCE ! mmdecode model="\"$MODEL\"" top-k=$TOPK smoothing=$SMOOTHING ! \
      $DECISIONS

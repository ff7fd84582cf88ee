#!/bin/sh
# live.sh -- live camera + microphone + captions, classified as they come.
#
#   DURATION=20 sh pipelines/live.sh [CAPTIONS.srt] [mmrun options...]
#
# Live sources (timestamps from the clock, nothing can wait): by default
# test sources standing in for a camera and a microphone, replace them with
# VIDEO_SRC="v4l2src" / AUDIO_SRC="pulsesrc" (any live source works;
# imageenc takes I420, NV12, YUY2 and packed RGB as they come, so a camera
# giving another format, UYVY or MJPEG say, needs "v4l2src ! videoconvert"
# or "v4l2src ! jpegdec").  The
# captions are an SRT file (default build/sample/news.srt) released in real
# time by clocksync, as a caption feed would deliver them: sparse, a cue now
# and then, nothing in between.  mmfuse runs in live mode: a stream that has
# nothing for time t (the captions, most of the time) is settled by the
# aggregator's deadline, so the decision for t comes at most the upstream
# latency + LATENCY (mmfuse's latency property, default 500 ms) late.
# mmrun.py prints each decision with its latency (how long after the media
# it describes began).  DURATION (seconds, default 20; 0 = until Ctrl-C)
# stops the run with EOS.  Environment: see pipelines/common.sh.
#
#   gst-launch-1.0 \
#     videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! \
#       queue ! imageenc model=M interval=15 ! f.sink_0 \
#     audiotestsrc is-live=true wave=pink-noise volume=0.05 ! audio/x-raw,rate=16000,channels=1 ! \
#       audioconvert ! queue ! audioenc model=M ! f.sink_1 \
#     filesrc location=CAPTIONS.srt ! subparse ! clocksync ! queue ! textenc model=M ! f.sink_2 \
#     mmfuse name=f model=M latency=500000000 max-age=0 ! mmdecode model=M ! fakesink
DURATION=${DURATION:-20}
. "$(dirname "$0")/common.sh"

CAPTIONS=$ROOT/build/sample/news.srt
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then CAPTIONS=$1; shift; fi
[ -f "$CAPTIONS" ] || { echo "live.sh: $CAPTIONS not found (sh pipelines/make-sample.sh)" >&2; exit 1; }
VIDEO_SRC=${VIDEO_SRC:-videotestsrc is-live=true pattern=ball}
AUDIO_SRC=${AUDIO_SRC:-audiotestsrc is-live=true wave=pink-noise volume=0.05}
LATENCY=${LATENCY:-500000000}
INTERVAL=${INTERVAL:-15}

# shellcheck disable=SC2086
exec $MMRUN --duration "$DURATION" "$@" \
  $VIDEO_SRC ! videoscale ! videorate ! \
    video/x-raw,width=320,height=240,framerate=15/1 ! \
    queue leaky=downstream max-size-buffers=30 ! imageenc model="\"$MODEL\"" interval=$INTERVAL ! f.sink_0 \
  $AUDIO_SRC ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 ! \
    queue ! audioenc model="\"$MODEL\"" ! f.sink_1 \
  filesrc location="\"$CAPTIONS\"" ! subparse ! clocksync ! queue ! textenc model="\"$MODEL\"" ! f.sink_2 \
  mmfuse name=f model="\"$MODEL\"" latency=$LATENCY max-age=0 ! mmdecode model="\"$MODEL\"" ! \
    fakesink sync=false

#!/bin/sh
# distributed.sh -- edge encoders and a central fuser in separate processes
# (or on separate hosts), joined by GStreamer's GDP over TCP.
#
#   sh pipelines/distributed.sh [IN.mkv]
#
# Each encoder runs in its own gst-launch-1.0 process next to the media and
# sends its embeddings (application/x-mm-embedding: float32 vectors with
# their PTS and duration, caps and events included) with `gdppay !
# tcpclientsink`; the fuser receives each stream with `tcpserversrc !
# gdpdepay` into mmfuse, decides with mmdecode and writes the decisions as
# JSON lines with mmpublish.  The decisions are the same as those of the
# one-process pipeline on the same file (tests/pipelines: distributed-*).
#
# ROLE (default all) says what this process is:
#   all     the fuser and one sender per track of IN, all on this machine
#           (each its own process); stops when the file has been classified
#   fuser   only the fuser: listens on LISTEN (default 127.0.0.1; 0.0.0.0 to
#           take senders from other hosts) at PORT, PORT+1, PORT+2 for the
#           image, audio and text senders of the modalities in TRACKS
#   image | audio | text
#           one sender: reads that track of IN, encodes it and sends it to
#           FUSER (default 127.0.0.1) at its port
# Other environment: PORT (default 5600), TRACKS (the modalities the fuser
# waits for, default: those IN has, or "image audio text" when ROLE=fuser),
# OUT (where the decisions go: a file, default - = stdout), STREAM_ID
# (mmpublish stream-id, default the file's name), and pipelines/common.sh's
# BUILD and MODEL.  Start the fuser first; a sender whose fuser is not
# listening stops at once with "Could not connect".
#
# On several hosts (each with this tree built, the same MODEL):
#   central$ ROLE=fuser LISTEN=0.0.0.0 OUT=decisions.jsonl sh pipelines/distributed.sh
#   edge1$   ROLE=image FUSER=central sh pipelines/distributed.sh cam.mkv
#   edge2$   ROLE=audio FUSER=central sh pipelines/distributed.sh cam.mkv
#   edge3$   ROLE=text  FUSER=central sh pipelines/distributed.sh cam.mkv
# This pairs by the embeddings' timestamps, which is right for files.  Live
# sources on different hosts also need a shared clock and base time
# (GstNetTimeProvider / GstNetClientClock), which gst-launch-1.0 cannot set:
# see the README, "Pipelines across machines".
. "$(dirname "$0")/common.sh"

IN=$ROOT/build/sample/news.mkv
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then IN=$1; shift; fi
ROLE=${ROLE:-all}
PORT=${PORT:-5600}
LISTEN=${LISTEN:-127.0.0.1}
FUSER=${FUSER:-127.0.0.1}
OUT=${OUT:--}
STREAM_ID=${STREAM_ID:-$(basename "$IN" .mkv)}
LAUNCH="gst-launch-1.0 -q"

port_of() {
  case $1 in
    image) echo "$PORT" ;;
    audio) echo $((PORT + 1)) ;;
    text) echo $((PORT + 2)) ;;
  esac
}

need_file() {
  [ -f "$IN" ] || { echo "distributed.sh: $IN not found (sh pipelines/make-sample.sh)" >&2; exit 1; }
}

# the tracks IN has, as modalities (discover_tracks: pipelines/common.sh)
tracks_of_file() {
  discover_tracks "$IN"
  _t=
  [ "$N_VIDEO" -gt 0 ] && _t="$_t image"
  [ "$N_AUDIO" -gt 0 ] && _t="$_t audio"
  [ "$N_TEXT" -gt 0 ] && _t="$_t text"
  [ -n "$_t" ] || { echo "distributed.sh: $IN has no video, audio or subtitle track" >&2; exit 1; }
  echo "$_t"
}

fuser() {
  _srcs= _k=0 _cadence=interval=1000000000
  for m in $TRACKS; do
    _srcs="$_srcs tcpserversrc host=$LISTEN port=$(port_of "$m") ! gdpdepay ! f.sink_$_k"
    _k=$((_k + 1))
    # with video, the frames drive the decisions (one per encoded frame)
    [ "$m" = image ] && _cadence=
  done
  # shellcheck disable=SC2086
  exec $LAUNCH $_srcs \
    mmfuse name=f model="$MODEL" max-age=0 $_cadence ! mmdecode model="$MODEL" ! \
    mmpublish location="$OUT" stream-id="$STREAM_ID" uri="file://$IN" ! fakesink sync=false
}

sender() {
  need_file
  _to="gdppay ! tcpclientsink sync=false host=$FUSER port=$(port_of "$1")"
  case $1 in
    image) _branch="d.video_0 ! queue ! decodebin ! videoconvert ! imageenc model=$MODEL interval=15" ;;
    audio) _branch="d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! audioenc model=$MODEL" ;;
    text) _branch="d.subtitle_0 ! queue ! textenc model=$MODEL" ;;
  esac
  # shellcheck disable=SC2086
  exec $LAUNCH filesrc location="$IN" ! matroskademux name=d $_branch ! $_to
}

# waits until the fuser listens on every port (binding one then fails)
wait_listening() {
  "$PYTHON" - "$LISTEN" "$@" <<'PY'
import socket, sys, time
host, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
end = time.monotonic() + 20
while ports and time.monotonic() < end:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, ports[0]))
            time.sleep(0.05)
        except OSError:
            ports.pop(0)
sys.exit(1 if ports else 0)
PY
}

case $ROLE in
  fuser)
    TRACKS=${TRACKS:-image audio text}
    fuser ;;
  image | audio | text)
    sender "$ROLE" ;;
  all)
    need_file
    TRACKS=${TRACKS:-$(tracks_of_file)}
    ( fuser ) &
    fuser_pid=$!
    _ports=
    for m in $TRACKS; do _ports="$_ports $(port_of "$m")"; done
    # shellcheck disable=SC2086
    if ! wait_listening $_ports; then
      kill "$fuser_pid" 2>/dev/null
      echo "distributed.sh: the fuser does not listen on ports$_ports (in use?)" >&2
      exit 1
    fi
    pids=
    for m in $TRACKS; do
      ( sender "$m" ) &
      pids="$pids $!"
    done
    status=0
    for p in $pids; do wait "$p" || status=1; done
    if [ $status != 0 ]; then
      echo "distributed.sh: a sender failed (see above); stopping the fuser" >&2
      kill "$fuser_pid" 2>/dev/null
    fi
    wait "$fuser_pid" || status=1
    exit $status ;;
  *)
    echo "distributed.sh: ROLE must be all, fuser, image, audio or text (not $ROLE)" >&2
    exit 1 ;;
esac

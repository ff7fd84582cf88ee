#!/bin/sh
# distributed.sh -- edge encoders and a central fuser in separate processes
# (or on separate hosts), joined by GStreamer's GDP over TCP (or over SRT).
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
# TRANSPORT=srt sends GDP over SRT (UDP) instead of TCP: the fuser listens
# with `srtsrc uri=srt://LISTEN:PORT?mode=listener`, each sender calls it
# with `srtsink` (run by mmrun.py --linger 1: srtsink closes its socket
# without SRT's linger, which would drop the end of the stream).  srtsrc is a
# live source, so the fuser is a live pipeline: mmfuse decides each moment
# once every input has it or at its deadline, and its latency (SRT_WAIT
# seconds, default 10) must cover the time from the fuser's start until the
# senders' first embeddings arrive -- start the senders within SRT_WAIT
# seconds of the fuser.  A sender with no fuser fails after SRT's 3 s
# connection timeout ("Connection does not exist").  The decisions are the
# same as over TCP (tests/pipelines: net-scripts-distributed-srt).
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
TRANSPORT=${TRANSPORT:-tcp}
SRT_WAIT=${SRT_WAIT:-10}
LAUNCH="gst-launch-1.0 -q"
case $TRANSPORT in
  tcp | srt) ;;
  *) echo "distributed.sh: TRANSPORT must be tcp or srt (not $TRANSPORT)" >&2; exit 1 ;;
esac
# the SRT URIs hold '?': no globbing of the unquoted pipeline words
set -f

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
  _srcs= _k=0 _cadence=interval=1000000000 _latency=
  # srtsrc is live: mmfuse waits up to SRT_WAIT s for inputs that are late
  [ "$TRANSPORT" = srt ] && _latency="latency=${SRT_WAIT}000000000"
  for m in $TRACKS; do
    if [ "$TRANSPORT" = srt ]; then
      _srcs="$_srcs srtsrc uri=srt://$LISTEN:$(port_of "$m")?mode=listener ! gdpdepay ! f.sink_$_k"
    else
      _srcs="$_srcs tcpserversrc host=$LISTEN port=$(port_of "$m") ! gdpdepay ! f.sink_$_k"
    fi
    _k=$((_k + 1))
    # with video, the frames drive the decisions (one per encoded frame)
    [ "$m" = image ] && _cadence=
  done
  # shellcheck disable=SC2086
  exec $LAUNCH $_srcs \
    mmfuse name=f model="$MODEL" max-age=0 $_cadence $_latency ! mmdecode model="$MODEL" ! \
    mmpublish location="$OUT" stream-id="$STREAM_ID" uri="file://$IN" ! fakesink sync=false
}

sender() {
  need_file
  _to="gdppay ! tcpclientsink sync=false host=$FUSER port=$(port_of "$1")"
  _run=$LAUNCH
  if [ "$TRANSPORT" = srt ]; then
    _to="gdppay ! srtsink sync=false uri=srt://$FUSER:$(port_of "$1")"
    _run="$MMRUN --quiet --linger 1"
  fi
  case $1 in
    image) _branch="d.video_0 ! queue ! decodebin ! videoconvert ! imageenc model=$MODEL interval=15" ;;
    audio) _branch="d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! audioenc model=$MODEL" ;;
    text) _branch="d.subtitle_0 ! queue ! textenc model=$MODEL" ;;
  esac
  # shellcheck disable=SC2086
  exec $_run filesrc location="$IN" ! matroskademux name=d $_branch ! $_to
}

# waits until the fuser listens on every port: TCP, binding one then fails;
# SRT (UDP), the port is in /proc/net/udp (a probe bind could take the
# port from srtsrc at that moment)
wait_listening() {
  "$PYTHON" - "$TRANSPORT" "$LISTEN" "$@" <<'PY'
import socket, sys, time
srt = sys.argv[1] == "srt"
host, ports = sys.argv[2], [int(p) for p in sys.argv[3:]]


def udp_bound(port):
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port
                       for line in list(f)[1:]):
                    return True
        except OSError:
            pass
    return False


def tcp_bound(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


end = time.monotonic() + 20
while ports and time.monotonic() < end:
    if (udp_bound if srt else tcp_bound)(ports[0]):
        ports.pop(0)
    else:
        time.sleep(0.05)
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

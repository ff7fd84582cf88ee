#!/bin/sh
# video-sensor.sh -- video and a numeric sensor log, fused.
#
#   sh pipelines/video-sensor.sh [IN.mkv [SENSORS.csv]] [mmrun options...]
#
# The video of IN (default build/sample/news.mkv, pipelines/make-sample.sh)
# goes to imageenc, a sensor log (CSV: `TIME,V1,...,VF`, TIME in seconds,
# a header line allowed) to numericenc; mmfuse pairs each encoded frame with
# the sensor sample valid at that time (a sample holds until the next one)
# and mmdecode decides, one decision per INTERVAL frames (default 15 = one
# a second at 15 fps).  mmrun.py prints the timeline (present: image+sensor).
#
# Without SENSORS.csv a first pass makes the log from IN's audio track:
# GStreamer's `level` every 250 ms, written as `t,rms_db,peak_db` (to
# SENSOR_LOG if set, else a temporary file), standing in for any logger
# that writes timestamped numbers.  Either way the log must have the
# model's features (2 for the default model).
#
# MODEL defaults to pipelines/video-sensor.safetensors, an ILLUSTRATIVE
# model (pipelines/video-sensor-model.py, assembled, not trained): the topic
# comes from the picture (the bundled scenes model's image encoder and
# head), and "narrated" or "quiet" from the sensor (louder or not than
# -30 dB RMS / -16 dB peak): labels like `food/narrated`.
#
#   gst-launch-1.0 \
#     filesrc location=IN ! matroskademux name=d \
#       d.video_0 ! Q ! decodebin ! videoconvert ! imageenc model=M interval=15 ! f.sink_0 \
#     filesrc location=SENSORS.csv ! numericenc model=M ! Q ! f.sink_1 \
#     mmfuse name=f model=M ! mmdecode model=M ! fakesink
#
# Environment: see pipelines/common.sh (BUILD, MODEL, PYTHON; DURATION is
# not supported here), plus INTERVAL, TOPK (labels per decision, 1),
# SENSOR_LOG.  IN must be Matroska with a video track, and, without
# SENSORS.csv, an audio track: otherwise the script stops at once saying
# which track is missing.
MODEL=${MODEL:-$(cd "$(dirname "$0")" && pwd)/video-sensor.safetensors}
. "$(dirname "$0")/common.sh"

IN=$ROOT/build/sample/news.mkv
CSV=
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then IN=$1; shift; fi
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then CSV=$1; shift; fi
[ -f "$IN" ] || { echo "video-sensor.sh: $IN not found (sh pipelines/make-sample.sh)" >&2; exit 1; }
[ -z "$CSV" ] || [ -f "$CSV" ] || { echo "video-sensor.sh: sensor log $CSV not found" >&2; exit 1; }
INTERVAL=${INTERVAL:-15}
TOPK=${TOPK:-1}
if [ "$DURATION" != 0 ]; then
  echo "video-sensor.sh: DURATION is not supported (the sensor log cannot seek); running to the end" >&2
fi

discover_tracks "$IN"
case $CONTAINER in
  video/x-matroska | video/webm) ;;
  *) echo "video-sensor.sh: $IN is not a Matroska file (${CONTAINER:-no container})" >&2
     exit 1 ;;
esac
if [ "$N_VIDEO" = 0 ]; then
  echo "video-sensor.sh: $IN has no video track (this script fuses video with a sensor log)" >&2
  exit 1
fi

if [ -z "$CSV" ]; then
  if [ "$N_AUDIO" = 0 ]; then
    echo "video-sensor.sh: $IN has no audio track to log the sensor values from:" \
      "give a sensor log (video-sensor.sh IN.mkv SENSORS.csv)" >&2
    exit 1
  fi
  if [ -n "${SENSOR_LOG:-}" ]; then
    CSV=$SENSOR_LOG
  else
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    CSV=$TMP/sensors.csv
  fi
  # first pass: the audio level of IN every 250 ms, as a CSV sensor log
  "$PYTHON" - "$IN" "$CSV" <<'PY' || exit 1
import math, sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
src, out = sys.argv[1], sys.argv[2]
p = Gst.parse_launch("filesrc name=src ! matroskademux name=d d.audio_0 ! queue ! decodebin ! "
                     "audioconvert ! level interval=250000000 ! fakesink sync=false")
p.get_by_name("src").set_property("location", src)
bus = p.get_bus()
p.set_state(Gst.State.PLAYING)
rows, err = [], None
while True:
    m = bus.timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS
                               | Gst.MessageType.ERROR)
    if m is None:
        err = "no end after 60 s"
        break
    if m.type == Gst.MessageType.ERROR:
        err = m.parse_error()[0].message
        break
    if m.type == Gst.MessageType.EOS:
        break
    s = m.get_structure()
    if s is None or s.get_name() != "level":
        continue
    t = s.get_value("stream-time")
    rms, peak = max(s.get_value("rms")), max(s.get_value("peak"))
    # an empty interval (at EOS) has no level: no sample
    if s.get_value("duration") > 0 and math.isfinite(rms) and math.isfinite(peak):
        rows.append("%.3f,%.2f,%.2f" % (t / 1e9, max(rms, -120.0), max(peak, -120.0)))
p.set_state(Gst.State.NULL)
if err or not rows:
    print("video-sensor.sh: first pass (audio level of %s) failed: %s" % (src, err or "no samples"),
          file=sys.stderr)
    sys.exit(1)
with open(out, "w", encoding="utf-8") as f:
    f.write("t,rms_db,peak_db\n" + "\n".join(rows) + "\n")
PY
fi

# shellcheck disable=SC2086
"$PYTHON" "$ROOT/pipelines/mmrun.py" "$@" \
  filesrc location="\"$IN\"" ! matroskademux name=d \
    d.video_0 ! $Q ! decodebin ! videoconvert ! imageenc model="\"$MODEL\"" interval=$INTERVAL ! f.sink_0 \
  filesrc location="\"$CSV\"" ! numericenc model="\"$MODEL\"" ! $Q ! f.sink_1 \
  mmfuse name=f model="\"$MODEL\"" ! mmdecode model="\"$MODEL\"" top-k=$TOPK ! \
    fakesink sync=false

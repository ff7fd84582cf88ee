#!/bin/sh
# mqtt.sh -- classifies a file (as mkv-file.sh) and publishes every decision
# to an MQTT broker with mmpublish.
#
#   sh pipelines/mqtt.sh [IN.mkv] [mmrun options...]
#
# The decisions are printed as by mkv-file.sh and each is published as one
# JSON object (the schema: README, "mmpublish") on TOPIC, at QoS QOS.
#
# Environment (besides mkv-file.sh's and pipelines/common.sh's):
#   MQTT_HOST  the broker.  Unset: the script starts a local mosquitto on
#              127.0.0.1:MQTT_PORT for the run, subscribes to TOPIC on it
#              (mosquitto_sub) and at the end says how many messages that
#              subscriber received (written to RECEIVED when set), then stops
#              both.  Set: publishes there; nothing is started.
#   MQTT_PORT  the broker's port (default 1883)
#   TOPIC      default mm/{stream-id}/decisions ({stream-id}: mmpublish's
#              placeholder, replaced by STREAM_ID)
#   STREAM_ID  default the file's name without .mkv
#   QOS        0, 1 or 2 (default 1: kept and resent across a broker restart,
#              within mmpublish's queue bound)
# Other mmpublish options (username, password, ca-file, client-id, retain,
# queue-size) are not wired here: use gst-launch-1.0 with mmpublish, or
# PUBLISH with mkv-file.sh directly.
#
# The pipeline is mkv-file.sh's with, after mmdecode:
#   mmpublish host=MQTT_HOST port=MQTT_PORT topic=TOPIC qos=QOS stream-id=STREAM_ID
. "$(dirname "$0")/common.sh"

IN=$ROOT/build/sample/news.mkv
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then IN=$1; shift; fi
[ -f "$IN" ] || { echo "mqtt.sh: $IN not found (sh pipelines/make-sample.sh)" >&2; exit 1; }
MQTT_HOST=${MQTT_HOST:-}
MQTT_PORT=${MQTT_PORT:-1883}
TOPIC=${TOPIC:-mm/\{stream-id\}/decisions}
STREAM_ID=${STREAM_ID:-$(basename "$IN" .mkv)}
QOS=${QOS:-1}
RECEIVED=${RECEIVED:-}

broker_pid= sub_pid= tmp=
cleanup() {
  [ -z "$sub_pid" ] || kill "$sub_pid" 2>/dev/null || true
  [ -z "$broker_pid" ] || kill "$broker_pid" 2>/dev/null || true
  [ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$MQTT_HOST" ]; then
  for tool in mosquitto mosquitto_sub; do
    command -v $tool >/dev/null || {
      echo "mqtt.sh: no MQTT_HOST given and $tool is missing (apt-get install mosquitto" \
        "mosquitto-clients), or set MQTT_HOST" >&2
      exit 1
    }
  done
  MQTT_HOST=127.0.0.1
  tmp=$(mktemp -d)
  mosquitto -p "$MQTT_PORT" >"$tmp/broker.log" 2>&1 &
  broker_pid=$!
  # the subscriber, with -d: its debug lines say when the subscription is in
  # place (SUBACK), so no decision is published before it
  filter=$(printf '%s' "$TOPIC" | sed "s/{stream-id}/$STREAM_ID/g")
  n=0
  until grep -q SUBACK "$tmp/sub.log" 2>/dev/null; do
    if [ -z "$sub_pid" ] || ! kill -0 "$sub_pid" 2>/dev/null; then
      if ! kill -0 "$broker_pid" 2>/dev/null; then
        echo "mqtt.sh: the local mosquitto did not start on port $MQTT_PORT:" \
          "$(cat "$tmp/broker.log") (set MQTT_PORT, or MQTT_HOST for another broker)" >&2
        exit 1
      fi
      stdbuf -oL mosquitto_sub -d -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t "$filter" >"$tmp/sub.log" 2>&1 &
      sub_pid=$!
    fi
    n=$((n + 1))
    if [ $n -gt 200 ]; then
      echo "mqtt.sh: could not subscribe to $filter on the local mosquitto" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "mqtt.sh: local mosquitto on 127.0.0.1:$MQTT_PORT, subscribed to $filter" >&2
fi

status=0
PUBLISH="mmpublish host=$MQTT_HOST port=$MQTT_PORT topic=$TOPIC qos=$QOS stream-id=$STREAM_ID" \
  sh "$ROOT/pipelines/mkv-file.sh" "$IN" "$@" || status=$?

if [ -n "$sub_pid" ]; then
  # mmpublish has flushed at EOS (every QoS 1 message acknowledged by the
  # broker); give the subscriber a moment to receive the last ones
  sleep 0.5
  kill "$sub_pid" 2>/dev/null || true
  wait "$sub_pid" 2>/dev/null || true
  sub_pid=
  grep '^{' "$tmp/sub.log" >"$tmp/received.jsonl" || true
  echo "mqtt.sh: $(wc -l <"$tmp/received.jsonl") messages received on $filter" >&2
  [ -z "$RECEIVED" ] || cp "$tmp/received.jsonl" "$RECEIVED"
fi
exit $status

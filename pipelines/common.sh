# common.sh -- sourced by the pipeline scripts; not run on its own.
#
# Environment (all optional):
#   BUILD     meson build directory holding the plugin   (default: build)
#   MODEL     model file                                 (default: models/scenes.safetensors)
#   DURATION  stop after this many seconds, 0 = run to the end / forever
#   PYTHON    Python with PyGObject                      (default: /usr/bin/python3)
# Sets ROOT, GST_PLUGIN_PATH, MMRUN (the runner: pipelines/mmrun.py) and Q (a
# queue deep enough for the encoders' look-ahead, see below); defines
# discover_tracks and use_track (scripts that read a user's file).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
MODEL=${MODEL:-$ROOT/models/scenes.safetensors}
case $MODEL in /*) ;; *) MODEL=$PWD/$MODEL ;; esac
DURATION=${DURATION:-0}
PYTHON=${PYTHON:-/usr/bin/python3}
MMRUN="$PYTHON $ROOT/pipelines/mmrun.py"
export GST_PLUGIN_PATH="$BUILD/plugins${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

if [ ! -f "$BUILD/plugins/libgstmm.so" ]; then
  echo "$(basename "$0"): no plugin in $BUILD/plugins (build first: sh tests/setup.sh)" >&2
  exit 1
fi
if [ ! -f "$MODEL" ]; then
  echo "$(basename "$0"): model $MODEL not found (set MODEL=...)" >&2
  exit 1
fi

# mmfuse decides about time t only once every other input has moved past t
# (the audio window after t, the next subtitle cue or a GAP).  mmfuse itself
# lets its pads queue that lookahead, so plain queues work up to it
# (tests/pipelines: design-line); but the annotated video branch waits in
# textoverlay for mmdecode's text of the same moment, so the queues here
# hold a few seconds of each stream.
Q="queue max-size-time=5000000000 max-size-bytes=0 max-size-buffers=0"

# discover_tracks FILE: sets CONTAINER (the file's format as a caps name, e.g.
# video/x-matroska, audio/x-wav) and
# N_VIDEO, N_AUDIO, N_TEXT (how many tracks of each kind FILE has), from
# GstPbutils' discoverer (mmrun.py --tracks); stops the script with the
# reason when FILE cannot be read as media.  A branch linked to a track the
# file does not have would wait for it forever, so the scripts look first.
discover_tracks() {
  _tracks=$($MMRUN --tracks "$1") || {
    echo "$(basename "$0"): cannot read the tracks of $1 (see above)" >&2
    exit 1
  }
  eval "$_tracks"
}

# use_track KIND COUNT VAR: whether to build the branch of a track kind
# ("video", "audio", "subtitle"): VAR (NO_VIDEO, NO_AUDIO, NO_TEXT) = 1 skips
# it, 0 requires it (the script stops at once, naming the track and VAR,
# when the file has none), unset uses it when the file has one and says so
# on stderr when it does not.  Returns 0 to build the branch.
use_track() {
  _want=$(eval "echo \"\${$3:-}\"")
  if [ "$_want" = 1 ]; then
    return 1
  fi
  if [ "$2" -gt 0 ]; then
    return 0
  fi
  if [ "$_want" = 0 ]; then
    echo "$(basename "$0"): $IN has no $1 track, and $3=0 requires one" \
      "(unset $3, or $3=1, to run without it)" >&2
    exit 1
  fi
  echo "$(basename "$0"): $IN has no $1 track: running without the $1 branch (as $3=1)" >&2
  return 1
}

# common.sh -- sourced by the pipeline scripts; not run on its own.
#
# Environment (all optional):
#   BUILD     meson build directory holding the plugin   (default: build)
#   MODEL     model file                                 (default: models/scenes.safetensors)
#   DURATION  stop after this many seconds, 0 = run to the end / forever
#   PYTHON    Python with PyGObject                      (default: /usr/bin/python3)
# Sets ROOT, GST_PLUGIN_PATH, MMRUN (the runner: pipelines/mmrun.py) and Q (a
# queue deep enough for the encoders' look-ahead, see below).
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

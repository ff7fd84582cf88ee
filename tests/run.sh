#!/bin/sh
# The project's test command: installs what is missing, builds, runs every
# test (libmm unit + PyTorch parity, element tests, pipelines, examples,
# formatting) and ends with meson's summary.
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
exec meson test -C build --print-errorlogs --num-processes 2 "$@"

#!/bin/sh
# The project's test command: installs what is missing, builds, runs every
# test (libmm unit + PyTorch parity + valgrind, element tests, pipelines,
# examples, formatting) and ends with meson's summary, then one plain line
# "N passed, N failed, N skipped" counted from meson's JSON test log.
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
/usr/bin/python3 - build/meson-logs/testlog.json <<'PY' || true
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1], encoding="utf-8"):
    result = json.loads(line).get("result", "")
    if result in ("OK", "EXPECTEDFAIL"):
        counts["passed"] += 1
    elif result == "SKIP":
        counts["skipped"] += 1
    else:
        counts["failed"] += 1
print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
PY
exit $status

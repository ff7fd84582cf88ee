"""models/mmfile.py writes strict JSON (TAP): a document with NaN or
Infinity is refused before any file is written; a finite one round-trips."""
import atexit
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
import numpy as np  # noqa: E402

import mmfile  # noqa: E402

cases = []


def case(name):
    def wrap(f):
        cases.append((name, f))
        return f
    return wrap


tmp = tempfile.mkdtemp(prefix="mm-mmfile-")


@case("finite document round-trips")
def finite():
    path = os.path.join(tmp, "ok.safetensors")
    doc = {"version": 1, "components": {}, "x": [1.5, -2.0, 1e-30]}
    mmfile.save(path, {"a": np.arange(3, dtype=np.float32)}, doc)
    tensors, back = mmfile.load(path)
    assert back == doc, back
    assert tensors["a"].tolist() == [0.0, 1.0, 2.0]


for label, value in (("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf)):
    def refused(value=value, label=label):
        path = os.path.join(tmp, "bad.safetensors")
        doc = {"version": 1, "components": {"head": {"scale": [1.0, value]}}}
        try:
            mmfile.save(path, {"a": np.zeros(2, dtype=np.float32)}, doc)
        except ValueError as e:
            assert "NaN or Infinity" in str(e) and path in str(e), e
        else:
            raise AssertionError("a document with %s was written" % label)
        assert not os.path.exists(path), "a file was left behind"
    cases.append(("%s in the document refused" % label, refused))

print("1..%d" % len(cases))
atexit.register(shutil.rmtree, tmp, True)
failed = 0
for i, (name, f) in enumerate(cases, 1):
    try:
        f()
        print("ok %d %s" % (i, name))
    except Exception as e:  # noqa: BLE001
        failed += 1
        print("not ok %d %s" % (i, name))
        for line in str(e).splitlines():
            print("# " + line)
sys.exit(1 if failed else 0)

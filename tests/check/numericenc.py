#!/usr/bin/python3
# numericenc as an application uses it (PyGObject): sensor logs read with
# filesrc (CSV and JSON lines, cut into odd-sized chunks), float vectors
# from an appsrc, and every kind of bad input the element documents.  The
# embeddings are compared with the committed PyTorch references of the
# numeric encoder (tests/fixtures/encoders/numeric-*-io.safetensors, the
# same ones test-numeric checks libmm against), so the element is checked
# end to end: parsing, timestamps, durations, NaN handling and the model.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
#   numericenc.py [CASE ...]      (default: every case)
#
# Exits 77 (skipped) without PyGObject's Gst bindings or numpy.
import json
import math
import os
import struct
import sys
import tempfile

try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    import numpy as np
except (ImportError, ValueError):
    sys.exit(77)

FIXTURES = os.path.join(os.environ["MM_FIXTURES"], "encoders")
sys.path.insert(0, os.path.join(os.environ["MM_SOURCE_ROOT"], "models"))
import mmfile  # noqa: E402

TIMEOUT = 30 * Gst.SECOND


def model(name):
    return os.path.join(FIXTURES, name + ".safetensors")


def references(name):
    """The (input, expected) pairs PyTorch computed for model @name."""
    tensors = mmfile.load(os.path.join(FIXTURES, name + "-io.safetensors"))[0]
    pairs, i = [], 0
    while "io.input%d" % i in tensors:
        pairs.append((tensors["io.input%d" % i], tensors["io.expected%d" % i]))
        i += 1
    assert pairs, "no references for " + name
    return pairs


def fmt(v):
    return "" if math.isnan(v) else repr(float(v))


class Run:
    """A pipeline ending in an appsink: its buffers, its bus messages."""

    def __init__(self, desc):
        self.pipe = Gst.parse_launch(desc + " ! appsink name=out sync=false")
        self.sink = self.pipe.get_by_name("out")
        self.buffers, self.errors, self.warnings = [], [], []
        self.eos = False
        self.caps = None

    def start(self):
        self.pipe.set_state(Gst.State.PLAYING)

    def finish(self):
        """Pulls until EOS or an error (bounded: a hang fails the test)."""
        bus = self.pipe.get_bus()
        while True:
            sample = self.sink.emit("try-pull-sample", 0)
            if sample is not None:
                self.caps = self.caps or sample.get_caps()
                buf = sample.get_buffer()
                ok, info = buf.map(Gst.MapFlags.READ)
                assert ok
                values = np.frombuffer(bytes(info.data), dtype=np.float32).copy()
                buf.unmap(info)
                self.buffers.append((buf.pts, buf.duration, values))
                continue
            msg = bus.timed_pop_filtered(
                100 * Gst.MSECOND,
                Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.WARNING)
            if msg is None:
                if self.sink.get_property("eos"):
                    self.eos = True
                    break
                self.waited = getattr(self, "waited", 0) + 100 * Gst.MSECOND
                assert self.waited < TIMEOUT, "numericenc: no EOS or error in 30 s (a hang)"
                continue
            if msg.type == Gst.MessageType.WARNING:
                self.warnings.append(msg.parse_warning()[0].message)
            elif msg.type == Gst.MessageType.ERROR:
                self.errors.append(msg.parse_error()[0].message)
                break
            else:
                self.eos = True
        while True:  # whatever reached the sink before the error or EOS
            sample = self.sink.emit("try-pull-sample", 0)
            if sample is None:
                break
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            self.buffers.append((buf.pts, buf.duration,
                                 np.frombuffer(bytes(info.data), dtype=np.float32).copy()))
            buf.unmap(info)
        enc = self.pipe.get_by_name("enc")
        self.skipped = enc.get_property("skipped") if enc else None
        self.pipe.set_state(Gst.State.NULL)
        return self


def run_file(text, model_name, blocksize=7, extra=""):
    """@text as a file through filesrc (in @blocksize-byte chunks, so lines
    are cut across buffers) into numericenc."""
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        r = Run(f'filesrc location="{path}" blocksize={blocksize} ! '
                f'numericenc name=enc model="{model(model_name)}" {extra}')
        r.start()
        return r.finish()
    finally:
        os.unlink(path)


def check_values(buffers, pairs, tol=1e-5):
    assert len(buffers) == len(pairs), (len(buffers), len(pairs))
    for k, ((_, _, got), (_, want)) in enumerate(zip(buffers, pairs)):
        err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-3))
        assert err <= tol, "sample %d: relative error %g (got %s, want %s)" % (k, err, got, want)


def check_times(buffers, times):
    """PTS = the logged time; each valid until the next; the last keeps the
    interval before it."""
    ns = [round(t * Gst.SECOND) for t in times]
    for k, (pts, dur, _) in enumerate(buffers):
        assert pts == ns[k], (k, pts, ns[k])
        want = ns[k + 1] - ns[k] if k + 1 < len(ns) else ns[k] - ns[k - 1]
        assert dur == want, (k, dur, want)


# ---- cases ----------------------------------------------------------------

def test_csv():
    """A CSV log with a header, a comment, a blank line and missing values
    (empty field, "nan"), cut into 7-byte buffers: one embedding per line,
    equal to PyTorch's, at the logged times."""
    pairs = references("numeric-mean")
    times = [0.0, 0.25, 1.0, 2.5][:len(pairs)]
    lines = ["time,a,b,c,d,e", "# a comment", ""]
    for k, (x, _) in enumerate(pairs):
        fields = [fmt(v) for v in x]
        if math.isnan(x[0]):
            fields[0] = "nan"
        lines.append(",".join([repr(times[k])] + fields))
    r = run_file("\n".join(lines) + "\n", "numeric-mean")
    assert not r.errors and r.eos, r.errors
    check_values(r.buffers, pairs)
    check_times(r.buffers, times)
    s = r.caps.get_structure(0)
    assert s.get_name() == "application/x-mm-embedding", r.caps.to_string()
    assert s.get_string("modality") == "sensor" and s.get_int("dim")[1] == 8, r.caps.to_string()
    assert any(math.isnan(v) for x, _ in pairs for v in x), "the references test no NaN"


def test_json():
    """JSON lines (null = missing), no newline at the end of the file."""
    pairs = references("numeric-zero")
    times = [1.0, 1.5, 3.0, 3.5][:len(pairs)]
    lines = [json.dumps({"t": times[k], "values": [None if math.isnan(v) else float(v)
                                                    for v in x]})
             for k, (x, _) in enumerate(pairs)]
    r = run_file("\n".join(lines), "numeric-zero", blocksize=11)
    assert not r.errors and r.eos, r.errors
    check_values(r.buffers, pairs)
    check_times(r.buffers, times)


def test_appsrc():
    """float32 vectors from an appsrc (application/x-mm-features): PTS kept,
    a fixed duration property, values equal to PyTorch's."""
    pairs = references("numeric-mean")
    r = Run('appsrc name=src format=time caps="application/x-mm-features,dim=5" ! '
            f'numericenc name=enc duration={200 * Gst.MSECOND} model="{model("numeric-mean")}"')
    src = r.pipe.get_by_name("src")
    r.start()
    for k, (x, _) in enumerate(pairs):
        buf = Gst.Buffer.new_wrapped(struct.pack("<%df" % len(x), *x))
        buf.pts = k * 100 * Gst.MSECOND + 7
        assert src.emit("push-buffer", buf) == Gst.FlowReturn.OK
    src.emit("end-of-stream")
    r.finish()
    assert not r.errors and r.eos, r.errors
    check_values(r.buffers, pairs)
    for k, (pts, dur, _) in enumerate(r.buffers):
        assert pts == k * 100 * Gst.MSECOND + 7 and dur == 200 * Gst.MSECOND, (k, pts, dur)


BAD = [
    # (what, the bad line, words the error must contain)
    ("wrong width", "1.0,1,2", ["line 3", "2 values, the model takes 3"]),
    ("not a number", "1.0,1,x,3", ["line 3", "value 2", "\"x\"", "not a number"]),
    ("infinite", "1.0,1,1e99,3", ["line 3"]),
    ("time backwards", "0.1,1,2,3", ["line 3", "not after the previous"]),
    ("negative time", "-1,1,2,3", ["line 3", "time"]),
    ("bad json", "{\"t\": 1.0, \"values\": [1, \"2\", 3]}", ["line 3", "value 2"]),
    ("no time", "x,1,2,3", ["line 3", "first field is not a time"]),
    # json-glib recurses per level: 200,000 of them crashed the process
    ("deep json", "{\"t\": 1.0, \"values\": " + "[" * 200000, ["line 3", "brackets"]),
]


def test_bad_input():
    """Each bad line: an error on the bus naming the line and the problem;
    the samples before it were delivered; no hang, no crash."""
    for what, line, words in BAD:
        text = "0.0,1,2,3\n0.5,4,5,6\n%s\n2.0,1,2,3\n" % line
        r = run_file(text, "numeric-zero")
        assert r.errors, "%s: no error (%d buffers)" % (what, len(r.buffers))
        for w in words:
            assert w in r.errors[0], "%s: %r lacks %r" % (what, r.errors[0], w)
        assert len(r.buffers) == 2, "%s: %d of the 2 samples before the bad line" % (what, len(r.buffers))


def test_skip_bad():
    """skip-bad: the bad lines are dropped and counted, one warning, every
    good sample delivered with its own time."""
    text = ("0.0,1,2,3\n0.5,1,2\n1.0,4,5,6\n1.0,4,5,6\n1.5,x,1,1\n2.0,1,2,3\n")
    r = run_file(text, "numeric-zero", extra="skip-bad=true")
    assert not r.errors and r.eos, r.errors
    assert r.skipped == 3, r.skipped
    assert len(r.warnings) == 1 and "line 2" in r.warnings[0], r.warnings
    check_times(r.buffers, [0.0, 1.0, 2.0])


def test_nan_forbidden():
    """A model whose "nan" is "error": a missing value is an error naming the
    line, a full line passes."""
    r = run_file("0.0,1,2,3,4\n1.0,1,,3,4\n", "numeric-error")
    assert r.errors and "line 2" in r.errors[0], r.errors
    assert len(r.buffers) == 1, len(r.buffers)


def test_wrong_dim_caps():
    """Feature buffers of the wrong width in the caps: a negotiation error
    naming both widths."""
    r = Run('appsrc name=src format=time caps="application/x-mm-features,dim=4" ! '
            f'numericenc name=enc model="{model("numeric-mean")}"')
    src = r.pipe.get_by_name("src")
    r.start()
    buf = Gst.Buffer.new_wrapped(struct.pack("<4f", 1, 2, 3, 4))
    buf.pts = 0
    src.emit("push-buffer", buf)
    src.emit("end-of-stream")
    r.finish()
    assert r.errors and "4 values per sample, the model takes 5" in r.errors[0], r.errors


def test_empty():
    """An empty log: EOS, no embeddings, no error."""
    r = run_file("", "numeric-zero")
    assert r.eos and not r.errors and not r.buffers, (r.eos, r.errors, len(r.buffers))


CASES = {name[5:]: f for name, f in sorted(globals().items()) if name.startswith("test_")}


def main(argv):
    Gst.init(None)
    names = argv[1:] or sorted(CASES)
    print("1..%d" % len(names))
    failed = 0
    for i, name in enumerate(names, 1):
        try:
            CASES[name]()
            print("ok %d - %s" % (i, name))
        except AssertionError as e:
            failed += 1
            print("not ok %d - %s" % (i, name))
            for line in str(e).splitlines() or ["assertion failed"]:
                print("# " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

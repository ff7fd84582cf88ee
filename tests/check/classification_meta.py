#!/usr/bin/python3
# Reads mmdecode's decisions from the buffers in Python (PyGObject), the way
# an application with an appsink does: the MmClassificationStructureMeta
# (a GstCustomMeta) holds the same structure as the bus message, including
# the provenance of every fusion input (present, PTS and duration of the
# embedding used, its age at the decision).  A regression model checks that
# negative values come through unclipped, with full float precision.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Exits 77 (skipped) without PyGObject's Gst bindings.
import os
import sys
import tempfile

try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
except (ImportError, ValueError):
    sys.exit(77)

SRT = """1
00:00:00,000 --> 00:00:01,000
the news today

2
00:00:02,000 --> 00:00:02,500
a guitar song and piano music
"""
NONE = Gst.CLOCK_TIME_NONE


def as_list(s, field):
    ok, array = s.get_array(field)
    assert ok, field
    return [array.get_nth(i) for i in range(array.n_values)]


def run(model, interval_ms):
    with tempfile.NamedTemporaryFile("w", suffix=".srt", delete=False) as f:
        f.write(SRT)
        srt = f.name
    pipe = Gst.parse_launch(
        f'filesrc location="{srt}" ! subparse ! textenc model="{model}" ! '
        f'f.sink_0 mmfuse name=f model="{model}" interval={interval_ms * Gst.MSECOND} '
        f'max-age={Gst.SECOND} ! mmdecode model="{model}" ! '
        f'appsink name=sink sync=false emit-signals=false')
    sink = pipe.get_by_name("sink")
    messages, metas = [], []
    pipe.set_state(Gst.State.PLAYING)
    bus = pipe.get_bus()
    try:
        while True:
            sample = sink.emit("try-pull-sample", 5 * Gst.SECOND)
            if sample is None:
                break
            buf = sample.get_buffer()
            meta = buf.get_custom_meta("MmClassificationStructureMeta")
            assert meta is not None, "no MmClassificationStructureMeta on the buffer"
            metas.append((buf.pts, meta.get_structure().copy()))
        while True:
            msg = bus.pop_filtered(Gst.MessageType.ELEMENT | Gst.MessageType.ERROR)
            if msg is None:
                break
            assert msg.type != Gst.MessageType.ERROR, msg.parse_error()
            if msg.get_structure().get_name() == "mm-classification":
                messages.append(msg.get_structure().copy())
    finally:
        pipe.set_state(Gst.State.NULL)
        os.unlink(srt)
    assert metas and len(metas) == len(messages), (len(metas), len(messages))
    for (pts, s), m in zip(metas, messages):
        assert s.is_equal(m), (s.to_string(), m.to_string())
        assert s.get_uint64("pts")[1] == pts
    return [s for _, s in metas]


def check_provenance(decisions):
    seen_present = seen_aged = 0
    for s in decisions:
        pts = s.get_uint64("pts")[1]
        inputs = as_list(s, "inputs")
        present = as_list(s, "input-present")
        ipts = as_list(s, "input-pts")
        idur = as_list(s, "input-duration")
        age = as_list(s, "input-age")
        assert inputs == ["image", "audio", "text"], inputs
        assert [m for m, p in zip(inputs, present) if p] == as_list(s, "present")
        for i, p in enumerate(present):
            if not p:
                assert ipts[i] == NONE and idur[i] == NONE and age[i] == NONE
                continue
            # text is the only input: the cue used, and its age
            assert inputs[i] == "text"
            assert (ipts[i], idur[i]) in [(0, Gst.SECOND), (2 * Gst.SECOND, Gst.SECOND // 2)], \
                (ipts[i], idur[i])
            assert age[i] == max(0, pts - (ipts[i] + idur[i])), (pts, ipts[i], idur[i], age[i])
            seen_present += 1
            seen_aged += age[i] > 0
    assert seen_present > 0 and seen_aged > 0, (seen_present, seen_aged)


def main():
    Gst.init(None)
    fixtures = os.environ["MM_FIXTURES"]
    decisions = run(os.path.join(fixtures, "tiny.safetensors"), 250)
    check_provenance(decisions)
    for s in decisions:
        assert s.get_string("kind") == "softmax"
        assert len(as_list(s, "outputs")) == 3
        assert abs(sum(as_list(s, "outputs")) - 1.0) < 1e-5
    reg = run(os.path.join(fixtures, "tiny-regression.safetensors"), 500)
    negative = 0
    for s in reg:
        assert s.get_string("kind") == "regression"
        names = as_list(s, "names")
        values = as_list(s, "outputs")
        assert names == ["pressure", "temperature", "humidity"]
        assert as_list(s, "labels") == names and as_list(s, "scores") == values
        assert s.get_string("text") == " ".join(
            f"{n}={'%.3g' % v}"
            for n, v in zip(names, values)), s.get_string("text")
        negative += sum(v < 0 for v in values)
    assert negative > 0
    print(f"{len(decisions)} softmax and {len(reg)} regression decisions read from buffer metas")


if __name__ == "__main__":
    main()

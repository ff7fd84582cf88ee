#!/usr/bin/python3
# Reads mmdecode's mm-classification messages from Python (PyGObject) the
# way an application would, and checks that every field comes back with a
# plain Python type: strings, floats, ints and lists of them -- including
# when no label passes the threshold (empty lists, empty strings).
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run by meson (suite 'elements') with the build-tree plugin; exits 77
# (skipped) when PyGObject's Gst bindings are not installed.
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
hello world

2
00:00:02,000 --> 00:00:03,000
a guitar song and piano music
"""


def as_list(structure, field):
    """A GstValueArray field as a Python list, through the getter."""
    ok, array = structure.get_array(field)
    assert ok, field
    return [array.get_nth(i) for i in range(array.n_values)]


def check(s):
    pts = s.get_uint64("pts")
    assert pts[0] and isinstance(pts[1], int), pts
    assert s.get_uint64("running-time")[0]
    labels = as_list(s, "labels")
    scores = as_list(s, "scores")
    present = as_list(s, "present")
    missing = as_list(s, "missing")
    assert all(isinstance(x, str) for x in labels + present + missing)
    assert all(isinstance(x, float) for x in scores)
    assert len(labels) == len(scores)
    label = s.get_string("label")
    ok, score = s.get_double("score")
    text = s.get_string("text")
    assert ok and isinstance(label, str) and isinstance(text, str)
    assert s.get_string("present-csv") == ",".join(present)
    assert s.get_string("missing-csv") == ",".join(missing)
    # only a text pad: image and audio are always missing, text when stale
    assert sorted(present + missing) == ["audio", "image", "text"]
    assert "image" in missing and "audio" in missing
    if labels:
        assert label == labels[0] and abs(score - scores[0]) < 1e-9
        assert text.startswith(label + " "), text
    else:
        assert label == "" and score == 0.0 and text == ""
    # the string form parses back to the same scalars
    again = Gst.Structure.from_string(s.to_string())[0]
    assert again.get_string("label") == label
    assert again.get_string("text") == text
    assert again.get_string("missing-csv") == ",".join(missing)
    return bool(labels), not present


def main():
    Gst.init(None)
    model = os.path.join(os.environ["MM_FIXTURES"], "tiny.safetensors")
    with tempfile.NamedTemporaryFile("w", suffix=".srt", delete=False) as f:
        f.write(SRT)
        srt = f.name
    pipe = Gst.parse_launch(
        f'filesrc location="{srt}" ! subparse ! textenc model="{model}" ! '
        f'f.sink_0 mmfuse name=f model="{model}" max-age=0 ! '
        f'mmdecode model="{model}" top-k=2 threshold=0.9 ! fakesink')
    pipe.set_state(Gst.State.PLAYING)
    bus = pipe.get_bus()
    n = with_labels = without_inputs = 0
    try:
        while True:
            msg = bus.timed_pop_filtered(
                10 * Gst.SECOND, Gst.MessageType.ELEMENT
                | Gst.MessageType.EOS | Gst.MessageType.ERROR)
            assert msg is not None, "timeout"
            assert msg.type != Gst.MessageType.ERROR, msg.parse_error()
            if msg.type == Gst.MessageType.EOS:
                break
            s = msg.get_structure()
            if s.get_name() != "mm-classification":
                continue
            n += 1
            labelled, empty = check(s)
            with_labels += labelled
            without_inputs += empty
    finally:
        pipe.set_state(Gst.State.NULL)
        os.unlink(srt)
    # decisions with and without labels, and with no input present (empty
    # 'present' array, which to_string() prints as "(int)< >"), were seen
    assert n > with_labels > 0, (n, with_labels)
    assert without_inputs > 0, without_inputs
    print(f"{n} decisions, {with_labels} with labels, "
          f"{without_inputs} with no input present")


if __name__ == "__main__":
    main()

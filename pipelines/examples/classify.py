#!/usr/bin/python3
"""classify.py -- the mm elements from a Python (PyGObject) application.

Builds the file pipeline (video, audio and subtitles of an MKV through
imageenc, audioenc and textenc into mmfuse and mmdecode) element by element,
runs it to the end and prints every decision mmdecode posts on the bus as an
`mm-classification` element message:

    0:00:01.000  animals    0.957  image+audio+text

Usage:  GST_PLUGIN_PATH=build/plugins /usr/bin/python3 pipelines/examples/classify.py \\
            models/scenes.safetensors build/sample/news.mkv [INTERVAL]
(INTERVAL: video frames per decision, default 15).  Exit status 0 at EOS,
1 on an error.  Needs python3-gi and gir1.2-gstreamer-1.0 (python3-gst-1.0
turns the GstValueArray fields into Python lists).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def make(factory, **props):
    e = Gst.ElementFactory.make(factory, None)
    if e is None:
        raise RuntimeError("element %s not found (GST_PLUGIN_PATH=build/plugins?)" % factory)
    for k, v in props.items():
        e.set_property(k.replace("_", "-"), v)
    return e


def deep_queue():
    # mmfuse waits until every stream has moved past the time it decides
    # about: a file pipeline needs a few seconds of buffering per stream
    return make("queue", max_size_time=5 * Gst.SECOND, max_size_bytes=0, max_size_buffers=0)


def build(model, path, interval):
    """filesrc ! matroskademux, one branch per stream to mmfuse ! mmdecode."""
    pipe = Gst.Pipeline.new("classify")
    src = make("filesrc", location=path)
    demux = make("matroskademux")
    fuse = make("mmfuse", model=model, max_age=0)
    decode = make("mmdecode", model=model)
    sink = make("fakesink", sync=False)
    for e in (src, demux, fuse, decode, sink):
        pipe.add(e)
    src.link(demux)
    fuse.link(decode)
    decode.link(sink)

    # branch per demuxer pad kind: elements up to the encoder, and the
    # mmfuse pad it feeds (pads are requested in this order: image, audio, text)
    branches = {
        "video": [deep_queue(), make("decodebin"), make("videoconvert"),
                  make("imageenc", model=model, interval=interval)],
        "audio": [deep_queue(), make("decodebin"), make("audioconvert"),
                  make("audioresample"), make("audioenc", model=model)],
        "subtitle": [deep_queue(), make("textenc", model=model)],
    }
    for kind in ("video", "audio", "subtitle"):
        chain = branches[kind]
        for e in chain:
            pipe.add(e)
        # decodebin's source pad appears once it knows the stream
        for a, b in zip(chain, chain[1:]):
            if a.get_factory().get_name() == "decodebin":
                a.connect("pad-added", lambda db, pad, nxt=b: pad.link(nxt.get_static_pad("sink")))
            else:
                a.link(b)
        chain[-1].link_pads("src", fuse, "sink_%u")

    def on_demux_pad(_demux, pad):
        kind = pad.get_name().split("_")[0]          # video_0, audio_0, subtitle_0
        if kind in branches and not branches[kind][0].get_static_pad("sink").is_linked():
            pad.link(branches[kind][0].get_static_pad("sink"))
    demux.connect("pad-added", on_demux_pad)
    return pipe


def describe(s):
    """One decision from an mm-classification structure."""
    labels = list(s.get_value("labels"))
    scores = list(s.get_value("scores"))
    present = list(s.get_value("present"))
    t = s.get_value("stream-time")
    if t is None or t == Gst.CLOCK_TIME_NONE:
        t = s.get_value("pts")
    ms = (t + Gst.MSECOND // 2) // Gst.MSECOND
    return "%d:%02d:%02d.%03d  %-10s %.3f  %s" % (
        ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, ms % 1000,
        labels[0] if labels else "(none)", scores[0] if scores else 0.0, "+".join(present))


def main(argv):
    Gst.init(None)
    if len(argv) not in (3, 4):
        print("usage: %s MODEL FILE.mkv [INTERVAL]" % argv[0], file=sys.stderr)
        return 1
    interval = max(1, int(argv[3])) if len(argv) == 4 else 15
    try:
        pipe = build(argv[1], argv[2], interval)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    bus = pipe.get_bus()
    pipe.set_state(Gst.State.PLAYING)
    status, decisions = 0, 0
    while True:
        msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.ELEMENT
                                     | Gst.MessageType.EOS | Gst.MessageType.ERROR)
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s is not None and s.get_name() == "mm-classification":
                print(describe(s), flush=True)
                decisions += 1
        elif msg.type == Gst.MessageType.EOS:
            break
        else:
            err, dbg = msg.parse_error()
            print("error from %s: %s\n%s" % (msg.src.get_name(), err.message, dbg or ""),
                  file=sys.stderr)
            status = 1
            break
    pipe.set_state(Gst.State.NULL)
    print("%d decisions" % decisions, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))

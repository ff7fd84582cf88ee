#!/usr/bin/python3
"""Encoders never stall a pipeline they do not end in mmfuse (issue 16), and
what they tell downstream about time.

    /usr/bin/python3 tests/pipelines/test_stall_enc.py CASE

two-sinks: the issue's line, imageenc and audioenc each into a fakesink
  behind one matroskademux with default queues, must preroll, play and reach
  EOS (audioenc's 2 s window used to deadlock the preroll behind the video
  branch's 1 s queue).
tee: the decoded video and audio each split by a tee into a default queue
  before its encoder and one before a fakesink (deadlocked the same way).
preroll-gap-harmless: that GAP covers no time: in the design notes' line the
  first decision still has audio (and the first cue) present.
caps-duration: every encoder's src caps carry duration=(guint64) ns, the
  nominal duration of one embedding (audioenc: window; imageenc: frame
  interval x interval; textenc: max-duration), and mmfuse still accepts them.
inverted-cue: an SRT cue whose end comes before its start (subparse gives it
  a duration of millions of hours), then a normal cue: textenc caps the
  first at max-duration, and mmfuse sees the second.

Environment as for test_pipelines.py (MM_SOURCE_ROOT, MM_BUILD_ROOT, MM_WORK).
Every case runs its pipelines with a timeout (two-sinks, tee: preroll within
15 s, EOS within 45 s of PLAYING), so a hang fails instead of blocking.
Output: one line "ok CASE"; every other line starts with '#'.
SPDX-License-Identifier: LGPL-2.1-or-later
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_pipelines as tp  # noqa: E402  (sample media, model, run helpers)

TINY = os.path.join(tp.ROOT, "tests", "fixtures", "tiny.safetensors")
PLUGINS = os.path.join(tp.BUILD, "plugins")


def launch(line, timeout):
    """gst-launch-1.0 -m LINE; (returncode, stdout+stderr), or Failure on a
    timeout (the stall this file is about)."""
    try:
        p = subprocess.run(["gst-launch-1.0", "-m"] + line.split(), env=tp.env(
            GST_PLUGIN_PATH=PLUGINS), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=timeout, cwd=tp.ROOT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise tp.Failure("stalled: no EOS within %d s; last output:\n%s"
                         % (timeout, out[-1500:]))
    return p.returncode, p.stdout


PLAY = r"""
import sys, time
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(sys.argv[1])
bus = p.get_bus()
t0 = time.monotonic()
p.set_state(Gst.State.PAUSED)
ret = p.get_state(int(float(sys.argv[2]) * Gst.SECOND))[0]
if ret != Gst.StateChangeReturn.SUCCESS:
    m = bus.pop_filtered(Gst.MessageType.ERROR)
    p.set_state(Gst.State.NULL)
    sys.exit("no preroll within %s s (%s)%s" % (sys.argv[2], ret.value_nick,
             ": " + m.parse_error()[0].message if m else ""))
print("# prerolled in %.2f s" % (time.monotonic() - t0))
p.set_state(Gst.State.PLAYING)
m = bus.timed_pop_filtered(int(float(sys.argv[3]) * Gst.SECOND),
                           Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
if not m:
    sys.exit("no EOS within %s s of PLAYING" % sys.argv[3])
if m.type == Gst.MessageType.ERROR:
    sys.exit("error: %s" % m.parse_error()[0].message)
print("# EOS %.2f s after start" % (time.monotonic() - t0))
"""


def expect_eos(line, preroll=15, play=45):
    """LINE must preroll (PAUSED) within PREROLL s, then reach EOS within
    PLAY s of PLAYING."""
    try:
        p = subprocess.run([tp.PYTHON, "-W", "ignore::DeprecationWarning", "-c", PLAY, line,
                            str(preroll), str(play)],
                           env=tp.env(GST_PLUGIN_PATH=PLUGINS), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=preroll + play + 10,
                           cwd=tp.ROOT)
    except subprocess.TimeoutExpired:
        raise tp.Failure("hung (no answer within %d s)" % (preroll + play + 10))
    print("\n".join("# " + l.lstrip("# ") for l in p.stdout.splitlines()))
    tp.check(p.returncode == 0, "exit %d" % p.returncode)


def test_two_sinks():
    tp.ensure_sample()
    mkv = os.path.join(tp.SAMPLE, "news.mkv")
    line = ("filesrc location=%s ! matroskademux name=d "
            "d.video_0 ! queue ! decodebin ! videoconvert ! imageenc model=%s ! "
            "fakesink name=vs "
            "d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! "
            "audioenc model=%s ! fakesink name=as" % (mkv, tp.MODEL, tp.MODEL))
    expect_eos(line)


def test_tee():
    tp.ensure_sample()
    mkv = os.path.join(tp.SAMPLE, "news.mkv")
    # (a tee after the encoders, into queues of 200 embeddings each, holds
    # enough video to hide the stall; a tee of the decoded media does not)
    line = ("filesrc location=%s ! matroskademux name=d "
            "d.video_0 ! queue ! decodebin ! videoconvert ! tee name=v "
            "v. ! queue ! imageenc model=%s ! fakesink v. ! queue ! fakesink "
            "d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! tee name=a "
            "a. ! queue ! audioenc model=%s ! fakesink a. ! queue ! fakesink"
            % (mkv, tp.MODEL, tp.MODEL))
    expect_eos(line)


def test_preroll_gap_harmless():
    """The empty GAP the encoders send for preroll covers no time: in the
    design notes' line (one mmfuse), audio and text are still present from
    the first decision on, fed by the window and the cue that start at 0."""
    tp.ensure_sample()
    mkv = os.path.join(tp.SAMPLE, "news.mkv")
    line = ("filesrc location=%s ! matroskademux name=d "
            "d.video_0 ! queue ! decodebin ! videoconvert ! imageenc model=%s ! f.sink_0 "
            "d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! "
            "audioenc model=%s ! f.sink_1 "
            "d.subtitle_0 ! queue ! textenc model=%s ! f.sink_2 "
            "mmfuse name=f model=%s ! mmdecode model=%s ! fakesink" % ((mkv,) + (tp.MODEL,) * 5))
    code, out = launch(line, 60)
    tp.check(code == 0 and "Got EOS" in out, "no EOS:\n" + out[-2000:])
    first = re.search(r"mm-classification.*", out)
    tp.check(first, "no decision")
    msg = first.group(0)
    pts = re.search(r"input-pts=\(guint64\)< ([^>]*) >", msg)
    tp.check(pts, "no input-pts in %s" % msg[:300])
    vals = [int(x.strip().split(")")[-1]) for x in pts.group(1).split(",")]
    print("# first decision: input PTS (image, audio, text) %r" % vals)
    cue0 = tp.srt_cues()[0][0] if tp.srt_cues() else None
    tp.check(vals[1] == 0, "first decision: audio input PTS %d, not the window at 0" % vals[1])
    if cue0 == 0:
        tp.check(vals[2] == 0, "first decision: text input PTS %d, not the cue at 0" % vals[2])


CAPS = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(sys.argv[1])
seen = {}


def on_event(pad, info, name):
    ev = info.get_event()
    if ev.type == Gst.EventType.CAPS:
        s = ev.parse_caps().get_structure(0)
        ok, d = s.get_uint64("duration")
        seen[name] = str(d) if ok else "none"
    return Gst.PadProbeReturn.OK


for name in sys.argv[2:]:
    p.get_by_name(name).get_static_pad("src").add_probe(
        Gst.PadProbeType.EVENT_DOWNSTREAM, on_event, name)
p.set_state(Gst.State.PLAYING)
m = p.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
if not m:
    sys.exit("no EOS within 30 s")
if m.type == Gst.MessageType.ERROR:
    sys.exit("error: %s" % m.parse_error()[0].message)
for name in sys.argv[2:]:
    print("caps %s %s" % (name, seen.get(name, "never")))
"""


def caps_durations(line, elements):
    """Run LINE to EOS; the duration field of the last caps event each
    element of ELEMENTS pushed on its src pad (read by a pad probe, not from
    gst-launch -v, whose prints from several streaming threads can
    interleave): {name: ns or None when absent}; Failure when an element
    never sent caps."""
    try:
        p = subprocess.run([tp.PYTHON, "-W", "ignore::DeprecationWarning", "-c", CAPS, line]
                           + list(elements), env=tp.env(GST_PLUGIN_PATH=PLUGINS),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=40, cwd=tp.ROOT)
    except subprocess.TimeoutExpired:
        raise tp.Failure("stalled")
    tp.check(p.returncode == 0, "exit %d:\n%s" % (p.returncode, p.stdout[-2000:]))
    got = dict(re.findall(r"^caps (\S+) (\S+)$", p.stdout, re.M))
    for e in elements:
        tp.check(got.get(e, "never") != "never", "no caps sent by %s" % e)
    return {e: None if got[e] == "none" else int(got[e]) for e in elements}


def test_caps_duration():
    tmp = tempfile.TemporaryDirectory(prefix="mm-caps-")
    srt = os.path.join(tmp.name, "c.srt")
    with open(srt, "w") as f:
        f.write("1\n00:00:00,000 --> 00:00:01,000\nthe news today\n\n")
    # 25 fps, interval 5: 200 ms per image embedding; the tiny model's audio
    # window (1 s) as set explicitly; textenc max-duration 7 s.
    line = ("videotestsrc num-buffers=10 ! video/x-raw,framerate=25/1 ! videoconvert ! "
            "imageenc name=ie interval=5 model=%s ! f.sink_0 "
            "audiotestsrc num-buffers=20 ! audioconvert ! audioresample ! "
            "audioenc name=ae window=750000000 model=%s ! f.sink_1 "
            "filesrc location=%s ! subparse ! textenc name=te max-duration=7000000000 "
            "model=%s ! f.sink_2 "
            "mmfuse name=f model=%s ! fakesink" % ((TINY,) * 2 + (srt,) + (TINY,) * 2))
    got = caps_durations(line, ("ie", "ae", "te"))
    print("# caps durations: %r" % got)
    # the tiny model's rate: the window is rounded to whole samples
    tp.check(got["ie"] == 200000000, "imageenc duration %r" % got["ie"])
    tp.check(got["ae"] is not None and abs(got["ae"] - 750000000) < 1000000,
             "audioenc duration %r" % got["ae"])
    tp.check(got["te"] == 7000000000, "textenc duration %r" % got["te"])


def test_inverted_cue():
    """Cue 1 ends before it starts; cue 2 (a different text) follows at 13 s,
    after cue 1's start + max-duration (10 s by default).  mmfuse must pair
    cue 2 (by its PTS in input-pts) with the video from 13 s on."""
    tmp = tempfile.TemporaryDirectory(prefix="mm-inv-")
    d = tmp.name
    srt = os.path.join(d, "inv.srt")
    with open(srt, "w") as f:
        f.write("1\n00:00:01,000 --> 00:00:00,500\nthe news today\n\n"
                "2\n00:00:13,000 --> 00:00:14,000\na guitar song\n\n")
    line = ("videotestsrc num-buffers=150 ! video/x-raw,framerate=10/1 ! videoconvert ! "
            "imageenc model=%s ! f.sink_0 "
            "filesrc location=%s ! subparse ! textenc model=%s ! f.sink_1 "
            "mmfuse name=f model=%s ! mmdecode model=%s ! fakesink"
            % (TINY, srt, TINY, TINY, TINY))
    code, out = launch(line, 40)
    tp.check(code == 0 and "Got EOS" in out, "no EOS:\n" + out[-2000:])
    text_pts = set()
    for m in re.finditer(r"mm-classification.*", out):
        msg = m.group(0)
        pts = re.search(r"pts=\(guint64\)(\d+)", msg)
        inp = re.search(r"input-pts=\(guint64\)< ([^>]*) >", msg)
        if not pts or not inp:
            continue
        t = int(pts.group(1))
        vals = [int(x.strip().split(")")[-1]) for x in inp.group(1).split(",")]
        if t >= 13500000000:
            text_pts.add(vals[-1] if len(vals) > 1 else None)
    print("# text inputs after 13.5 s: %r" % sorted(text_pts, key=str))
    tp.check(13000000000 in text_pts, "cue 2 (13 s) never fed a decision after 13.5 s: %r"
             % sorted(text_pts, key=str))


CASES = {n[5:].replace("_", "-"): f for n, f in list(globals().items())
         if n.startswith("test_") and callable(f)}


def main(argv):
    if len(argv) != 2 or argv[1] not in CASES:
        print("usage: %s {%s}" % (argv[0], ",".join(sorted(CASES))), file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(PLUGINS, "libgstmm.so")):
        print("# plugin not built in %s" % tp.BUILD)
        return 1
    try:
        CASES[argv[1]]()
    except tp.Failure as e:
        print("# FAIL %s: %s" % (argv[1], str(e).replace("\n", "\n# ")))
        return 1
    print("ok %s" % argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

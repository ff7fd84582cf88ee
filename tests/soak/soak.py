#!/usr/bin/python3
"""Soak and stress (issue 14): bounded runs of what long-lived applications
do to the elements, each counting deadlocks (a state change, a seek or an
EOS that does not come within its timeout), crashes (the case runs in its
own process: a signal fails the meson test) and RSS growth (VmRSS after a
warm-up against the end; under ASan the live heap, see mem_mb).

    soak.py CASE   (seeks | cycles | pads | parallel | corrupt-mkv |
                    many-cues | huge-cue | nonfinite-audio | silent-captions)

seeks            1,000 flushing seeks on the sample pipeline while it plays
cycles           1,000 NULL -> PLAYING -> NULL cycles of a three-encoder pipeline
pads             mmfuse pads requested and released 200 times while PLAYING
parallel         three sample pipelines at once on one model: the same
                 decisions as one alone
corrupt-mkv      the sample MKV truncated at 10 places and bit-flipped
                 with 20 seeds: each ends in EOS or an error, in bounded time
many-cues        an SRT of 100,000 cues through subparse ! textenc ! mmfuse
huge-cue         a 1 MB cue
nonfinite-audio  NaN and Inf samples in a float stream into audioenc: one
                 warning, the windows holding them reported missing
silent-captions  a live caption source silent for 10 minutes of pipeline
                 time (a GstTestClock): decisions keep coming to the end
Prints '# ' lines with the figures; exits 1 on a failed check.
SPDX-License-Identifier: LGPL-2.1-or-later
"""
import os
import random
import sys
import tempfile
import threading
import time

import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

ROOT = os.environ.get("MM_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MM_BUILD_ROOT") or os.path.join(ROOT, "build")
WORK = os.environ.get("MM_WORK") or os.path.join(BUILD, "tests", "pipelines")
MODEL = os.path.join(ROOT, "models", "scenes.safetensors")
SAMPLE = os.path.join(WORK, "sample", "news.mkv")
# wall-clock bounds stretch under the sanitizers (tests/run.sh asan|tsan:
# MM_TIME_SCALE 3 or 10); the normal run keeps them as written
SLOW = float(os.environ.get("MM_TIME_SCALE", "1"))
DEADLINE = int(20 * SLOW) * Gst.SECOND


# Under ASan (tests/run.sh asan) RSS is not the process's memory: freed
# blocks wait in the quarantine (256 MB by default) and are not reused, each
# block carries redzones, and the shadow (1/8 of the heap) and the stack
# depot grow with them: soak-many-cues grew 450 MB of RSS that way (bound
# 100 MB), with no leak report.  So under ASan the figure is the heap that
# is live (ASan's own count of the bytes malloc'ed and not yet freed, the
# preloaded runtime's __sanitizer_get_current_allocated_bytes), held to the
# same bounds as RSS in the normal run; LeakSanitizer checks for leaks at
# exit.  The normal run measures VmRSS.
_ASAN_HEAP = None
if os.environ.get("MM_SANITIZER") == "asan":
    import ctypes
    _ASAN_HEAP = ctypes.CDLL(None).__sanitizer_get_current_allocated_bytes
    _ASAN_HEAP.restype = ctypes.c_size_t
MEMORY = "live heap (ASan)" if _ASAN_HEAP else "RSS"


def mem_mb():
    """VmRSS in MB; under ASan the live heap (see above)."""
    if _ASAN_HEAP:
        return _ASAN_HEAP() / 1048576.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def ensure_sample():
    if not os.path.exists(SAMPLE):
        sys.path.insert(0, os.path.join(ROOT, "tests", "pipelines"))
        import test_pipelines  # noqa: E402  (makes it under the tests' lock)
        test_pipelines.ensure_sample()


def mkv_pipeline(path, sink="fakesink sync=false", extra=""):
    q = "queue max-size-time=5000000000 max-size-bytes=0 max-size-buffers=0"
    m = MODEL
    return Gst.parse_launch(
        f'filesrc location="{path}" ! matroskademux name=d '
        f'd.video_0 ! {q} ! decodebin ! videoconvert ! imageenc model="{m}" interval=15 ! f.sink_0 '
        f'd.audio_0 ! {q} ! decodebin ! audioconvert ! audioresample ! audioenc model="{m}" ! '
        'f.sink_1 '
        f'd.subtitle_0 ! {q} ! textenc model="{m}" ! f.sink_2 '
        f'mmfuse name=f model="{m}" max-age=0 {extra} ! mmdecode model="{m}" ! {sink}')


def wait_end(pipe, timeout=DEADLINE):
    """'eos', 'error: ...' or 'timeout'."""
    msg = pipe.get_bus().timed_pop_filtered(timeout, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    if msg is None:
        return "timeout"
    if msg.type == Gst.MessageType.ERROR:
        return "error: %s" % msg.parse_error()[0].message
    return "eos"


def state_ok(pipe, timeout=DEADLINE):
    ret, _, _ = pipe.get_state(timeout)
    return ret in (Gst.StateChangeReturn.SUCCESS, Gst.StateChangeReturn.NO_PREROLL)


def decisions_of(pipe):
    """Collects mm-classification (pts, label) pairs from the bus until EOS."""
    out = []
    bus = pipe.get_bus()
    end = time.monotonic() + 60 * SLOW
    while time.monotonic() < end:
        msg = bus.timed_pop_filtered(
            Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
        if msg is None:
            continue
        if msg.type == Gst.MessageType.EOS:
            return out
        if msg.type == Gst.MessageType.ERROR:
            raise AssertionError(msg.parse_error()[0].message)
        s = msg.get_structure()
        if s.get_name() == "mm-classification":
            out.append((s.get_uint64("pts")[1], s.get_string("label"), round(s.get_double("score")[1], 6)))
    raise AssertionError("no EOS in %d s" % (60 * SLOW))


def report(name, deadlocks, growth, extra=""):
    print(f"# {name}: deadlocks {deadlocks}, crashes 0 (this process lived), "
          f"{MEMORY} growth {growth:+.1f} MB{extra}")
    assert deadlocks == 0, f"{deadlocks} deadlocks"


# ---- cases ------------------------------------------------------------------

def case_seeks():
    pipe = mkv_pipeline(SAMPLE, "fakesink sync=true")
    pipe.set_state(Gst.State.PLAYING)
    assert state_ok(pipe), "no preroll"
    rng = random.Random(14)
    deadlocks, base = 0, None
    t0 = time.monotonic()
    for i in range(1000):
        pos = rng.uniform(0.0, 27.0)
        if not pipe.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT,
                                int(pos * Gst.SECOND)):
            deadlocks += 1  # refused: counted, the loop goes on
        if not state_ok(pipe):
            deadlocks += 1
            break
        if i == 99:
            base = mem_mb()
    growth = mem_mb() - base
    # after the last seek, it plays to the end: seek near it and wait for EOS
    pipe.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 28 * Gst.SECOND)
    end = wait_end(pipe)
    pipe.set_state(Gst.State.NULL)
    report("1000 flushing seeks", deadlocks, growth, f", {time.monotonic() - t0:.1f} s, then {end}")
    assert end == "eos", end
    assert growth < 40, f"{MEMORY} grew {growth:.1f} MB over 900 seeks"


def case_cycles():
    m = MODEL
    desc = (f'videotestsrc ! video/x-raw,width=64,height=48,framerate=10/1 ! imageenc model="{m}" ! '
            f'f.sink_0 audiotestsrc wave=pink-noise ! audio/x-raw,rate=16000,channels=1 ! '
            f'audioenc model="{m}" ! f.sink_1 '
            f'mmfuse name=f model="{m}" ! mmdecode model="{m}" ! fakesink sync=false')
    pipe = Gst.parse_launch(desc)
    deadlocks, base = 0, None
    t0 = time.monotonic()
    for i in range(1000):
        pipe.set_state(Gst.State.PLAYING)
        if not state_ok(pipe):
            deadlocks += 1
        if pipe.set_state(Gst.State.NULL) == Gst.StateChangeReturn.FAILURE:
            deadlocks += 1
        if i == 99:
            base = mem_mb()
    growth = mem_mb() - base
    report("1000 NULL->PLAYING->NULL cycles", deadlocks, growth,
           f", {time.monotonic() - t0:.1f} s")
    assert growth < 40, f"{MEMORY} grew {growth:.1f} MB over 900 cycles"


def case_pads():
    """A live video branch drives mmfuse; an audio branch is added on a
    requested pad and removed (pad released) 200 times while PLAYING."""
    m = MODEL
    pipe = Gst.parse_launch(
        f'videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=20/1 ! '
        f'imageenc model="{m}" ! f.sink_0 '
        f'mmfuse name=f model="{m}" ! mmdecode model="{m}" ! fakesink name=out sync=false')
    fuse = pipe.get_by_name("f")
    out = pipe.get_by_name("out")
    count = [0]
    out.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER,
                                         lambda p, i: count.__setitem__(0, count[0] + 1)
                                         or Gst.PadProbeReturn.OK)
    pipe.set_state(Gst.State.PLAYING)
    assert state_ok(pipe), "no start"
    deadlocks, stalls, base = 0, 0, None
    t0 = time.monotonic()
    for i in range(200):
        branch = Gst.parse_bin_from_description(
            f'audiotestsrc is-live=true wave=pink-noise samplesperbuffer=800 ! '
            f'audio/x-raw,rate=16000,channels=1 ! audioenc model="{m}" hop=100000000 '
            'window=500000000', True)
        pipe.add(branch)
        sinkpad = fuse.request_pad_simple("sink_%u")
        branch.get_static_pad("src").link(sinkpad)
        branch.sync_state_with_parent()
        before = count[0]
        time.sleep(0.05)
        branch.set_state(Gst.State.NULL)
        if branch.get_state(int(5 * SLOW) * Gst.SECOND)[0] != Gst.StateChangeReturn.SUCCESS:
            deadlocks += 1
            break
        branch.get_static_pad("src").unlink(sinkpad)
        fuse.release_request_pad(sinkpad)
        pipe.remove(branch)
        # decisions keep flowing (the video pad alone drives them)
        deadline = time.monotonic() + 5 * SLOW
        while count[0] == before and time.monotonic() < deadline:
            time.sleep(0.01)
        stalls += count[0] == before
        if i == 19:
            base = mem_mb()
    growth = mem_mb() - base
    pipe.set_state(Gst.State.NULL)
    report("200 pad request/release while PLAYING", deadlocks, growth,
           f", {count[0]} decisions, {stalls} stalls, {time.monotonic() - t0:.1f} s")
    assert stalls == 0, f"{stalls} stalls"
    assert growth < 40, f"{MEMORY} grew {growth:.1f} MB"


def case_parallel():
    one = mkv_pipeline(SAMPLE)
    one.set_state(Gst.State.PLAYING)
    ref = decisions_of(one)
    one.set_state(Gst.State.NULL)
    results, errors = [None] * 3, []

    def run(k):
        try:
            p = mkv_pipeline(SAMPLE)
            p.set_state(Gst.State.PLAYING)
            results[k] = decisions_of(p)
            p.set_state(Gst.State.NULL)
        except AssertionError as e:
            errors.append(str(e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120 * SLOW)
    deadlocks = sum(t.is_alive() for t in threads)
    report("three pipelines on one model", deadlocks, 0.0, f", {time.monotonic() - t0:.1f} s")
    assert not errors, errors
    for k, r in enumerate(results):
        assert r == ref, f"pipeline {k}: {len(r or [])} decisions differ from one alone ({len(ref)})"
    print(f"# each of the three: {len(ref)} decisions, equal to one pipeline alone")


def run_to_end(pipe, timeout=DEADLINE):
    pipe.set_state(Gst.State.PLAYING)
    end = wait_end(pipe, timeout)
    pipe.set_state(Gst.State.NULL)
    return end


def case_corrupt_mkv():
    data = open(SAMPLE, "rb").read()
    outcomes = {}
    deadlocks = 0
    base = mem_mb()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bad.mkv")
        variants = [("truncated at %d%%" % (10 * k), data[:len(data) * k // 10])
                    for k in range(1, 11)]
        for seed in range(20):
            rng = random.Random(seed)
            b = bytearray(data)
            for _ in range(50):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            variants.append(("50 bits flipped, seed %d" % seed, bytes(b)))
        for what, blob in variants:
            with open(path, "wb") as f:
                f.write(blob)
            end = run_to_end(mkv_pipeline(path), int(30 * SLOW) * Gst.SECOND)
            deadlocks += end == "timeout"
            key = end if end in ("eos", "timeout") else "error"
            outcomes[key] = outcomes.get(key, 0) + 1
            if end == "timeout":
                print(f"# {what}: no EOS or error in {30 * SLOW:.0f} s")
    report("corrupt MKV (10 truncated, 20 bit-flipped)", deadlocks, mem_mb() - base,
           f", outcomes {outcomes}")


def text_pipeline(path):
    m = MODEL
    return Gst.parse_launch(
        f'filesrc location="{path}" ! subparse ! textenc model="{m}" ! f.sink_0 '
        f'mmfuse name=f model="{m}" ! mmdecode model="{m}" ! fakesink sync=false')


def srt_time(t):
    ms = int(round(t * 1000))
    return "%02d:%02d:%02d,%03d" % (ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, ms % 1000)


def case_many_cues():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "many.srt")
        with open(path, "w") as f:
            for i in range(100000):
                a = i * 0.1
                f.write("%d\n%s --> %s\ncue number %d\n\n" % (i + 1, srt_time(a),
                                                           srt_time(a + 0.08), i))
        base = mem_mb()
        t0 = time.monotonic()
        pipe = text_pipeline(path)
        pipe.set_state(Gst.State.PLAYING)
        n = len(decisions_of(pipe))
        pipe.set_state(Gst.State.NULL)
        growth = mem_mb() - base
    report("100,000-cue SRT", 0, growth, f", {n} decisions in {time.monotonic() - t0:.1f} s")
    assert n >= 10000 * 0.99, n  # one decision a second over 10,000 s
    assert growth < 100, f"{MEMORY} grew {growth:.1f} MB"


def case_huge_cue():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "huge.srt")
        words = ("the news today music guitar piano " * 40000)[:1 << 20]
        with open(path, "w") as f:
            f.write("1\n00:00:00,000 --> 00:00:02,000\n%s\n\n" % words)
            f.write("2\n00:00:03,000 --> 00:00:04,000\nthe news today\n\n")
        t0 = time.monotonic()
        pipe = text_pipeline(path)
        pipe.set_state(Gst.State.PLAYING)
        n = len(decisions_of(pipe))
        pipe.set_state(Gst.State.NULL)
    report("1 MB cue", 0, 0.0, f", {n} decisions in {time.monotonic() - t0:.1f} s")
    assert n >= 3, n


def case_nonfinite_audio():
    m = MODEL
    pipe = Gst.parse_launch(
        'appsrc name=src format=time caps="audio/x-raw,format=F32LE,rate=16000,channels=1,'
        f'layout=interleaved" ! audioenc model="{m}" ! f.sink_0 '
        f'mmfuse name=f model="{m}" ! mmdecode model="{m}" ! fakesink sync=false')
    src = pipe.get_by_name("src")
    warnings = []
    pipe.set_state(Gst.State.PLAYING)
    import struct
    rng = random.Random(3)
    specials = [float("nan"), float("inf"), float("-inf"), 3e38, -3e38]
    for k in range(60):  # 60 x 0.5 s; the chunks at 5 s and 20 s have non-finite samples
        vals = [rng.uniform(-0.3, 0.3) for _ in range(8000)]
        if k in (10, 40):
            for _ in range(20):
                vals[rng.randrange(8000)] = rng.choice(specials)
        buf = Gst.Buffer.new_wrapped(struct.pack("<8000f", *vals))
        buf.pts = k * Gst.SECOND // 2
        buf.duration = Gst.SECOND // 2
        src.emit("push-buffer", buf)
    src.emit("end-of-stream")
    bus = pipe.get_bus()
    end, n, missing = "timeout", 0, 0
    deadline = time.monotonic() + 60 * SLOW
    while time.monotonic() < deadline:
        msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
                                     | Gst.MessageType.WARNING | Gst.MessageType.ELEMENT)
        if msg is None:
            continue
        if msg.type == Gst.MessageType.WARNING:
            warnings.append(msg.parse_warning()[0].message)
        elif msg.type == Gst.MessageType.ELEMENT:
            st = msg.get_structure()
            if st.get_name() == "mm-classification":
                n += 1
                missing += "audio" not in (st.get_string("present-csv") or "").split(",")
        else:
            end = "eos" if msg.type == Gst.MessageType.EOS else msg.parse_error()[0].message
            break
    pipe.set_state(Gst.State.NULL)
    report("NaN/Inf audio", int(end == "timeout"), 0.0,
           f", {n} decisions ({missing} with audio missing), end {end}, "
           f"warnings {len(warnings)}")
    assert end == "eos", end
    assert n > 0 and len(warnings) == 1, (n, warnings)
    # the windows holding non-finite samples are reported missing, the clean ones not
    assert 0 < missing < n, (missing, n)


def case_silent_captions():
    """A live pipeline (video + a caption appsrc behind a plain queue) whose
    captions stay silent for 10 minutes of pipeline time, on a GstTestClock
    cranked as fast as the pipeline goes: the decisions keep their cadence
    to the end."""
    gi.require_version("GstCheck", "1.0")
    from gi.repository import GstCheck
    m = MODEL
    pipe = Gst.parse_launch(
        'videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=5/1 ! '
        f'imageenc model="{m}" interval=5 ! f.sink_0 '
        'appsrc name=cues is-live=true format=time caps="text/x-raw,format=utf8" ! queue ! '
        f'textenc model="{m}" ! f.sink_1 '
        f'mmfuse name=f model="{m}" latency=500000000 ! mmdecode model="{m}" ! '
        'fakesink name=out sync=true')
    clock = GstCheck.TestClock.new()
    pipe.use_clock(clock)
    pipe.set_base_time(0)
    pipe.set_start_time(Gst.CLOCK_TIME_NONE)
    seen = {"n": 0, "last": 0, "text": 0}

    def on_buffer(pad, info):
        seen["n"] += 1
        seen["last"] = info.get_buffer().pts
        return Gst.PadProbeReturn.OK

    pipe.get_by_name("out").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_buffer)
    pipe.set_state(Gst.State.PLAYING)
    t0 = time.monotonic()
    base = None
    while clock.get_time() < 600 * Gst.SECOND and time.monotonic() - t0 < 240 * SLOW:
        clock.crank()
        if base is None and clock.get_time() > 60 * Gst.SECOND:
            base = mem_mb()
    end = clock.get_time()
    growth = mem_mb() - (base or mem_mb())
    pipe.set_state(Gst.State.NULL)
    stalled = int(seen["last"] < 595 * Gst.SECOND)
    report("10 minutes of silent live captions (test clock)", stalled, growth,
           f", {seen['n']} decisions, the last at {seen['last'] / Gst.SECOND:.1f} s, "
           f"clock at {end / Gst.SECOND:.1f} s after {time.monotonic() - t0:.1f} s")
    assert seen["n"] >= 590, seen  # one a second (5 fps, every 5th frame encoded)


CASES = {"silent-captions": case_silent_captions, "seeks": case_seeks, "cycles": case_cycles, "pads": case_pads,
         "parallel": case_parallel, "corrupt-mkv": case_corrupt_mkv,
         "many-cues": case_many_cues, "huge-cue": case_huge_cue,
         "nonfinite-audio": case_nonfinite_audio}


def main():
    Gst.init(None)
    ensure_sample()
    try:
        CASES[sys.argv[1]]()
    except AssertionError as e:
        print("# FAILED: %s" % e)
        sys.exit(1)


if __name__ == "__main__":
    main()

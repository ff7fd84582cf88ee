#!/usr/bin/python3
"""Whole-pipeline measurements for bench.py; prints one JSON object.

    /usr/bin/python3 tests/bench/pipeline.py file MEDIA MODEL [LOOPS [INTERVAL]]
    /usr/bin/python3 tests/bench/pipeline.py live MODEL [SECONDS]
    /usr/bin/python3 tests/bench/pipeline.py launch MEDIA MODEL [INTERVAL [CONVERT]]

file: the demo pipeline (pipelines/mkv-file.sh: matroskademux, decodebin,
  the three encoders, imageenc interval=INTERVAL (15, the demo's, = one frame
  a second), mmfuse max-age=0, mmdecode) over MEDIA with a fakesink and no
  video encoding, as fast as it goes, LOOPS times in one process (a
  flushing seek back to 0 after each EOS).  Reports wall seconds per loop,
  media seconds, decisions (mm-classification bus messages) per loop, VmRSS
  after each loop, peak RSS (VmHWM) and how many mappings of MODEL the
  process has (five elements use it: it should be one).
launch: the same pipeline as one gst-launch-1.0 process (gst-launch-1.0 -q
  LINE): wall seconds from starting the process to its exit after EOS
  (plugin registry, model load, caps negotiation and the run).
CONVERT (file and launch, default 1): 1 runs videoconvert before imageenc
  as pipelines/mkv-file.sh does; 0 leaves it out (imageenc takes the
  decoder's I420 itself and converts only the frames it encodes).
live: videotestsrc and audiotestsrc (is-live) through imageenc and audioenc
  into mmfuse and mmdecode; after SECONDS of playing, the latency the
  pipeline reports (latency query: live, min, max) and the measured delay
  of each decision (clock running time when it was posted minus the running
  time it describes), as mmrun.py computes it.

The queues hold 5 s, as in pipelines/common.sh: one demuxer thread feeds
all three branches and mmfuse needs data on every pad (see
plugins/gstmmfuse.c, "Latency and buffering").
"""
import json
import os
import shlex
import subprocess
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

# as pipelines/common.sh
Q = "queue max-size-time=5000000000 max-size-bytes=0 max-size-buffers=0"


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def mappings(path):
    real = os.path.realpath(path)
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if line.rstrip().endswith(real))


def demo_launch(media, model, interval, convert=True):
    """pipelines/mkv-file.sh without the annotated video: imageenc interval,
    mmfuse max-age=0, decisions to a fakesink; convert=False drops the
    videoconvert before imageenc."""
    m = "model=%s" % model
    return ("filesrc location=%s ! matroskademux name=d "
            "d.video_0 ! %s ! decodebin ! %simageenc %s interval=%d ! f.sink_0 "
            "d.audio_0 ! %s ! decodebin ! audioconvert ! audioresample ! audioenc %s ! f.sink_1 "
            "d.subtitle_0 ! %s ! textenc %s ! f.sink_2 "
            "mmfuse name=f %s max-age=0 ! mmdecode %s ! fakesink sync=false"
            % (media, Q, "videoconvert ! " if convert else "", m, interval, Q, m, Q, m, m, m))


def wait_eos(bus, counter, timeout):
    """Pops messages until EOS; counts mm-classification messages."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg = bus.timed_pop_filtered(
            100 * Gst.MSECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
        if msg is None:
            continue
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            sys.exit("pipeline.py: %s (%s)" % (err.message, dbg))
        if msg.type == Gst.MessageType.EOS:
            return True
        s = msg.get_structure()
        if s is not None and s.get_name() == "mm-classification":
            counter[0] += 1
    return False


def run_launch(media, model, interval, convert):
    """The demo line as one gst-launch-1.0 process, timed from start to exit."""
    cmd = ["gst-launch-1.0", "-q"] + shlex.split(demo_launch(media, model, interval, convert))
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit("pipeline.py: gst-launch-1.0 failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    print(json.dumps({"wall_s": wall, "convert": convert}))


def run_file(media, model, loops, interval, convert=True):
    p = Gst.parse_launch(demo_launch(media, model, interval, convert))
    bus = p.get_bus()
    walls, decisions, rss = [], [], []
    p.set_state(Gst.State.PAUSED)
    p.get_state(Gst.CLOCK_TIME_NONE)
    ok, dur = p.query_duration(Gst.Format.TIME)
    maps = mappings(model)
    for i in range(loops):
        count = [0]
        t0 = time.monotonic()
        if i > 0:
            p.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE, 0)
        p.set_state(Gst.State.PLAYING)
        if not wait_eos(bus, count, 120):
            sys.exit("pipeline.py: no EOS after 120 s (loop %d)" % i)
        walls.append(time.monotonic() - t0)
        decisions.append(count[0])
        rss.append(status_kb("VmRSS:"))
        p.set_state(Gst.State.PAUSED)
        p.get_state(Gst.CLOCK_TIME_NONE)
    p.set_state(Gst.State.NULL)
    print(json.dumps({"media_s": dur / 1e9 if ok else None, "wall_s": walls,
                      "decisions": decisions, "rss_kb": rss,
                      "hwm_kb": status_kb("VmHWM:"), "model_mappings": maps}))


def run_live(model, seconds):
    m = "model=%s" % model
    p = Gst.parse_launch(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
        "! videoconvert ! imageenc %s ! f.sink_0 "
        "audiotestsrc is-live=true wave=pink-noise ! audio/x-raw,rate=16000,channels=1 "
        "! audioconvert ! audioenc %s ! f.sink_1 "
        "mmfuse name=f %s ! mmdecode %s ! fakesink sync=true" % (m, m, m, m))
    bus = p.get_bus()
    delays = []
    p.set_state(Gst.State.PLAYING)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        msg = bus.timed_pop_filtered(50 * Gst.MSECOND,
                                     Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
        if msg is None:
            continue
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            sys.exit("pipeline.py: %s (%s)" % (err.message, dbg))
        s = msg.get_structure()
        if s is None or s.get_name() != "mm-classification":
            continue
        ok, rt = s.get_uint64("running-time")
        clock = p.get_clock()
        if ok and clock is not None:
            now = clock.get_time() - p.get_base_time()
            delays.append((now - rt) / 1e6)
    q = Gst.Query.new_latency()
    ok = p.query(q)
    live, lmin, lmax = q.parse_latency() if ok else (None, 0, 0)
    p.set_state(Gst.State.NULL)
    delays.sort()
    print(json.dumps({"query_ok": ok, "live": live, "min_ms": lmin / 1e6,
                      "max_ms": (lmax / 1e6 if lmax != Gst.CLOCK_TIME_NONE else None),
                      "decisions": len(delays),
                      "delay_median_ms": delays[len(delays) // 2] if delays else None,
                      "delay_max_ms": delays[-1] if delays else None}))


def main():
    Gst.init(None)
    if len(sys.argv) >= 4 and sys.argv[1] == "file":
        run_file(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1,
                 int(sys.argv[5]) if len(sys.argv) > 5 else 15,
                 sys.argv[6] != "0" if len(sys.argv) > 6 else True)
    elif len(sys.argv) >= 4 and sys.argv[1] == "launch":
        run_launch(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 15,
                   sys.argv[5] != "0" if len(sys.argv) > 5 else True)
    elif len(sys.argv) >= 3 and sys.argv[1] == "live":
        run_live(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 4.0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Pipelines across processes on 127.0.0.1: encoder pipelines send their
embeddings with `gdppay ! tcpclientsink` to a fusion pipeline that receives
them with `tcpserversrc ! gdpdepay ! mmfuse` (each a separate gst-launch-1.0
process; decisions written by mmpublish as JSON lines).

    test_distributed.py CASE      (file | sender-killed)

file: the same media through one process and through three; every decision
  (time, labels, scores, presence, PTS of each input used) must be equal.
sender-killed: the audio sender is killed 2 s into a 6 s live stream; the
  fusion goes on to the end with audio missing from then on (no stall).
SPDX-License-Identifier: LGPL-2.1-or-later
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from netutil import free_port, free_udp_port, read_jsonl, wait_listening, wait_udp_bound

ROOT = os.environ.get("MM_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MM_BUILD_ROOT", os.path.join(ROOT, "build"))
MODEL = os.path.join(ROOT, "tests", "fixtures", "tiny.safetensors")
SRT = """1
00:00:00,000 --> 00:00:01,000
the news today

2
00:00:02,000 --> 00:00:02,500
a guitar song and piano music
"""
LAUNCH = shutil.which("gst-launch-1.0")
MMRUN = [sys.executable, os.path.join(ROOT, "pipelines", "mmrun.py")]
CHILDREN = []  # every process started, killed in main()'s finally


def launch(desc):
    p = _launch(desc)
    CHILDREN.append(p)
    return p


def mmrun(args, desc):
    p = subprocess.Popen(MMRUN + args + desc.split(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    CHILDREN.append(p)
    return p


def _launch(desc):
    return subprocess.Popen([LAUNCH, "-q"] + desc.split(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, what, timeout=30):
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{what} did not finish: stalled")
    assert proc.returncode == 0, f"{what}: {err}"
    return err


def key(d):
    return (d["pts"], d["duration"], d["labels"], d["scores"], d["input-present"],
            d["input-pts"], d["input-duration"])


IMAGE = ("videotestsrc num-buffers=30 pattern=ball ! "
         "video/x-raw,format=RGB,width=16,height=16,framerate=10/1 ! "
         f"imageenc model={MODEL}")


def case_file(work):
    srt = os.path.join(work, "cues.srt")
    with open(srt, "w") as f:
        f.write(SRT)
    text = f"filesrc location={srt} ! subparse ! textenc model={MODEL}"
    fuse = f"mmfuse name=f model={MODEL} ! mmdecode model={MODEL} ! mmpublish location="
    single = os.path.join(work, "single.jsonl")
    finish(launch(f"{IMAGE} ! f.sink_0 {text} ! f.sink_1 {fuse}{single} ! fakesink"), "single")
    p_img, p_txt = free_port(), free_port()
    dist = os.path.join(work, "dist.jsonl")
    fusion = launch(f"tcpserversrc host=127.0.0.1 port={p_img} ! gdpdepay ! f.sink_0 "
                    f"tcpserversrc host=127.0.0.1 port={p_txt} ! gdpdepay ! f.sink_1 "
                    f"{fuse}{dist} ! fakesink")
    wait_listening(p_img)
    wait_listening(p_txt)
    senders = [launch(f"{IMAGE} ! gdppay ! tcpclientsink host=127.0.0.1 port={p_img}"),
               launch(f"{text} ! gdppay ! tcpclientsink host=127.0.0.1 port={p_txt}")]
    for s in senders:
        finish(s, "sender")
    finish(fusion, "fusion")
    a, b = read_jsonl(single), read_jsonl(dist)
    same = sum(key(x) == key(y) for x, y in zip(a, b))
    print(f"file: {len(a)} decisions in one process, {len(b)} across three, {same} equal")
    assert len(a) == len(b) == same > 0, (len(a), len(b), same)
    assert any(d["input-present"][2] for d in b)  # the text did pair


def case_sender_killed(work):
    p_img, p_aud = free_port(), free_port()
    out = os.path.join(work, "dist.jsonl")
    fusion = launch(f"tcpserversrc host=127.0.0.1 port={p_img} ! gdpdepay ! f.sink_0 "
                    f"tcpserversrc host=127.0.0.1 port={p_aud} ! gdpdepay ! f.sink_1 "
                    f"mmfuse name=f model={MODEL} max-age=0 ! mmdecode model={MODEL} ! "
                    f"mmpublish location={out} ! fakesink")
    wait_listening(p_img)
    wait_listening(p_aud)
    image = launch("videotestsrc is-live=true num-buffers=60 pattern=ball ! "
                   "video/x-raw,format=RGB,width=16,height=16,framerate=10/1 ! "
                   f"imageenc model={MODEL} ! gdppay ! "
                   f"tcpclientsink host=127.0.0.1 port={p_img}")
    audio = launch("audiotestsrc is-live=true wave=pink-noise ! "
                   "audio/x-raw,rate=16000,channels=1 ! audioconvert ! "
                   f"audioenc model={MODEL} hop={250 * 1000 * 1000} ! gdppay ! "
                   f"tcpclientsink host=127.0.0.1 port={p_aud}")
    time.sleep(2.5)
    audio.send_signal(signal.SIGKILL)
    audio.wait()
    finish(image, "image sender")
    finish(fusion, "fusion after the audio sender died")
    d = read_jsonl(out)
    with_audio = [x["pts"] for x in d if x["input-present"][1]]
    last_audio = max(with_audio) if with_audio else None
    after = [x for x in d if last_audio is not None and x["pts"] > last_audio]
    print(f"sender-killed: {len(d)} decisions, {len(with_audio)} with audio "
          f"(last at {last_audio / 1e9 if last_audio is not None else None} s), "
          f"{len(after)} after it with audio missing")
    assert len(d) >= 55, len(d)  # every frame of the 6 s image stream
    assert with_audio and after and all(not x["input-present"][1] for x in after)


# -- SRT -------------------------------------------------------------------
# Receiver: `srtsrc uri=srt://127.0.0.1:PORT?mode=listener ! gdpdepay`; a
# sender: `gdppay ! srtsink uri=srt://127.0.0.1:PORT`, run by mmrun.py
# --linger 1 (srtsink closes without SRT linger: a sender that exits at its
# EOS drops what is not yet acknowledged, i.e. the end of its stream).
# srtsrc is live, so the fuser is: mmfuse's latency must cover the senders'
# start-up when they send a file from timestamp 0.


def srt_src(port, keep=False):
    k = " keep-listening=true" if keep else ""
    return f"srtsrc uri=srt://127.0.0.1:{port}?mode=listener{k} ! gdpdepay"


def srt_sink(port):
    return f"gdppay ! srtsink uri=srt://127.0.0.1:{port}"


def need_srt():
    r = subprocess.run(["gst-inspect-1.0", "srtsrc"], capture_output=True)
    if r.returncode != 0:
        print("# no srtsrc (gstreamer1.0-plugins-bad with SRT)")
        sys.exit(77)


def case_srt_file(work):
    """The file case over SRT: the same decisions as one process."""
    need_srt()
    srt = os.path.join(work, "cues.srt")
    with open(srt, "w") as f:
        f.write(SRT)
    text = f"filesrc location={srt} ! subparse ! textenc model={MODEL}"
    single = os.path.join(work, "single.jsonl")
    finish(launch(f"{IMAGE} ! f.sink_0 {text} ! f.sink_1 mmfuse name=f model={MODEL} ! "
                  f"mmdecode model={MODEL} ! mmpublish location={single} ! fakesink"),
           "single")
    p_img, p_txt = free_udp_port(), free_udp_port()
    dist = os.path.join(work, "dist.jsonl")
    fusion = launch(f"{srt_src(p_img)} ! f.sink_0 {srt_src(p_txt)} ! f.sink_1 "
                    f"mmfuse name=f model={MODEL} latency=10000000000 ! "
                    f"mmdecode model={MODEL} ! mmpublish location={dist} ! fakesink")
    wait_udp_bound(p_img)
    wait_udp_bound(p_txt)
    t0 = time.monotonic()
    senders = [mmrun(["--quiet", "--linger", "1"], f"{IMAGE} ! {srt_sink(p_img)} sync=false"),
               mmrun(["--quiet", "--linger", "1"], f"{text} ! {srt_sink(p_txt)} sync=false")]
    for s in senders:
        finish(s, "sender")
    finish(fusion, "fusion")
    a, b = read_jsonl(single), read_jsonl(dist)
    same = sum(key(x) == key(y) for x, y in zip(a, b))
    print(f"# srt-file: {len(a)} decisions in one process, {len(b)} across three over SRT, "
          f"{same} equal ({time.monotonic() - t0:.1f} s from the senders' start)")
    assert len(a) == len(b) == same > 0, (len(a), len(b), same)
    assert any(d["input-present"][2] for d in b)  # the text did pair


LIVE_IMAGE = ("videotestsrc is-live=true pattern=ball ! "
              "video/x-raw,format=RGB,width=16,height=16,framerate=20/1 ! "
              f"imageenc model={MODEL}")
LIVE_AUDIO = ("audiotestsrc is-live=true wave=pink-noise ! "
              "audio/x-raw,rate=16000,channels=1 ! audioconvert ! "
              f"audioenc model={MODEL} hop=250000000")
MS = 1000 * 1000


def live_fuser(work, src_img, src_aud, seconds):
    """A live fuser of an image and an audio branch, sharing its clock;
    returns (process, UDP clock port, base time, decisions file).  Its
    latency (1 s) covers what the senders add before SRT: an audio window
    is sent when its last sample is in (up to a hop after the decision it
    covers) and SRT holds every packet for its own 125 ms."""
    udp, out = free_udp_port(), os.path.join(work, "live.jsonl")
    fuser = mmrun(["--quiet", "--duration", str(seconds), "--clock-provider", str(udp),
                   "--base-time", "now"],
                  f"{src_img} ! f.sink_0 {src_aud} ! f.sink_1 "
                  f"mmfuse name=f model={MODEL} interval=250000000 max-age=0 "
                  f"latency=1000000000 ! mmdecode model={MODEL} ! "
                  f"mmpublish location={out} ! fakesink sync=false")
    line = fuser.stderr.readline()
    assert line.startswith("mmrun: base-time "), line
    return fuser, udp, line.split()[-1], out


def live_sender(desc, sink, udp, base, seconds):
    return mmrun(["--quiet", "--duration", str(seconds), "--linger", "0.5",
                  "--net-clock", f"127.0.0.1:{udp}", "--base-time", base],
                 f"{desc} ! {sink}")


def in_time(d, m, frame):
    """Input @m was present with an embedding of the decision's moment."""
    return d["input-present"][m] and abs(d["input-pts"][m] - d["pts"]) <= frame


def case_srt_live(work):
    """Live image and audio senders over SRT on the fuser's clock and base
    time: every decision while both run has both, each of its moment; the
    audio sender killed (SIGKILL) 3 s in: the fuser decides on to its end
    with audio missing (no stall) and exits cleanly."""
    need_srt()
    p_img, p_aud = free_udp_port(), free_udp_port()
    fuser, udp, base, out = live_fuser(work, srt_src(p_img), srt_src(p_aud), 8)
    wait_udp_bound(p_img)
    wait_udp_bound(p_aud)
    image = live_sender(LIVE_IMAGE, srt_sink(p_img), udp, base, 6)
    audio = live_sender(LIVE_AUDIO, srt_sink(p_aud), udp, base, 6)
    time.sleep(4)
    audio.send_signal(signal.SIGKILL)
    audio.wait()
    killed = time.monotonic()
    finish(image, "image sender", 20)
    finish(fuser, "fusion after the audio sender died", 20)
    d = read_jsonl(out)
    both = [x for x in d if x["input-present"][0] and x["input-present"][1]]
    assert len(both) >= 4, d
    first, last = both[0]["pts"], both[-1]["pts"]
    inside = [x for x in d if first <= x["pts"] <= last]
    after = [x for x in d if x["pts"] > last]
    img_after = [x for x in after if x["input-present"][0]]
    print(f"# srt-live: {len(d)} decisions, {len(both)} with image and audio "
          f"({first / 1e9:.2f} s to {last / 1e9:.2f} s), {len(inside)} in that span; "
          f"after the audio sender's death {len(after)} decisions, {len(img_after)} with "
          f"the image, none with audio")
    # while both run, every decision has both, each of its own moment
    # (a frame is 50 ms, an audio window covers the decision's time)
    assert all(in_time(x, 0, 50 * MS) for x in inside), inside
    assert all(x["input-present"][1] and x["input-pts"][1] <= x["pts"] for x in inside), inside
    # after the kill: decisions go on, with the image, without audio
    assert len(img_after) >= 4, after
    assert not any(x["input-present"][1] for x in after)


def case_srt_sender_returns(work):
    """A sender that comes back.  Here each sender listens (`srtsink
    mode=listener`) and the fuser calls it (`srtsrc`, caller, with its
    default auto-reconnect=true): when a sender dies, its srtsrc sees the
    connection broken (SRT's peer idle timeout, 5 s) and calls again until a
    sender listens there; gdpdepay starts over on the new connection (srtsrc
    marks it DISCONT) and mmfuse takes the new stream on the same pad.  The
    image sender is killed 3 s in and another one started 2 s later on the
    same clock and base time: decisions go on with the image missing, then
    with the image again, each frame of its moment; audio all along; no
    stall, the fuser ends cleanly."""
    need_srt()
    p_img, p_aud = free_udp_port(), free_udp_port()
    fuser, udp, base, out = live_fuser(work, f"srtsrc uri=srt://127.0.0.1:{p_img} ! gdpdepay",
                                       f"srtsrc uri=srt://127.0.0.1:{p_aud} ! gdpdepay", 14)
    listen = "gdppay ! srtsink uri=srt://127.0.0.1:{}?mode=listener"
    audio = live_sender(LIVE_AUDIO, listen.format(p_aud), udp, base, 11)
    image = live_sender(LIVE_IMAGE, listen.format(p_img), udp, base, 11)
    time.sleep(3)
    image.send_signal(signal.SIGKILL)
    image.wait()
    time.sleep(2)
    again = live_sender(LIVE_IMAGE, listen.format(p_img), udp, base, 7)
    finish(again, "the returning image sender", 20)
    finish(audio, "audio sender", 20)
    finish(fuser, "fusion", 20)
    d = read_jsonl(out)
    img = [i for i, x in enumerate(d) if x["input-present"][0]]
    gaps = [(a, b) for a, b in zip(img, img[1:]) if b - a > 1]
    assert len(gaps) == 1, ("expected one span without the image",
                            [x["input-present"] for x in d])
    a, b = gaps[0]
    back = [x for x in d[b:] if x["input-present"][0]]
    print(f"# srt-sender-returns: {len(d)} decisions; image up to {d[a]['pts'] / 1e9:.2f} s, "
          f"missing in {b - a - 1} ({d[a + 1]['pts'] / 1e9:.2f}-{d[b - 1]['pts'] / 1e9:.2f} s), "
          f"back from {d[b]['pts'] / 1e9:.2f} s in {len(back)} decisions")
    assert b - a - 1 >= 4, "the image was not missing for a while after the kill"
    assert len(back) >= 8, "the returning sender's image did not come back"
    assert all(in_time(x, 0, 50 * MS) for x in back), back
    assert all(x["input-present"][1] for x in d[a:b + 1]), "audio lost with the image"


def main():
    if LAUNCH is None:
        sys.exit(77)
    os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(BUILD, "plugins"))
    work = tempfile.mkdtemp(prefix="mmdist-")
    try:
        {"file": case_file, "sender-killed": case_sender_killed, "srt-file": case_srt_file,
         "srt-live": case_srt_live,
         "srt-sender-returns": case_srt_sender_returns}[sys.argv[1]](work)
    finally:
        for p in CHILDREN:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

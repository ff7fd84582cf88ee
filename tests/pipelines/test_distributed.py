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

from netutil import free_port, read_jsonl, wait_listening

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






def launch(desc):
    return subprocess.Popen([LAUNCH, "-q"] + desc.split(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, what, timeout=30):
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{what} did not finish: stalled")
    assert proc.returncode == 0, f"{what}: {err}"




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


def main():
    if LAUNCH is None:
        sys.exit(77)
    os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(BUILD, "plugins"))
    work = tempfile.mkdtemp(prefix="mmdist-")
    try:
        {"file": case_file, "sender-killed": case_sender_killed}[sys.argv[1]](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

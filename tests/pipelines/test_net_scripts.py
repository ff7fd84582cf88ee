#!/usr/bin/python3
"""The ready network pipelines, run as a user runs them, on the sample file
(build dir's sample/news.mkv, made by pipelines/make-sample.sh):

    test_net_scripts.py CASE  (distributed | distributed-roles | mqtt | mqtt-host)

distributed: `sh pipelines/distributed.sh news.mkv` (the fuser and three
  senders, four processes joined by GDP over TCP) decides exactly as the
  same pipeline in one process (every decision: time, labels, scores,
  presence and the PTS/duration of each input used), and the text did pair.
distributed-roles: the same with each role started by hand (ROLE=fuser,
  then ROLE=image/audio/text), as on several hosts; and a sender with no
  fuser listening fails at once with a clear message.
mqtt: `sh pipelines/mqtt.sh news.mkv` starts its own mosquitto and
  subscriber, publishes every decision at QoS 1, and the subscriber received
  every decision the script printed (same times and labels).
mqtt-host: with MQTT_HOST/MQTT_PORT/TOPIC set, to a broker and subscriber
  the test started: the same, and the script starts no broker.
SPDX-License-Identifier: LGPL-2.1-or-later
"""
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from netutil import free_port, read_jsonl, wait_listening

ROOT = os.environ.get("MM_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MM_BUILD_ROOT", os.path.join(ROOT, "build"))
WORK = os.environ.get("MM_WORK", os.path.join(BUILD, "tests", "pipelines"))
SAMPLE = os.path.join(WORK, "sample", "news.mkv")
MODEL = os.path.join(ROOT, "models", "scenes.safetensors")


def env(**extra):
    e = dict(os.environ)
    e["BUILD"] = BUILD
    e["MODEL"] = MODEL
    e["GST_PLUGIN_PATH"] = os.path.join(BUILD, "plugins")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def ensure_sample():
    """Makes WORK/sample once (make-sample.sh), under test_pipelines.py's lock."""
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, ".sample.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(SAMPLE):
            subprocess.run(["sh", "pipelines/make-sample.sh", os.path.dirname(SAMPLE)],
                           check=True, env=env(), timeout=300, cwd=ROOT)


def free_ports(n):
    """@n consecutive free TCP ports on 127.0.0.1."""
    for base in range(20000 + os.getpid() % 20000, 60000, 7):
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise AssertionError("no free ports")




def key(d):
    return (d["pts"], d["duration"], d["labels"], d["scores"], d["input-present"],
            d["input-pts"], d["input-duration"])


def single_process(out):
    """The one-process pipeline distributed.sh splits."""
    m = MODEL
    desc = (f"filesrc location={SAMPLE} ! matroskademux name=d "
            f"d.video_0 ! queue ! decodebin ! videoconvert ! imageenc model={m} interval=15 ! "
            "queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! f.sink_0 "
            f"d.audio_0 ! queue ! decodebin ! audioconvert ! audioresample ! audioenc model={m} ! "
            "queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! f.sink_1 "
            f"d.subtitle_0 ! queue ! textenc model={m} ! "
            "queue max-size-time=0 max-size-bytes=0 max-size-buffers=0 ! f.sink_2 "
            f"mmfuse name=f model={m} max-age=0 ! mmdecode model={m} ! "
            f"mmpublish location={out} ! fakesink sync=false")
    r = subprocess.run(["gst-launch-1.0", "-q"] + desc.split(), env=env(), timeout=120,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def compare(a, b, what):
    same = sum(key(x) == key(y) for x, y in zip(a, b))
    print(f"# {what}: {len(a)} decisions in one process, {len(b)} across processes, "
          f"{same} equal")
    assert len(a) == len(b) == same > 0, (len(a), len(b), same)
    assert any(d["input-present"][2] for d in b), "the text never paired"
    assert all(d["input-present"][0] and d["input-present"][1] for d in b), \
        "a decision without image or audio"


def case_distributed(work):
    one, dist = os.path.join(work, "one.jsonl"), os.path.join(work, "dist.jsonl")
    single_process(one)
    t0 = time.monotonic()
    r = subprocess.run(["sh", os.path.join(ROOT, "pipelines", "distributed.sh"), SAMPLE],
                       env=env(OUT=dist, PORT=free_ports(3)), timeout=120,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    print(f"# distributed.sh: {time.monotonic() - t0:.1f} s")
    compare(read_jsonl(one), read_jsonl(dist), "distributed.sh")


def case_distributed_srt(work):
    """distributed.sh with TRANSPORT=srt: GDP over SRT, the same decisions."""
    r = subprocess.run(["gst-inspect-1.0", "srtsrc"], capture_output=True)
    if r.returncode != 0:
        print("# no srtsrc (gstreamer1.0-plugins-bad with SRT)")
        sys.exit(77)
    one, dist = os.path.join(work, "one.jsonl"), os.path.join(work, "dist.jsonl")
    single_process(one)
    t0 = time.monotonic()
    r = subprocess.run(["sh", os.path.join(ROOT, "pipelines", "distributed.sh"), SAMPLE],
                       env=env(OUT=dist, PORT=free_ports(3), TRANSPORT="srt"), timeout=120,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    print(f"# distributed.sh TRANSPORT=srt: {time.monotonic() - t0:.1f} s")
    compare(read_jsonl(one), read_jsonl(dist), "distributed.sh over SRT")


def case_distributed_roles(work):
    script = os.path.join(ROOT, "pipelines", "distributed.sh")
    port = free_ports(3)
    # no fuser: a sender stops at once, saying why
    t0 = time.monotonic()
    r = subprocess.run(["sh", script, SAMPLE], env=env(ROLE="audio", PORT=port), timeout=30,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "connect" in r.stderr.lower(), (r.returncode, r.stderr)
    print(f"# sender without a fuser: exit {r.returncode} in {time.monotonic() - t0:.1f} s")
    one, dist = os.path.join(work, "one.jsonl"), os.path.join(work, "roles.jsonl")
    single_process(one)
    fuser = subprocess.Popen(["sh", script], env=env(ROLE="fuser", OUT=dist, PORT=port),
                             stderr=subprocess.PIPE, text=True)
    try:
        for p in range(port, port + 3):
            wait_listening(p, 20)
        senders = [subprocess.Popen(["sh", script, SAMPLE], env=env(ROLE=r, PORT=port),
                                    stderr=subprocess.PIPE, text=True)
                   for r in ("image", "audio", "text")]
        for s in senders:
            _, err = s.communicate(timeout=60)
            assert s.returncode == 0, err
        _, err = fuser.communicate(timeout=60)
        assert fuser.returncode == 0, err
    finally:
        if fuser.poll() is None:
            fuser.kill()
    compare(read_jsonl(one), read_jsonl(dist), "ROLE=fuser + three senders")


def run_mqtt(work, **extra):
    """mqtt.sh on the sample; returns the decisions it printed (--jsonl)."""
    out = os.path.join(work, "printed.jsonl")
    r = subprocess.run(["sh", os.path.join(ROOT, "pipelines", "mqtt.sh"), SAMPLE,
                        "--jsonl", out, "--quiet"],
                       env=env(**extra), timeout=120, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return read_jsonl(out), r.stderr


def check_received(printed, received, what):
    print(f"# {what}: {len(printed)} decisions printed, {len(received)} received by a "
          "subscriber")
    assert printed and len(received) == len(printed), (len(printed), len(received))
    assert [d["pts"] for d in received] == [d["pts"] for d in printed]
    assert [d["labels"] for d in received] == [d["labels"] for d in printed]
    assert all(d["stream-id"] == "news" for d in received)


def case_mqtt(work):
    """No MQTT_HOST: the script runs its own broker and subscriber."""
    if not shutil.which("mosquitto") or not shutil.which("mosquitto_sub"):
        print("# mosquitto missing")
        return 77
    got = os.path.join(work, "received.jsonl")
    printed, err = run_mqtt(work, MQTT_PORT=free_port(), RECEIVED=got)
    assert "messages received on mm/news/decisions" in err, err
    check_received(printed, read_jsonl(got), "mqtt.sh, its own broker")


def case_mqtt_host(work):
    """MQTT_HOST given: publishes to that broker (started by the test, with
    the test's own subscriber on a custom topic); starts nothing itself."""
    if not shutil.which("mosquitto") or not shutil.which("mosquitto_sub"):
        print("# mosquitto missing")
        return 77
    port = free_port()
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    sub = None
    try:
        log = os.path.join(work, "sub.log")
        deadline = time.monotonic() + 20
        while True:  # (re)start the subscriber until its SUBACK is logged
            assert time.monotonic() < deadline, "cannot subscribe to the test's broker"
            if sub is None or sub.poll() is not None:
                sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p",
                                        str(port), "-q", "1", "-t", "cams/#"],
                                       stdout=open(log, "w"), stderr=subprocess.STDOUT)
            time.sleep(0.05)
            if "SUBACK" in open(log).read():
                break
        printed, err = run_mqtt(work, MQTT_HOST="127.0.0.1", MQTT_PORT=port,
                                TOPIC="cams/{stream-id}")
        assert "local mosquitto" not in err, err
        time.sleep(0.5)
    finally:
        if sub is not None:
            sub.terminate()
            sub.wait(timeout=10)
        broker.terminate()
        broker.wait(timeout=10)
    with open(log) as f:
        received = [json.loads(x) for x in f if x.startswith("{")]
    check_received(printed, received, "mqtt.sh, MQTT_HOST given")


def run_net_clock(work, shared):
    """A live fuser (its own live audio, plus image embeddings received
    over GDP/TCP) and a live image sender started 1.5 s later in another
    process.  shared: the sender runs on the fuser's clock (mmrun
    --clock-provider / --net-clock) with the fuser's base time.  Returns the
    decisions made while the sender was running, as (pts, image present,
    image input pts)."""
    mmrun = [sys.executable, os.path.join(ROOT, "pipelines", "mmrun.py")]
    tcp, udp = free_port(), free_port()  # the clock is UDP: any free number
    out = os.path.join(work, "netclock-%d.jsonl" % shared)
    fuse_args = ["--quiet", "--duration", "7"]
    if shared:
        fuse_args += ["--clock-provider", str(udp), "--base-time", "now"]
    fuser = subprocess.Popen(
        mmrun + fuse_args +
        (f"tcpserversrc host=127.0.0.1 port={tcp} ! gdpdepay ! f.sink_0 "
         "audiotestsrc is-live=true wave=pink-noise ! audio/x-raw,rate=16000,channels=1 ! "
         f"audioenc model={MODEL} hop=250000000 ! f.sink_1 "
         f"mmfuse name=f model={MODEL} interval=250000000 max-age=0 latency=300000000 ! "
         f"mmdecode model={MODEL} ! mmpublish location={out} ! fakesink sync=false").split(),
        env=env(), stderr=subprocess.PIPE, text=True)
    base = None
    try:
        if shared:
            line = fuser.stderr.readline()
            assert line.startswith("mmrun: base-time "), line
            base = line.split()[-1]
        wait_listening(tcp, 20)
        time.sleep(1.5)
        launched = time.monotonic_ns()  # GStreamer's system clock is CLOCK_MONOTONIC too
        send_args = ["--quiet", "--duration", "3.5"]
        if shared:
            send_args += ["--net-clock", f"127.0.0.1:{udp}", "--base-time", base]
        sender = subprocess.run(
            mmrun + send_args +
            ("videotestsrc is-live=true pattern=ball ! "
             "video/x-raw,format=RGB,width=32,height=32,framerate=20/1 ! "
             f"imageenc model={MODEL} ! gdppay ! "
             f"tcpclientsink sync=false host=127.0.0.1 port={tcp}").split(),
            env=env(), capture_output=True, text=True, timeout=30)
        assert sender.returncode == 0, sender.stderr
        _, err = fuser.communicate(timeout=30)
        assert fuser.returncode == 0, err
    finally:
        if fuser.poll() is None:
            fuser.kill()
    return ([(d["pts"], d["input-present"][0], d["input-pts"][0]) for d in read_jsonl(out)],
            launched - int(base) if base else None)


def case_net_clock(work):
    """Live pipelines in two processes pair by timestamp only on a shared
    clock and base time: with them, every decision made while the sender
    runs has the frame of its own moment (within one frame, 50 ms), and the
    frames sit at the fuser's running time of their capture.  Without (the
    control, printed), each process counts from its own start and the
    frames land seconds early, next to audio of another moment."""
    control, _ = run_net_clock(work, False)
    shared, launched = run_net_clock(work, True)
    for name, ds in (("own clocks", control), ("shared clock", shared)):
        with_image = [d for d in ds if d[1]]
        offs = [abs(d[2] - d[0]) / 1e6 for d in with_image]
        print(f"# {name}: {len(ds)} decisions, {len(with_image)} with the image "
              f"(from {with_image[0][0] / 1e9 if with_image else float('nan'):.2f} s to "
              f"{with_image[-1][0] / 1e9 if with_image else float('nan'):.2f} s); "
              f"image PTS - decision PTS: max {max(offs) if offs else float('nan'):.0f} ms")
    with_image = [d for d in shared if d[1]]
    assert len(with_image) >= 8, shared  # 3.5 s of frames, a decision every 250 ms
    first, last = with_image[0][0], with_image[-1][0]
    inside = [d for d in shared if first <= d[0] <= last]
    assert all(d[1] for d in inside), "image missing inside the sender's run: %r" % inside
    assert all(abs(d[2] - d[0]) <= 50 * 1000 * 1000 for d in with_image), with_image
    # the frames are placed at the moment they were captured: after the
    # sender was launched (on the fuser's running time), within its start-up
    print(f"# sender launched at {launched / 1e9:.2f} s of the fuser's running time")
    assert launched <= first <= launched + 3 * 10**9, (first, launched)


CASES = {"net-clock": case_net_clock, "distributed": case_distributed,
         "distributed-srt": case_distributed_srt,
         "distributed-roles": case_distributed_roles,
         "mqtt": case_mqtt, "mqtt-host": case_mqtt_host}


def main():
    case = sys.argv[1]
    ensure_sample()
    with tempfile.TemporaryDirectory() as work:
        sys.exit(CASES[case](work) or 0)


if __name__ == "__main__":
    main()

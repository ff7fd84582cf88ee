#!/usr/bin/python3
"""mmpublish against real outputs: JSON lines in a file, and a real Debian
mosquitto broker started here on 127.0.0.1 at a free port.

    test_publish.py CASE     (file | mqtt | mqtt-restart | mqtt-bad-host)

Exits 77 (skipped) when PyGObject or, for the MQTT cases, mosquitto is
missing; fails when mmpublish was not built.
SPDX-License-Identifier: LGPL-2.1-or-later
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# wall-clock bounds stretch under the sanitizers (tests/run.sh asan|tsan)
SLOW = float(os.environ.get("MM_TIME_SCALE", "1"))

try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
except (ImportError, ValueError):
    sys.exit(77)

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


class Broker:
    """mosquitto on 127.0.0.1:port, persistent (so a restart keeps the
    subscriber's session and its undelivered QoS 1 messages)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {workdir}/\n"
                    "max_queued_messages 100000\nautosave_interval 1\n")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class Subscriber:
    def __init__(self, port, topic, out):
        self.out = open(out, "w")
        self.path = out
        # persistent session (-c, fixed id) at QoS 1: resubscribed and fed
        # what the broker kept for it across a broker restart
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1",
             "-c", "-i", f"mmtest-sub-{port}"], stdout=self.out, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def lines(self):
        self.out.flush()
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_for(self, n, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.lines()) < n:
            time.sleep(0.1)
        return self.lines()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        self.out.close()


def run(desc, timeout=30.0, on_tick=None):
    """Runs @desc to EOS; returns (decision messages, warnings, element)."""
    pipe = Gst.parse_launch(desc)
    pub = pipe.get_by_name("pub")
    bus = pipe.get_bus()
    decisions, warnings = [], []
    pipe.set_state(Gst.State.PLAYING)
    start = time.monotonic()
    try:
        while True:
            assert time.monotonic() - start < timeout, "no EOS: the pipeline hangs"
            msg = bus.timed_pop_filtered(
                100 * Gst.MSECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS
                | Gst.MessageType.ERROR | Gst.MessageType.WARNING)
            if on_tick:
                on_tick(time.monotonic() - start)
            if msg is None:
                continue
            if msg.type == Gst.MessageType.ERROR:
                raise AssertionError(msg.parse_error())
            if msg.type == Gst.MessageType.WARNING:
                warnings.append(str(msg.parse_warning()[0].message))
            elif msg.type == Gst.MessageType.EOS:
                break
            elif msg.get_structure().get_name() == "mm-classification":
                decisions.append(msg.get_structure().get_uint64("pts")[1])
        published = pub.get_property("published")
        dropped = pub.get_property("dropped")
    finally:
        pipe.set_state(Gst.State.NULL)
    return decisions, warnings, published, dropped, time.monotonic() - start


def srt_pipeline(srt, publish):
    return (f'filesrc location="{srt}" ! subparse ! textenc model="{MODEL}" ! f.sink_0 '
            f'mmfuse name=f model="{MODEL}" interval={250 * Gst.MSECOND} ! '
            f'mmdecode model="{MODEL}" ! mmpublish name=pub {publish} ! fakesink')


def live_pipeline(n_frames, publish):
    return (f'videotestsrc is-live=true num-buffers={n_frames} ! '
            f'video/x-raw,format=RGB,width=16,height=16,framerate=10/1 ! '
            f'imageenc model="{MODEL}" ! f.sink_0 mmfuse name=f model="{MODEL}" ! '
            f'mmdecode model="{MODEL}" ! mmpublish name=pub {publish} ! fakesink')


def case_file(work, srt):
    out = os.path.join(work, "d.jsonl")
    decisions, warnings, published, dropped, _ = run(
        srt_pipeline(srt, f'location="{out}" stream-id=cam7'))
    with open(out) as f:
        lines = [json.loads(x) for x in f]
    assert len(lines) == len(decisions) == published > 0, (len(lines), len(decisions), published)
    assert dropped == 0
    assert [x["pts"] for x in lines] == decisions
    for x in lines:
        assert x["stream-id"] == "cam7"
        assert x["uri"] == "file://" + srt, x["uri"]
        assert x["wallclock"].endswith("Z") and "T" in x["wallclock"]
        for k in ["labels", "scores", "kind", "outputs", "names", "inputs", "input-present",
                  "input-pts", "input-duration", "input-age", "text", "label", "score"]:
            assert k in x, k
        assert x["inputs"] == ["image", "audio", "text"]
    print(f"file: {len(decisions)} decisions, {len(lines)} JSON lines")


def case_mqtt(work, srt):
    broker = Broker(work)
    sub = Subscriber(broker.port, "mm/#", os.path.join(work, "sub.txt"))
    try:
        decisions, warnings, published, dropped, _ = run(srt_pipeline(
            srt, f"host=127.0.0.1 port={broker.port} topic=mm/{{stream-id}}/decisions "
                 f"stream-id=cam3 qos=1"))
        got = sub.wait_for(len(decisions))
    finally:
        sub.stop()
        broker.stop()
    assert len(decisions) > 0 and dropped == 0 and published == len(decisions)
    assert sorted(x["pts"] for x in got) == sorted(decisions), (len(got), len(decisions))
    assert all(x["stream-id"] == "cam3" for x in got)
    print(f"mqtt: {len(decisions)} decisions made, {published} acknowledged, "
          f"{len(got)} received by mosquitto_sub")


def case_mqtt_restart(work, srt):
    broker = Broker(work)
    sub = Subscriber(broker.port, "mm/#", os.path.join(work, "sub.txt"))
    state = {"killed": False, "back": False, "kill_pts": 0, "back_pts": 0, "last": 0}

    def tick(t):
        if t > 1.5 and not state["killed"]:
            broker.stop()
            state["killed"] = True
            state["kill_pts"] = int((t - 0.5) * Gst.SECOND)
        elif t > 3.0 and not state["back"]:
            broker.start()
            state["back"] = True
            state["back_pts"] = int((t + 0.5) * Gst.SECOND)

    try:
        decisions, warnings, published, dropped, _ = run(
            live_pipeline(60, f"host=127.0.0.1 port={broker.port} qos=1 max-queue=1000 "
                              f"flush-timeout={20 * Gst.SECOND}"),
            timeout=40, on_tick=tick)
        got = sub.wait_for(len(decisions), 15)
    finally:
        sub.stop()
        broker.stop()
    assert state["killed"] and state["back"]
    received = set(x["pts"] for x in got)
    missing = [p for p in decisions if p not in received]
    print(f"mqtt-restart: {len(decisions)} decisions, broker down 1.5-3.0 s, "
          f"{len(received)} distinct received ({len(got)} messages, duplicates allowed at "
          f"QoS 1), {len(missing)} lost, {dropped} dropped, {published} acknowledged")
    # The publisher's guarantee: at QoS 1 the broker acknowledged (PUBACK)
    # every decision, those queued while it was away included, none dropped.
    assert dropped == 0 and published >= len(decisions), (published, dropped)
    # The subscriber's view depends on the restarted broker restoring its
    # persistent session before the queued decisions arrive, which mosquitto
    # does not always do in time: everything outside the outage must arrive.
    outage = [p for p in decisions if state["kill_pts"] <= p < state["back_pts"] + Gst.SECOND]
    assert all(p in received for p in decisions if p not in outage), missing[:10]


def case_mqtt_bad_host(work, srt):
    decisions, warnings, published, dropped, elapsed = run(
        srt_pipeline(srt, f"host=nonexistent.invalid port={free_port()} "
                          f"flush-timeout={2 * Gst.SECOND}"), timeout=20)
    assert decisions and published == 0
    assert any("Cannot connect to the MQTT broker nonexistent.invalid" in w for w in warnings), \
        warnings
    assert any("not published within the flush timeout" in w for w in warnings), warnings
    assert elapsed < 10 * SLOW, elapsed
    print(f"mqtt-bad-host: warnings {warnings}, EOS after {elapsed:.1f} s")


def main():
    case = sys.argv[1]
    os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(BUILD, "plugins"))
    Gst.init(None)
    if Gst.ElementFactory.find("mmpublish") is None:
        raise SystemExit("mmpublish not built: install libmosquitto-dev (tests/setup.sh)")
    if case.startswith("mqtt") and not (shutil.which("mosquitto") or
                                        os.path.exists("/usr/sbin/mosquitto")):
        sys.exit(77)
    os.environ["PATH"] += ":/usr/sbin"
    work = tempfile.mkdtemp(prefix="mmpublish-")
    srt = os.path.join(work, "cues.srt")
    with open(srt, "w") as f:
        f.write(SRT)
    try:
        {"file": case_file, "mqtt": case_mqtt, "mqtt-restart": case_mqtt_restart,
         "mqtt-bad-host": case_mqtt_bad_host}[case](work, srt)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

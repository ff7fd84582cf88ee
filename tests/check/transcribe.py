#!/usr/bin/python3
# mmtranscribe against speech whose timing is known: utterances spoken by
# flite (voice kal16) placed at chosen times in 16 kHz audio with a little
# noise between them.  The truth for each utterance is where its samples
# actually rise above the noise (measured on the waveform written here, not
# assumed from the placement).
#
#   timing   each transcript buffer's PTS and end are within 100 ms of its
#            utterance's, its text is non-empty, and nothing is transcribed
#            in the silences; the mm-transcript bus message matches the buffer
#   speed    30 s of speech through speech-transcript.sh's pipeline (audioenc,
#            mmtranscribe, textenc, mmfuse, mmdecode) with no clock: the CPU
#            time the whole pipeline takes, against the audio's duration
#            (CPU time, not wall time, so a loaded machine does not fail it)
#   pairing  in that pipeline, every decision inside an utterance has the
#            text present, and the text embedding used there is the one of
#            that utterance (provenance PTS = the transcript's PTS)
#   live     the same speech from a live source in real time: transcripts
#            arrive, timed as in the file run (within 100 ms)
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Exits 77 (skipped) without PyGObject's Gst bindings, numpy, flite or the
# mmtranscribe element (built only with libpocketsphinx-dev).
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave

try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    import numpy as np
except (ImportError, ValueError):
    sys.exit(77)

RATE = 16000
TOL = 0.100  # s
# (start in seconds, words): gaps of 1.5-3 s of near-silence between them
UTTERANCES = [(1.0, "the strawberry is red"),
              (5.0, "open the door please"),
              (9.5, "a guitar song and piano music"),
              (14.0, "good morning everybody")]
NONE = Gst.CLOCK_TIME_NONE


def model_path():
    return os.path.join(os.environ["MM_SOURCE_ROOT"], "models", "scenes.safetensors")


def speak(text, tmp):
    out = os.path.join(tmp, "u.wav")
    subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", out], check=True)
    with wave.open(out) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1, w.getparams()
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)


def make_speech(tmp, seconds, utterances):
    """Writes speech.wav; returns [(start, end, words)], the true extents."""
    rng = np.random.default_rng(17)
    x = rng.normal(0.0, 20.0, int(seconds * RATE)).astype(np.float32)  # about -64 dBFS
    truth = []
    for start, words in utterances:
        s = speak(words, tmp)
        loud = np.nonzero(np.abs(s) > 0.02 * 32768)[0]  # where the voice really is
        assert loud.size, words
        at = int(start * RATE)
        x[at:at + s.size] += s
        truth.append(((at + loud[0]) / RATE, (at + loud[-1] + 1) / RATE, words))
    path = os.path.join(tmp, "speech.wav")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(x, -32768, 32767).astype(np.int16).tobytes())
    return path, truth


def collect(pipe, timeout=60):
    """Runs @pipe to EOS (bounded); returns (transcripts from the appsink
    'text' if any, mm-transcript messages, mm-classification messages)."""
    bus = pipe.get_bus()
    texts, messages, decisions = [], [], []
    sink = pipe.get_by_name("text")
    pipe.set_state(Gst.State.PLAYING)
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, "no EOS in %d s (a hang)" % timeout
            msg = bus.timed_pop_filtered(50 * Gst.MSECOND,
                                         Gst.MessageType.EOS | Gst.MessageType.ERROR
                                         | Gst.MessageType.ELEMENT)
            if sink is not None:
                while True:
                    sample = sink.emit("try-pull-sample", 0)
                    if sample is None:
                        break
                    buf = sample.get_buffer()
                    ok, info = buf.map(Gst.MapFlags.READ)
                    texts.append((buf.pts, buf.duration, bytes(info.data).decode()))
                    buf.unmap(info)
            if msg is None:
                continue
            if msg.type == Gst.MessageType.ERROR:
                raise AssertionError("error: %s (%s)" % msg.parse_error())
            if msg.type == Gst.MessageType.EOS:
                break
            s = msg.get_structure()
            if s.get_name() == "mm-transcript":
                messages.append((s.get_uint64("pts")[1], s.get_uint64("duration")[1],
                                 s.get_string("text")))
            elif s.get_name() == "mm-classification":
                decisions.append(s.copy())
    finally:
        pipe.set_state(Gst.State.NULL)
    return texts, messages, decisions


def match(texts, truth, what):
    """Each utterance has one transcript within TOL at both ends; nothing else."""
    report = []
    for pts, dur, text in texts:
        report.append("%s: %.3f-%.3f %r" % (what, pts / Gst.SECOND, (pts + dur) / Gst.SECOND, text))
    assert len(texts) == len(truth), "\n".join(["%d transcripts for %d utterances" % (
        len(texts), len(truth))] + report)
    worst = 0.0
    for (pts, dur, text), (start, end, words) in zip(texts, truth):
        assert text.strip(), "empty transcript for %r" % words
        e = max(abs(pts / Gst.SECOND - start), abs((pts + dur) / Gst.SECOND - end))
        worst = max(worst, e)
        assert e <= TOL, "%r: %.3f-%.3f s, spoken %.3f-%.3f s (error %.0f ms)\n%s" % (
            text, pts / Gst.SECOND, (pts + dur) / Gst.SECOND, start, end, e * 1000,
            "\n".join(report))
    return worst, report


def test_timing(tmp):
    path, truth = make_speech(tmp, 17.0, UTTERANCES)
    pipe = Gst.parse_launch(
        f'filesrc location="{path}" ! wavparse ! audioconvert ! audioresample ! '
        'audio/x-raw,format=S16LE,rate=16000,channels=1 ! mmtranscribe ! '
        'appsink name=text sync=false')
    texts, messages, _ = collect(pipe)
    worst, report = match(texts, truth, "file")
    assert messages == texts, (messages, texts)
    return ["worst interval error %.0f ms over %d utterances" % (worst * 1000, len(truth))] + report


def speech_pipeline(path, model):
    return Gst.parse_launch(
        f'filesrc location="{path}" ! wavparse ! audioconvert ! audioresample ! '
        'audio/x-raw,format=S16LE,rate=16000,channels=1 ! tee name=t '
        f't. ! queue ! audioenc model="{model}" ! f.sink_0 '
        f't. ! queue ! mmtranscribe ! tee name=tt ! queue ! textenc model="{model}" ! f.sink_1 '
        'tt. ! queue ! appsink name=text sync=false '
        f'mmfuse name=f model="{model}" interval={Gst.SECOND} ! mmdecode model="{model}" ! '
        'fakesink sync=false')


def thirty_seconds(tmp):
    utts = []
    t = 0.8
    words = ["the strawberry is red", "open the door please", "a guitar song and piano music",
             "good morning everybody", "the news today", "rain on the window"]
    k = 0
    while t < 27.0:
        utts.append((t, words[k % len(words)]))
        t += 3.6
        k += 1
    return make_speech(tmp, 30.0, utts)


def test_speed_and_pairing(tmp):
    path, truth = thirty_seconds(tmp)
    pipe = speech_pipeline(path, model_path())
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    texts, _, decisions = collect(pipe, timeout=120)
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    lines = ["30 s of speech: %.1f s CPU (%.2fx real time), %.1f s wall, %d transcripts, "
             "%d decisions" % (cpu, cpu / 30.0, wall, len(texts), len(decisions))]
    assert cpu < 30.0, lines[0]
    _, report = match(texts, truth, "30 s file")
    # pairing: a decision whose fusion window lies inside an utterance uses
    # that utterance's transcript
    paired = 0
    for s in decisions:
        pts = s.get_uint64("pts")[1]
        text_in = find_input(s, "text")
        for tpts, tdur, _ in texts:
            if tpts + 100 * Gst.MSECOND <= pts <= tpts + tdur - 100 * Gst.MSECOND:
                assert text_in is not None and text_in[0], \
                    "decision at %.2f s inside the utterance at %.2f s: text absent (%s)" % (
                        pts / Gst.SECOND, tpts / Gst.SECOND, s.to_string())
                assert text_in[1] == tpts, \
                    "decision at %.2f s used the text embedding at %.2f s, not %.2f s" % (
                        pts / Gst.SECOND, text_in[1] / Gst.SECOND, tpts / Gst.SECOND)
                paired += 1
    assert paired >= len(truth), "only %d decisions fell inside utterances" % paired
    lines.append("%d decisions inside utterances, each paired with its transcript" % paired)
    return lines


def find_input(s, modality):
    """(present, pts) of @modality's fusion input in decision @s, or None."""
    ok, mods = array_of(s, "inputs")
    if not ok:
        return None
    _, present = array_of(s, "input-present")
    _, pts = array_of(s, "input-pts")
    for i, m in enumerate(mods):
        if m == modality:
            return present[i], pts[i]
    return None


def array_of(s, field):
    if not s.has_field(field):
        return False, []
    ok, a = s.get_array(field)
    if not ok:
        return False, []
    return True, [a.get_nth(i) for i in range(a.n_values)]


def test_live(tmp):
    """The speech from a live appsrc, pushed in real time with timestamps as
    a capture card gives them: transcripts come, timed within TOL."""
    path, truth = make_speech(tmp, 9.0, UTTERANCES[:2])
    with wave.open(path) as w:
        pcm = w.readframes(w.getnframes())
    pipe = Gst.parse_launch(
        'appsrc name=src is-live=true format=time do-timestamp=false '
        'caps="audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved" ! '
        'queue ! mmtranscribe name=tr ! appsink name=text sync=true')
    src = pipe.get_by_name("src")
    pipe.set_state(Gst.State.PLAYING)
    chunk = RATE // 10 * 2  # 100 ms
    t0 = time.monotonic()
    for k in range(0, len(pcm), chunk):
        buf = Gst.Buffer.new_wrapped(pcm[k:k + chunk])
        buf.pts = (k // 2) * Gst.SECOND // RATE
        buf.duration = (len(pcm[k:k + chunk]) // 2) * Gst.SECOND // RATE
        src.emit("push-buffer", buf)
        lag = buf.pts / Gst.SECOND - (time.monotonic() - t0)
        if lag > 0:
            time.sleep(lag)
        if k == 10 * chunk:  # 1 s in: the latency the sink was configured with
            q = Gst.Query.new_latency()
            assert pipe.get_by_name("text").get_static_pad("sink").peer_query(q), \
                "mmtranscribe does not answer the latency query"
            live, lmin, lmax = q.parse_latency()
            tr = pipe.get_by_name("tr")
            want = tr.get_property("min-silence") + tr.get_property("max-utterance")
            assert live and lmin >= want, (live, lmin, want)
    src.emit("end-of-stream")
    texts, _, _ = collect(pipe, timeout=30)
    worst, report = match(texts, truth, "live")
    return ["live: worst interval error %.0f ms; latency answered: live, min %.2f s "
            "(min-silence + max-utterance %.2f s)" % (worst * 1000, lmin / Gst.SECOND,
                                                      want / Gst.SECOND)] + report


CASES = {"timing": test_timing, "speed-pairing": test_speed_and_pairing, "live": test_live}


def main(argv):
    Gst.init(None)
    if shutil.which("flite") is None or Gst.ElementFactory.find("mmtranscribe") is None:
        print("1..0 # SKIP flite or mmtranscribe missing")
        return 0
    names = argv[1:] or list(CASES)
    print("1..%d" % len(names))
    failed = 0
    for i, name in enumerate(names, 1):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                lines = CASES[name](tmp)
                print("ok %d - %s" % (i, name))
            except AssertionError as e:
                failed += 1
                print("not ok %d - %s" % (i, name))
                lines = str(e).splitlines()
        for line in lines:
            print("# " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

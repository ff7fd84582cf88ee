#!/usr/bin/python3
"""The ready scripts of pipelines/ on files they were not made for: each run
ends in seconds, with decisions from the tracks that are there or with a
message naming the missing track and the variable that handles it.

    /usr/bin/python3 tests/pipelines/test_scripts.py CASE

Environment: as tests/pipelines/test_pipelines.py (MM_SOURCE_ROOT,
MM_BUILD_ROOT, MM_WORK, MM_MODEL).  The media are made here with
gst-launch-1.0 from test sources (4 s, small), never committed.  A script
that hangs (as mkv-file.sh did on a file without one of its tracks) is
killed after HANG seconds and the case fails.
"""
import json
import os
import subprocess
import sys
import time

# wall-clock bounds stretch under the sanitizers (tests/run.sh asan|tsan)
SLOW = float(os.environ.get("MM_TIME_SCALE", "1"))

ROOT = os.environ.get("MM_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MM_BUILD_ROOT") or os.path.join(ROOT, "build")
WORK = os.path.join(os.environ.get("MM_WORK") or os.path.join(BUILD, "tests", "pipelines"),
                    "scripts")
MODEL = os.environ.get("MM_MODEL") or os.path.join(ROOT, "models", "scenes.safetensors")
PYTHON = "/usr/bin/python3"
SECONDS = 4          # length of the made-up media
HANG = 40            # a script still running after this is hanging
SKIP = 77

SRT = """1
00:00:00,500 --> 00:00:02,000
a red apple on a plate

2
00:00:02,500 --> 00:00:03,500
a toy train in the station
"""


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def env(**extra):
    e = dict(os.environ)
    e["BUILD"] = BUILD
    e["MODEL"] = MODEL
    for k in ("NO_VIDEO", "NO_AUDIO", "NO_TEXT", "DURATION"):
        e.pop(k, None)
    e.update({k: str(v) for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        e.pop(k, None)      # None: unset (the script's default)
    return e


def run(cmd, timeout=HANG, **extra):
    """Runs cmd; returns (status, stdout, stderr, seconds).  A run that does
    not end within timeout fails the case."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env(**extra), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        err = e.stderr or ""
        if isinstance(err, bytes):
            err = err.decode("utf-8", "replace")
        raise Failure("%s did not end within %d s (hangs)\nstderr:\n%s" % (
            " ".join(cmd), timeout, err[-2000:]))
    dt = time.monotonic() - t0
    print("# %s: status %d in %.1f s" % (" ".join(os.path.basename(c) for c in cmd[:3]),
                                        p.returncode, dt))
    return p.returncode, p.stdout, p.stderr, dt


def make_media(name, video=True, audio=True, text=True):
    """WORK/name.mkv: SECONDS of test video (160x120, 15 fps, H.264), test
    audio (16 kHz, Vorbis) and two subtitle cues, each only if asked."""
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, name + ".mkv")
    srt = os.path.join(WORK, name + ".srt")
    with open(srt, "w", encoding="utf-8") as f:
        f.write(SRT)
    line = ["matroskamux", "name=mux", "!", "filesink", "location=" + path]
    if video:
        line += ("videotestsrc num-buffers=%d pattern=ball ! "
                 "video/x-raw,width=160,height=120,framerate=15/1 ! videoconvert ! "
                 "x264enc speed-preset=ultrafast ! h264parse ! queue ! mux." % (15 * SECONDS)).split()
    if audio:
        line += ("audiotestsrc num-buffers=%d samplesperbuffer=1600 wave=pink-noise volume=0.1 ! "
                 "audio/x-raw,rate=16000,channels=1 ! audioconvert ! vorbisenc ! queue ! mux."
                 % (10 * SECONDS)).split()
    if text:
        line += ["filesrc", "location=" + srt, "!", "subparse", "!", "queue", "!", "mux."]
    p = subprocess.run(["gst-launch-1.0", "-q"] + line, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    check(p.returncode == 0 and os.path.getsize(path) > 0,
          "could not make %s: %s" % (path, p.stderr))
    return path


def mkv_file(path, *more, **extra):
    """mkv-file.sh PATH --quiet --stats S --jsonl J; returns (status, stderr,
    seconds, stats or None, rows)."""
    base = os.path.splitext(path)[0]
    st, jl = base + ".json", base + ".jsonl"
    for f in (st, jl):
        if os.path.exists(f):
            os.unlink(f)
    status, _, err, dt = run(["sh", "pipelines/mkv-file.sh", path] + list(more) +
                             ["--quiet", "--stats", st, "--jsonl", jl], **extra)
    stats = json.load(open(st, encoding="utf-8")) if os.path.exists(st) else None
    rows = [json.loads(x) for x in open(jl, encoding="utf-8")] if os.path.exists(jl) else []
    return status, err, dt, stats, rows


def adapted(path, track, var, present, absent):
    """The script runs without the missing track's branch, says so naming
    the variable, and decides from the others once a second to the end."""
    status, err, dt, stats, rows = mkv_file(path)
    check(status == 0, "status %d\n%s" % (status, err[-2000:]))
    want = "has no %s track: running without the %s branch (as %s=1)" % (track, track, var)
    check(want in err, "no %r on stderr:\n%s" % (want, err[-2000:]))
    check(stats is not None and stats["eos"] and not stats["error"], "no clean EOS: %r" % stats)
    check(len(rows) == SECONDS, "%d decisions for %d s at one a second" % (len(rows), SECONDS))
    check([r["time"] for r in rows] == [float(i) for i in range(SECONDS)],
          "decision times %r" % [r["time"] for r in rows])
    for r in rows:
        check(absent not in r["present"], "%s present at %.1f s" % (absent, r["time"]))
    for m in present:
        check(any(m in r["present"] for r in rows), "%s never present: %r" % (
            m, [r["present"] for r in rows]))
    check(dt < 30 * SLOW, "took %.1f s for %d s of media" % (dt, SECONDS))


# --------------------------------------------------------------------------
# cases

def test_no_video():
    """mkv-file.sh on audio + subtitles: decided from them, 1 s cadence."""
    adapted(make_media("novideo", video=False), "video", "NO_VIDEO", ["audio", "text"], "image")


def test_no_audio():
    """mkv-file.sh on video + subtitles: decided without audioenc."""
    adapted(make_media("noaudio", audio=False), "audio", "NO_AUDIO", ["image", "text"], "audio")


def test_no_text():
    """mkv-file.sh on video + audio: decided without textenc."""
    adapted(make_media("notext", text=False), "subtitle", "NO_TEXT", ["image", "audio"], "text")


def test_refusals():
    """What cannot be adapted stops at once (status 1) with the reason."""
    noaudio = make_media("refuse-noaudio", audio=False)
    novideo = make_media("refuse-novideo", video=False)
    text = os.path.join(WORK, "not-media.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("this is not a media file\n" * 20)
    cases = [
        ([noaudio], {"NO_AUDIO": 0}, "has no audio track, and NO_AUDIO=0 requires one"),
        ([novideo], {"NO_VIDEO": 0}, "has no video track, and NO_VIDEO=0 requires one"),
        ([novideo, os.path.join(WORK, "annotated.mkv")], {},
         "no video track in use in %s: nothing to annotate" % novideo),
        ([novideo], {"NO_AUDIO": 1, "NO_TEXT": 1}, "nothing to classify in %s" % novideo),
        ([text], {}, "cannot read the tracks of %s" % text),
    ]
    for args, extra, want in cases:
        status, err, dt, stats, rows = mkv_file(*args, **extra)
        check(status == 1, "%r %r: status %d\n%s" % (args, extra, status, err[-2000:]))
        check(want in err, "%r %r: no %r on stderr:\n%s" % (args, extra, want, err[-2000:]))
        check(stats is None and not rows, "%r %r: ran a pipeline" % (args, extra))
        check(dt < 15 * SLOW, "%r %r: took %.1f s to refuse" % (args, extra, dt))


def test_mmrun_preroll_timeout():
    """mmrun's --timeout counts from the start: a pipeline that never
    prerolls (mkv-file.sh's line on a file without video, linked by hand)
    ends after --timeout, not after a preroll wait plus --timeout."""
    novideo = make_media("preroll-novideo", video=False)
    timeout = 8
    status, _, err, dt = run(
        [PYTHON, "pipelines/mmrun.py", "--quiet", "--timeout", str(timeout),
         "filesrc", "location=" + novideo, "!", "matroskademux", "name=d",
         "d.video_0", "!", "queue", "!", "decodebin", "!", "videoconvert", "!",
         "imageenc", "model=" + MODEL, "!", "f.sink_0",
         "d.audio_0", "!", "queue", "!", "decodebin", "!", "audioconvert", "!",
         "audioresample", "!", "audioenc", "model=" + MODEL, "!", "f.sink_1",
         "mmfuse", "name=f", "model=" + MODEL, "!", "fakesink"],
        GST_PLUGIN_PATH=os.path.join(BUILD, "plugins"))
    check(status == 2, "status %d (want 2, timed out)\n%s" % (status, err[-2000:]))
    check("timed out after %d s, still prerolling" % timeout in err, "message:\n" + err[-2000:])
    check(dt < timeout + 6 * SLOW, "took %.1f s with --timeout %d" % (dt, timeout))


def test_tracks():
    """mmrun.py --tracks counts the tracks of each kind."""
    for name, v, a, t in (("tracks-all", 1, 1, 1), ("tracks-novideo", 0, 1, 1),
                          ("tracks-noaudio", 1, 0, 1), ("tracks-notext", 1, 1, 0)):
        path = make_media(name, video=bool(v), audio=bool(a), text=bool(t))
        status, out, err, _ = run([PYTHON, "pipelines/mmrun.py", "--tracks", path])
        check(status == 0, "%s: status %d\n%s" % (name, status, err))
        want = "CONTAINER=video/x-matroska\nN_VIDEO=%d\nN_AUDIO=%d\nN_TEXT=%d\n" % (v, a, t)
        check(out == want, "%s: %r, want %r" % (name, out, want))
    status, out, err, _ = run([PYTHON, "pipelines/mmrun.py", "--tracks",
                               os.path.join(WORK, "nonexistent.mkv")])
    check(status == 1 and out == "" and "not a file" in err, "missing file: %d %r %r" % (
        status, out, err))


def model_numeric(path):
    """(mean, std, weight, bias) of a model file's numeric component and its
    head labels, read with models/mmfile.py (numpy)."""
    sys.path.insert(0, os.path.join(ROOT, "models"))
    import mmfile
    t, doc = mmfile.load(path)
    return (t["numeric.mean"], t["numeric.std"], t["numeric.layers.0.weight"],
            t["numeric.layers.0.bias"], doc["components"]["head"]["labels"])


def read_log(path):
    """[(t, [values])] of a CSV sensor log (header skipped)."""
    rows = []
    for line in open(path, encoding="utf-8"):
        p = line.strip().split(",")
        try:
            rows.append((float(p[0]), [float(x) if x.strip() else float("nan") for x in p[1:]]))
        except ValueError:
            check(not rows, "%s: a non-numeric line after the first: %r" % (path, line))
    return rows


def expected_state(log, t, vs_model):
    """narrated/quiet at time t by the model's rule, computed here from the
    log and the numeric component's tensors: the sample valid at t (the last
    one at or before t) normalised, through the linear layer; s > 0 is
    narrated."""
    mean, std, w, b, _ = vs_model
    cur = [v for ts, v in log if ts <= t + 1e-6]
    check(cur, "no sensor sample at %.2f s" % t)
    # a missing value (NaN) is the feature's mean: the model's "nan": "mean"
    x = [0.0 if v != v else (v - m) / sd for v, m, sd in zip(cur[-1], mean, std)]
    s = sum(wi * xi for wi, xi in zip(w[0], x)) + b[0]
    return ("narrated" if s > 0 else "quiet"), s


def video_sensor(args, **extra):
    # per process: the video-sensor cases run in parallel and wrote the
    # same vs.jsonl (one read the other's half-written line under ASan)
    base = os.path.join(WORK, "vs-%d" % os.getpid())
    os.makedirs(WORK, exist_ok=True)
    st, jl = base + ".json", base + ".jsonl"
    for f in (st, jl):
        if os.path.exists(f):
            os.unlink(f)
    status, out, err, dt = run(["sh", "pipelines/video-sensor.sh"] + args +
                               ["--quiet", "--stats", st, "--jsonl", jl], MODEL=None, **extra)
    stats = json.load(open(st, encoding="utf-8")) if os.path.exists(st) else None
    rows = [json.loads(x) for x in open(jl, encoding="utf-8")] if os.path.exists(jl) else []
    return status, err, dt, stats, rows


VS_MODEL = os.path.join(ROOT, "pipelines", "video-sensor.safetensors")


def test_video_sensor():
    """video-sensor.sh on the sample: the first pass logs the audio level,
    every decision pairs a frame with the sensor sample valid at its time,
    narrated/quiet follows the log by the model's rule, and the topic is the
    bundled model's image-alone answer (mkv-file.sh without audio and text)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import test_pipelines
    sample = test_pipelines.ensure_sample()
    news = os.path.join(sample, "news.mkv")
    log_path = os.path.join(WORK, "vs-sensors.csv")
    vs = model_numeric(VS_MODEL)
    status, err, dt, stats, rows = video_sensor([news], SENSOR_LOG=log_path)
    check(status == 0, "status %d\n%s" % (status, err[-2000:]))
    duration = test_pipelines.segments()[-1][1]
    log = read_log(log_path)
    check(open(log_path).readline().strip() == "t,rms_db,peak_db", "log header")
    check(abs(len(log) - duration * 4) <= 1, "%d samples for %d s at 250 ms" % (len(log), duration))
    check(all(b[0] > a[0] for a, b in zip(log, log[1:])), "log times not increasing")
    check(stats["eos"] and not stats["error"], "no clean EOS: %r" % stats)
    check([r["time"] for r in rows] == [float(i) for i in range(int(duration))],
          "decision times %r" % [r["time"] for r in rows])
    labels = set(vs[4])
    states = []
    for r in rows:
        check(r["present"] == ["image", "sensor"], "present %r at %.1f" % (r["present"], r["time"]))
        check(r["label"] in labels, "label %r" % r["label"])
        want, s = expected_state(log, r["time"], vs)
        check(r["label"].endswith("/" + want), "at %.1f s: %s, the log says %s (s = %.2f)" % (
            r["time"], r["label"], want, s))
        states.append(want)
    check("narrated" in states and "quiet" in states, "the sample's speech should give both: %r"
          % states)
    # the topic: scenes' image-alone decision on the same frames
    _, _, _, _, img_rows = mkv_file(news, NO_AUDIO=1, NO_TEXT=1)
    check([r["label"].split("/")[0] for r in rows] == [r["label"] for r in img_rows],
          "topics %r != scenes image alone %r" % ([r["label"] for r in rows],
                                                   [r["label"] for r in img_rows]))
    check(dt < 30 * SLOW, "took %.1f s" % dt)


def test_video_sensor_log():
    """A sensor log given by the user (loud on even seconds, one value
    missing) drives narrated/quiet exactly; a file without video, or
    without audio and no log, stops at once naming what is missing; a log
    with a wrong number of values is a clear error."""
    video = make_media("vs-video", audio=False, text=False)
    log_path = os.path.join(WORK, "vs-user.csv")
    with open(log_path, "w", encoding="utf-8") as f:
        f.write("# my logger\ntime,rms,peak\n")
        for i in range(SECONDS * 2):
            loud = (i // 2) % 2 == 0
            peak = "" if i == 2 else "-4" if loud else "-30"      # one missing value
            f.write("%.1f,%s,%s\n" % (i * 0.5, "-18" if loud else "-45", peak))
    vs = model_numeric(VS_MODEL)
    status, err, dt, stats, rows = video_sensor([video, log_path])
    check(status == 0, "status %d\n%s" % (status, err[-2000:]))
    log = read_log(log_path)
    check(len(rows) == SECONDS, "%d decisions" % len(rows))
    for r in rows:
        want, _ = expected_state(log, r["time"], vs)
        check(r["label"].endswith("/" + want), "at %.1f s: %s, want %s" % (
            r["time"], r["label"], want))
        check(want == ("narrated" if int(r["time"]) % 2 == 0 else "quiet"), "rule at %.1f" % r["time"])
    novideo = make_media("vs-novideo", video=False)
    status, err, _, _, _ = video_sensor([novideo, log_path])
    check(status == 1 and "has no video track" in err, "no video: %d %s" % (status, err))
    status, err, _, _, _ = video_sensor([video])
    check(status == 1 and "has no audio track to log the sensor values from" in err,
          "no audio, no log: %d %s" % (status, err))
    bad = os.path.join(WORK, "vs-bad.csv")
    with open(bad, "w", encoding="utf-8") as f:
        f.write("0.0,-20,-5\n0.5,-20\n")
    status, err, dt, _, _ = video_sensor([video, bad])
    check(status == 1 and "numericenc" in err and "line 2" in err,
          "bad log: %d %s" % (status, err[-2000:]))
    check(dt < 20 * SLOW, "bad log took %.1f s" % dt)


def test_video_sensor_model():
    """pipelines/video-sensor.safetensors is what video-sensor-model.py
    makes from models/scenes.safetensors (numpy only)."""
    out = os.path.join(WORK, "video-sensor.safetensors")
    os.makedirs(WORK, exist_ok=True)
    status, _, err, _ = run([PYTHON, "pipelines/video-sensor-model.py", out])
    check(status == 0, "status %d\n%s" % (status, err))
    check(open(out, "rb").read() == open(VS_MODEL, "rb").read(),
          "pipelines/video-sensor.safetensors differs from what video-sensor-model.py makes")


CASES = {n[5:].replace("_", "-"): f for n, f in list(globals().items())
         if n.startswith("test_") and callable(f)}


def main(argv):
    if len(argv) != 2 or argv[1] not in CASES:
        print("usage: %s {%s}" % (argv[0], ",".join(sorted(CASES))), file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(BUILD, "plugins", "libgstmm.so")):
        print("plugin not built in %s" % BUILD, file=sys.stderr)
        return 1
    if not os.path.exists(MODEL):
        print("model %s missing" % MODEL, file=sys.stderr)
        return SKIP
    try:
        CASES[argv[1]]()
    except Failure as e:
        print("FAIL %s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    print("ok %s" % argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""Speech + transcript: pocketsphinx transcripts of the test split's audio.

    /usr/bin/python3 models/transcripts.py [TEST_DIR]     (default models/data/test)
    /usr/bin/python3 models/transcripts.py --clean-voice rms

For every test example whose audio holds speech (examples.tsv, written by
train.py), runs the GStreamer `pocketsphinx` element on its WAV (the noisy
broadcast audio, kal16 voice) and writes the final hypothesis to
NNNN-K.asr.txt, then a manifest `manifest-asr.tsv` (label, no picture, the
audio, the transcript) for tools/mm-classify: its "audio", "text" and "all"
rows are audio alone, transcript alone, and audio + transcript.
Needs gstreamer1.0-pocketsphinx and pocketsphinx-en-us (installed if missing).
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FINAL = re.compile(r'final=\(boolean\)true.*hypothesis=\(string\)"?((?:[^";\\]|\\.)*)')


def ensure():
    r = subprocess.run(["gst-inspect-1.0", "pocketsphinx"], capture_output=True)
    if r.returncode != 0:
        print("transcripts: installing gstreamer1.0-pocketsphinx pocketsphinx-en-us", flush=True)
        subprocess.run(["apt-get", "install", "-y", "gstreamer1.0-pocketsphinx",
                        "pocketsphinx-en-us"], check=True)


def transcribe(wav):
    r = subprocess.run(["gst-launch-1.0", "-m", "filesrc", "location=" + wav, "!", "wavparse",
                        "!", "audioconvert", "!", "audioresample", "!",
                        "audio/x-raw,format=S16LE,rate=16000,channels=1", "!", "pocketsphinx",
                        "!", "fakesink"], capture_output=True, text=True, timeout=120)
    hyp = ""
    for line in r.stdout.splitlines():
        m = FINAL.search(line)
        if m:
            hyp = m.group(1).replace("\\ ", " ").replace("\\", "")
    return hyp.strip()


def clean(d, voice):
    """Second condition: each test caption spoken once by flite @voice, without
    noise (pocketsphinx's best case here: about 5 % word errors on rms), into
    d/asr-VOICE/ with manifest-asr-VOICE.tsv (label, -, audio, transcript)."""
    import json
    sys.path.insert(0, HERE)
    import stamps
    items = json.load(open(os.path.join(stamps.CACHE, "items.json")))
    sub = os.path.join(d, "asr-" + voice)
    os.makedirs(sub, exist_ok=True)
    out, good = [], 0
    for it in items:
        if it["split"] != "test" or not it["caption"]:
            continue
        wav = os.path.join(sub, "%04d.wav" % it["id"])
        subprocess.run(["flite", "-voice", voice, "-t", it["caption"], "-o", wav], check=True)
        hyp = transcribe(wav)
        name = "-"
        if hyp:
            name = "asr-%s/%04d.txt" % (voice, it["id"])
            with open(os.path.join(d, name), "w") as fh:
                fh.write(hyp + "\n")
            good += 1
        out.append("\t".join([it["label"], "-", "asr-%s/%04d.wav" % (voice, it["id"]), name]))
    path = os.path.join(d, "manifest-asr-%s.tsv" % voice)
    with open(path, "w") as fh:
        fh.write("# label\timage\taudio\ttranscript (pocketsphinx)\n" + "\n".join(out) + "\n")
    print("transcripts: %d clean %s captions, %d with a transcript -> %s"
          % (len(out), voice, good, path))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--clean-voice":
        ensure()
        return clean(os.path.join(HERE, "data", "test"), sys.argv[2])
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "data", "test")
    if shutil.which("gst-launch-1.0") is None:
        raise SystemExit("transcripts: gst-launch-1.0 is missing (apt-get install -y "
                         "gstreamer1.0-tools)")
    ensure()
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "manifest.tsv"))
            if not l.startswith("#")]
    flags = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "examples.tsv"))
             if not l.startswith("#")]
    out, words, n, empty_free = [], 0, 0, 0
    for (label, _img, wav, _txt), f in zip(rows, flags):
        if f[4] != "1":          # no speech in this example's audio
            continue
        hyp = transcribe(os.path.join(d, wav))
        name = "-"                # nothing recognised: no transcript, as in a pipeline
        if hyp:
            name = wav[:-4] + ".asr.txt"
            with open(os.path.join(d, name), "w") as fh:
                fh.write(hyp + "\n")
            empty_free += 1
        out.append("\t".join([label, "-", wav, name]))
        n += 1
        words += len(hyp.split())
    with open(os.path.join(d, "manifest-asr.tsv"), "w") as fh:
        fh.write("# label\timage\taudio\ttranscript (pocketsphinx)\n" + "\n".join(out) + "\n")
    print("transcripts: %d examples with speech, %d with a transcript, %.1f words per "
          "transcript -> %s" % (n, empty_free, words / max(empty_free, 1),
                                os.path.join(d, "manifest-asr.tsv")))


if __name__ == "__main__":
    main()

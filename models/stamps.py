"""The "scenes" data set: Tux Paint stamps as broadcast-like multimodal examples.

Source items come from the Debian package tuxpaint-stamps-default
(/usr/share/tuxpaint/stamps/<category>/...): a picture (.png), its English
caption (first line of the .txt) and, for some, a real sound effect (.ogg).
Speech is the caption spoken by flite.  One example = (frame, 2 s of audio,
optional subtitle text), labelled by the stamp's category.

Held-out split: by source item.  Items are grouped by caption (identical
captions, e.g. two "A party horn." pictures, form one group) and every fifth
group of each category, in md5 order, is a test group.  A test item's picture,
caption and sound effect never appear in training.  Voices are split too:
training speech uses flite voices rms, slt and awb, test speech uses kal16.

Caches (models/data/cache/, never committed): items.json, pictures resized to
96x96 RGBA (pictures.npy), speech and sound effects as 16 kHz int16 (.npz).
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import wave

import numpy as np

STAMPS = "/usr/share/tuxpaint/stamps"
CLASSES = ["animals", "clothes", "food", "household", "people", "plants", "seasonal",
           "space", "town", "vehicles"]
TRAIN_VOICES = ["rms", "slt", "awb"]
TEST_VOICES = ["kal16"]
RATE = 16000
BASE = 96            # cached picture size; frames are BASE x BASE
CLIP = 2 * RATE      # audio per example: 2 s

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
CACHE = os.path.join(DATA, "cache")


def clean_caption(s):
    """English caption as shown and spoken: typographic quotes made ASCII."""
    s = s.strip().replace("\u2019", "'").replace("\u2018", "'")
    s = s.replace("\u201c", '"').replace("\u201d", '"').replace("\u2013", "-")
    s = s.replace("\u2026", "...")
    return " ".join(s.split())


def read_caption(txt):
    if not os.path.exists(txt):
        return None
    with open(txt, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    first = clean_caption(first)
    return first or None


def scan():
    """list of items {id, label, picture, caption, sfx, group, split}."""
    items = []
    for label in CLASSES:
        pics = sorted(glob.glob(os.path.join(STAMPS, label, "**", "*.png"), recursive=True))
        stems = {p[:-4] for p in pics}
        pics += sorted(p for p in glob.glob(os.path.join(STAMPS, label, "**", "*.svg"),
                                            recursive=True) if p[:-4] not in stems)
        for png in pics:
            stem = png[:-4]
            caption = read_caption(stem + ".txt")
            sfx = stem + ".ogg" if os.path.exists(stem + ".ogg") else None
            group = (caption or os.path.basename(stem)).lower()
            items.append({"label": label, "picture": png, "caption": caption, "sfx": sfx,
                          "group": group})
    # split: every fifth caption group of each class (md5 order) is a test group
    for label in CLASSES:
        groups = sorted({it["group"] for it in items if it["label"] == label},
                        key=lambda g: hashlib.md5((label + "/" + g).encode()).hexdigest())
        test = set(groups[::5])
        for it in items:
            if it["label"] == label:
                it["split"] = "test" if it["group"] in test else "train"
    for i, it in enumerate(items):
        it["id"] = i
    return items


def all_captions():
    """Every English caption of the package (all categories): the domain
    vocabulary the word-vector subset is built from."""
    out = []
    for txt in glob.glob(os.path.join(STAMPS, "**", "*.txt"), recursive=True):
        c = read_caption(txt)
        if c:
            out.append(c)
    return sorted(set(out))


def read_wav(path):
    with wave.open(path) as w:
        if w.getframerate() != RATE or w.getsampwidth() != 2:
            raise RuntimeError("%s: expected 16-bit %d Hz audio" % (path, RATE))
        raw = w.readframes(w.getnframes())
        x = np.frombuffer(raw, dtype="<i2").reshape(-1, w.getnchannels())
    return x.mean(axis=1).astype(np.int16) if x.shape[1] > 1 else x[:, 0].copy()


def write_wav(path, samples_int16):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.asarray(samples_int16, dtype="<i2").tobytes())


def speak(text, voice, tmp):
    out = os.path.join(tmp, "s.wav")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return read_wav(out)


def decode_ogg(path, tmp):
    out = os.path.join(tmp, "e.wav")
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", "location=" + path, "!", "oggdemux",
                    "!", "vorbisdec", "!", "audioconvert", "!", "audioresample", "!",
                    "audio/x-raw,format=S16LE,rate=%d,channels=1" % RATE, "!", "wavenc", "!",
                    "filesink", "location=" + out], check=True)
    return read_wav(out)


def load_picture(path, tmp):
    """RGBA picture padded to a square (transparent) and resized to BASE x
    BASE (premultiplied Lanczos), uint8.  SVG is rendered by rsvg-convert."""
    from PIL import Image
    if path.endswith(".svg"):
        out = os.path.join(tmp, "p.png")
        subprocess.run(["rsvg-convert", "-w", "256", "-h", "256", "--keep-aspect-ratio",
                        path, "-o", out], check=True)
        path = out
    im = Image.open(path).convert("RGBA")
    side = max(im.size)
    sq = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    sq.paste(im, ((side - im.size[0]) // 2, (side - im.size[1]) // 2))
    im = sq.convert("RGBa").resize((BASE, BASE), Image.LANCZOS).convert("RGBA")
    return np.asarray(im, dtype=np.uint8)


def build(verbose=True):
    """Builds (or reuses) the caches; returns (items, pictures, speech, sfx)
    with speech {(id, voice): int16} and sfx {id: int16}."""
    os.makedirs(CACHE, exist_ok=True)
    items_path = os.path.join(CACHE, "items.json")
    pics_path = os.path.join(CACHE, "pictures.npy")
    speech_path = os.path.join(CACHE, "speech.npz")
    sfx_path = os.path.join(CACHE, "sfx.npz")
    items = scan()
    if os.path.exists(items_path):
        with open(items_path) as f:
            if json.load(f) != items:
                for p in (pics_path, speech_path, sfx_path):
                    if os.path.exists(p):
                        os.remove(p)
    with open(items_path, "w") as f:
        json.dump(items, f, indent=0)
    tmp = tempfile.mkdtemp(prefix="mm-stamps-")
    try:
        if not os.path.exists(pics_path):
            if verbose:
                print("stamps: reading %d pictures" % len(items), flush=True)
            np.save(pics_path, np.stack([load_picture(it["picture"], tmp) for it in items]))
        if not os.path.exists(speech_path):
            if verbose:
                print("stamps: speaking captions with flite", flush=True)
            sp = {}
            for it in items:
                if not it["caption"]:
                    continue
                voices = TEST_VOICES if it["split"] == "test" else TRAIN_VOICES
                for v in voices:
                    sp["%d_%s" % (it["id"], v)] = speak(it["caption"], v, tmp)
            np.savez(speech_path, **sp)
        if not os.path.exists(sfx_path):
            if verbose:
                print("stamps: decoding sound effects", flush=True)
            np.savez(sfx_path, **{str(it["id"]): decode_ogg(it["sfx"], tmp)
                                  for it in items if it["sfx"]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pictures = np.load(pics_path)
    sp = np.load(speech_path)
    speech = {}
    for k in sp.files:
        i, v = k.split("_", 1)
        speech[(int(i), v)] = sp[k]
    sf = np.load(sfx_path)
    sfx = {int(k): sf[k] for k in sf.files}
    return items, pictures, speech, sfx


if __name__ == "__main__":
    items, pictures, speech, sfx = build()
    for label in CLASSES:
        tr = [it for it in items if it["label"] == label and it["split"] == "train"]
        te = [it for it in items if it["label"] == label and it["split"] == "test"]
        print("%-10s train %3d test %3d  captions %3d  sounds %2d" % (
            label, len(tr), len(te), sum(1 for it in tr + te if it["caption"]),
            sum(1 for it in tr + te if it["sfx"])))
    print("pictures", pictures.shape, "speech clips", len(speech), "sound effects", len(sfx))

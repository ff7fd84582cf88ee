#!/usr/bin/python3
"""PyTorch references for libmm's text encoders (wordvec and bert).

    /usr/bin/python3 tests/lib/ref_text.py [OUTDIR]   (default: tests/fixtures/text)

Builds small seeded models, saves them with models/mmfile.py and writes
expected.json: for each model, test sentences with the token ids and the
output embedding computed here in PyTorch (float64), plus "bad" model files
that the loader must refuse, with a word their error message must contain.

The tokenizers are written from models/FORMAT.md (BERT's BasicTokenizer +
WordpieceTokenizer; the word tokenizer) without looking at the C code.  The
BERT module is written with torch.nn so that its state_dict() has exactly
the names of Hugging Face's BertModel.
"""
import json
import os
import sys
import unicodedata

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models"))
import mmfile  # noqa: E402

DEFAULT_MAX_TEXT_BYTES = 64 * 1024

# --------------------------------------------------------------------------
# Text cleaning shared by both tokenizers


def sanitize(raw, max_bytes):
    """bytes -> str: invalid UTF-8 replaced by U+FFFD, then truncated to at
    most max_bytes of UTF-8 at a character boundary."""
    text = raw.decode("utf-8", errors="replace")
    out, used = [], 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if used + n > max_bytes:
            break
        out.append(ch)
        used += n
    return "".join(out)


# --------------------------------------------------------------------------
# Word tokenizer (wordvec)


def word_tokens(text, lowercase):
    """Maximal runs of alphanumeric characters, apostrophes kept only between
    two alphanumeric characters ("don't")."""
    if lowercase:
        text = text.lower()
    tokens, cur = [], []
    for i, ch in enumerate(text):
        if ch.isalnum():
            cur.append(ch)
        elif (ch == "'" and cur and i + 1 < len(text) and text[i + 1].isalnum()):
            cur.append(ch)
        else:
            if cur:
                tokens.append("".join(cur))
            cur = []
    if cur:
        tokens.append("".join(cur))
    return tokens


def wordvec_ids(text, vocab, lowercase):
    index = {}
    for i, w in enumerate(vocab):
        index.setdefault(w, i)
    return [index[t] for t in word_tokens(text, lowercase) if t in index]


# --------------------------------------------------------------------------
# BERT tokenizer (BasicTokenizer + WordpieceTokenizer)


def _is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokens(text, lowercase):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            cleaned.append(" ")
        elif _is_cjk(cp):
            cleaned.append(" " + ch + " ")
        else:
            cleaned.append(ch)
    out = []
    for tok in "".join(cleaned).split():
        if lowercase:
            tok = tok.lower()
            tok = "".join(c for c in unicodedata.normalize("NFD", tok)
                          if unicodedata.category(c) != "Mn")
        piece = []
        for ch in tok:
            if _is_punctuation(ch):
                if piece:
                    out.append("".join(piece))
                    piece = []
                out.append(ch)
            else:
                piece.append(ch)
        if piece:
            out.append("".join(piece))
    return [t for t in out if t]


def wordpiece(token, index, max_chars=100):
    if len(token) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(token):
        end, cur = len(token), None
        while start < end:
            sub = token[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in index:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


def bert_ids(text, vocab, lowercase, max_len):
    index = {}
    for i, w in enumerate(vocab):
        index.setdefault(w, i)
    pieces = []
    for tok in basic_tokens(text, lowercase):
        pieces.extend(wordpiece(tok, index))
    pieces = pieces[:max_len - 2]
    return [index["[CLS]"]] + [index[p] for p in pieces] + [index["[SEP]"]], len(pieces)


# --------------------------------------------------------------------------
# BERT with Hugging Face BertModel names


class BertSelfAttention(nn.Module):
    def __init__(self, h, heads):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)

    def forward(self, x):                      # x (n, h)
        n, h = x.shape
        dh = h // self.heads

        def split(t):                          # (heads, n, dh)
            return t.view(n, self.heads, dh).transpose(0, 1)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(1, 2) / (dh ** 0.5)
        probs = torch.softmax(scores, dim=-1)
        return (probs @ v).transpose(0, 1).reshape(n, h)


class BertSelfOutput(nn.Module):
    def __init__(self, h, eps):
        super().__init__()
        self.dense = nn.Linear(h, h)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)

    def forward(self, a, x):
        return self.LayerNorm(self.dense(a) + x)


class BertAttention(nn.Module):
    def __init__(self, h, heads, eps):
        super().__init__()
        self.self = BertSelfAttention(h, heads)
        self.output = BertSelfOutput(h, eps)

    def forward(self, x):
        return self.output(self.self(x), x)


class BertIntermediate(nn.Module):
    def __init__(self, h, i):
        super().__init__()
        self.dense = nn.Linear(h, i)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))   # exact (erf) GELU


class BertOutput(nn.Module):
    def __init__(self, h, i, eps):
        super().__init__()
        self.dense = nn.Linear(i, h)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)

    def forward(self, f, x):
        return self.LayerNorm(self.dense(f) + x)


class BertLayer(nn.Module):
    def __init__(self, h, heads, i, eps):
        super().__init__()
        self.attention = BertAttention(h, heads, eps)
        self.intermediate = BertIntermediate(h, i)
        self.output = BertOutput(h, i, eps)

    def forward(self, x):
        a = self.attention(x)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, h, layers, heads, i, eps):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(h, heads, i, eps) for _ in range(layers)])

    def forward(self, x):
        for layer in self.layer:
            x = layer(x)
        return x


class BertEmbeddings(nn.Module):
    def __init__(self, v, h, positions, types, eps):
        super().__init__()
        self.word_embeddings = nn.Embedding(v, h)
        self.position_embeddings = nn.Embedding(positions, h)
        self.token_type_embeddings = nn.Embedding(types, h)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)

    def forward(self, ids):
        n = ids.shape[0]
        pos = torch.arange(n)
        types = torch.zeros(n, dtype=torch.long)
        x = (self.word_embeddings(ids) + self.position_embeddings(pos)
             + self.token_type_embeddings(types))
        return self.LayerNorm(x)


class BertPooler(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.dense = nn.Linear(h, h)

    def forward(self, x):
        return torch.tanh(self.dense(x[0]))


class BertModel(nn.Module):
    def __init__(self, v, h, layers, heads, i, positions, types=2, eps=1e-12, pooler=False):
        super().__init__()
        self.embeddings = BertEmbeddings(v, h, positions, types, eps)
        self.encoder = BertEncoder(h, layers, heads, i, eps)
        self.pooler = BertPooler(h) if pooler else None

    def forward(self, ids, pooling):
        x = self.encoder(self.embeddings(ids))
        if pooling == "mean":
            return x.mean(dim=0)
        if pooling == "pooler":
            return self.pooler(x)
        return x[0]


def randomize(module, gen):
    """Default init is fine for Linear; make LayerNorm and biases non-trivial."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=gen))


# --------------------------------------------------------------------------
# Models and cases

BERT_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    ".", ",", "!", "?", "'", "-", "(", ")",
    "the", "a", "dog", "cat", "bark", "##s", "##ing", "##ed", "##ly", "run", "##n",
    "play", "music", "cafe", "naive", "resume", "hello", "world", "is", "on", "in",
    "street", "car", "loud", "song", "un", "##know", "##able", "talk", "news", "rain",
    "today", "quiet", "don", "t", "stop", "really", "中", "1", "##9", "##8", "##4",
    "##a", "über", "uber", "fast", "slow",
]

BERT_CASED_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "The", "the", "Dog", "dog", "Café", "café", "cafe",
    "##s", ".", ",", "!", "bark", "run", "##ning", "Hello", "world", "É", "##t", "##é",
]

BERT_SENTENCES = [
    "The dog barks.",
    "Hello, world! The cat is running on the street.",
    "Café naïve RÉSUMÉ über",
    "unknowable xyzzy qqq",
    "",
    b"dog \xff\xfe cat \xc3",
    b"ca\xfffe dog\xc3\x28 \xe2\x82",
    "the dog barks " * 10,
    "中国 rain today 1984",
    "the\tdog\ncat\x07barks\u00a0loudly\u200b!",
    "a" * 101 + " dog",
    "a" * 7 + " dog",
    "don't-stop!!! (really?)",
    "  \n\t  ",
    ("the dog barks loudly today", 12),
    ("café café", 4),
    ("Hello, world! The dog barks.", 13),
]



def long_sentences():
    """Inputs for the 512-token model: the fused attention's key tiles (128
    keys) and query blocks, tails included (n = 17, 129, 302 and the
    truncated 512)."""
    import random
    rng = random.Random(7)
    words = [w for w in BERT_VOCAB[5:] if not w.startswith("##") and w.isascii()]
    return ["the dog barks " * 200,
            " ".join(rng.choice(words) for _ in range(300)),
            " ".join(rng.choice(words) for _ in range(127)),
            " ".join(rng.choice(words) for _ in range(15))]


WORDVEC_WORDS = [
    "the", "a", "dog", "dogs", "cat", "cats", "bark", "barks", "run", "running",
    "don't", "stop", "music", "song", "guitar", "piano", "news", "talk", "voice",
    "rain", "wind", "street", "car", "loud", "quiet", "today", "hello", "world",
    "café", "naïve", "über", "1984", "rock'n'roll", "it's", "i", "is", "on", "in",
    "fast", "slow", "big", "small", "中国", "red", "green", "blue", "one", "two",
    "three", "dog",   # duplicate: keeps the first id
]

WORDVEC_CASED_WORDS = ["The", "the", "Dog", "dog", "CAFÉ", "café", "Über", "über", "run",
                       "Run", "it's", "x"]

WORDVEC_SENTENCES = [
    "The dog barks.",
    "Don't stop the music!",
    "CAFÉ Über naïve",
    "xyzzy foo",
    "",
    b"dog\xffcat \xc3 rain",
    "'dog' 'cats' it's rock'n'roll don''t",
    "1984: the Dogs RUN running",
    "中国 red,green;blue\tone\ntwo three",
    "the " * 40 + "dog",
    ("the dog barks loudly", 10),
    ("café café", 4),
]


def text_bytes(t):
    return t if isinstance(t, bytes) else t.encode("utf-8")


def case_entry(raw, max_bytes):
    entry = {}
    try:
        entry["text"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["text_hex"] = raw.hex()
    if max_bytes != DEFAULT_MAX_TEXT_BYTES:
        entry["max_text_bytes"] = max_bytes
    return entry


def split_case(s):
    if isinstance(s, tuple):
        return text_bytes(s[0]), s[1]
    return text_bytes(s), DEFAULT_MAX_TEXT_BYTES


def floats(t):
    return [float("%.9g" % v) for v in t.tolist()]


def make_bert(path, seed, vocab, h, layers, heads, inter, max_len, positions, pooling,
              lowercase=True, proj_dim=None, fp16=False):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BertModel(len(vocab), h, layers, heads, inter, positions,
                      pooler=(pooling == "pooler"))
    randomize(model, gen)
    tensors = {"text." + k: v.detach().numpy() for k, v in model.state_dict().items()}
    dim = h
    if proj_dim:
        proj = nn.Linear(h, proj_dim)
        tensors["text.proj.weight"] = proj.weight.detach().numpy()
        tensors["text.proj.bias"] = (0.1 * torch.randn(proj_dim, generator=gen)).numpy()
        dim = proj_dim
    cfg = {"type": "bert", "vocab": vocab, "hidden": h, "layers": layers, "heads": heads,
           "intermediate": inter, "max_len": max_len, "lowercase": lowercase,
           "pooling": pooling, "layer_norm_eps": 1e-12, "dim": dim}
    doc = {"version": 1, "name": os.path.basename(path).split(".")[0],
           "components": {"text": cfg}}
    mmfile.save(path, tensors, doc, fp16=fp16)
    return tensors, cfg, doc


def bert_cases(path, tensors, cfg, sentences):
    """Reloads the saved file (so F16 rounding is what PyTorch sees too) and
    runs the model in float64."""
    stored, _ = mmfile.load(path)
    model = BertModel(len(cfg["vocab"]), cfg["hidden"], cfg["layers"], cfg["heads"],
                      cfg["intermediate"],
                      stored["text.embeddings.position_embeddings.weight"].shape[0],
                      pooler=(cfg["pooling"] == "pooler"),
                      eps=cfg["layer_norm_eps"]).double()
    sd = {k[len("text."):]: torch.from_numpy(v).double() for k, v in stored.items()
          if not k.startswith("text.proj.")}
    model.load_state_dict(sd)
    model.eval()
    cases = []
    for s in sentences:
        raw, max_bytes = split_case(s)
        text = sanitize(raw, max_bytes)
        ids, n_content = bert_ids(text, cfg["vocab"], cfg["lowercase"], cfg["max_len"])
        with torch.no_grad():
            z = model(torch.tensor(ids, dtype=torch.long), cfg["pooling"])
            if "text.proj.weight" in stored:
                w = torch.from_numpy(stored["text.proj.weight"]).double()
                b = torch.from_numpy(stored["text.proj.bias"]).double()
                z = w @ z + b
        entry = case_entry(raw, max_bytes)
        entry.update({"ids": ids, "n_tokens": n_content, "embedding": floats(z)})
        cases.append(entry)
    return cases


def make_wordvec(path, seed, words, e, proj_dim, lowercase):
    rng = np.random.default_rng(seed)
    tensors = {"text.embeddings.weight": rng.normal(0.0, 1.0, (len(words), e))}
    dim = e
    if proj_dim:
        tensors["text.proj.weight"] = rng.normal(0.0, 1.0 / np.sqrt(e), (proj_dim, e))
        tensors["text.proj.bias"] = rng.normal(0.0, 0.1, proj_dim)
        dim = proj_dim
    cfg = {"type": "wordvec", "vocab": words, "dim": dim, "lowercase": lowercase}
    doc = {"version": 1, "name": os.path.basename(path).split(".")[0],
           "components": {"text": cfg}}
    mmfile.save(path, tensors, doc)
    return tensors, cfg, doc


def wordvec_cases(path, cfg, sentences):
    stored, _ = mmfile.load(path)
    emb = torch.from_numpy(stored["text.embeddings.weight"]).double()
    cases = []
    for s in sentences:
        raw, max_bytes = split_case(s)
        text = sanitize(raw, max_bytes)
        ids = wordvec_ids(text, cfg["vocab"], cfg["lowercase"])
        z = emb[ids].mean(dim=0) if ids else torch.zeros(emb.shape[1], dtype=torch.double)
        if "text.proj.weight" in stored:
            z = (torch.from_numpy(stored["text.proj.weight"]).double() @ z
                 + torch.from_numpy(stored["text.proj.bias"]).double())
        entry = case_entry(raw, max_bytes)
        entry.update({"ids": ids, "n_tokens": len(ids), "embedding": floats(z)})
        cases.append(entry)
    return cases


def save_variant(path, tensors, doc):
    mmfile.save(path, tensors, doc)


def bad_variants(outdir, tensors, doc):
    """Models the loader must refuse, each with a word its error must contain."""
    bad = []

    def variant(name, must_contain, tensor_edit=None, cfg_edit=None):
        t = dict(tensors)
        d = json.loads(json.dumps(doc))
        if tensor_edit:
            tensor_edit(t)
        if cfg_edit:
            cfg_edit(d["components"]["text"])
        save_variant(os.path.join(outdir, name), t, d)
        bad.append({"file": name, "error": must_contain})

    def drop(name):
        return lambda t: t.pop(name)

    def transpose(name):
        def edit(t):
            t[name] = np.ascontiguousarray(np.asarray(t[name]).T)
        return edit

    def set_cfg(key, value):
        def edit(c):
            c[key] = value
        return edit

    def rename_vocab(old, new):
        def edit(c):
            c["vocab"] = [new if w == old else w for w in c["vocab"]]
        return edit

    variant("bad-bert-hidden.safetensors", "text.embeddings.word_embeddings.weight",
            cfg_edit=set_cfg("hidden", doc["components"]["text"]["hidden"] * 2))
    variant("bad-bert-missing.safetensors", "text.encoder.layer.0.output.LayerNorm.bias",
            tensor_edit=drop("text.encoder.layer.0.output.LayerNorm.bias"))
    variant("bad-bert-inter.safetensors", "text.encoder.layer.0.intermediate.dense.weight",
            tensor_edit=transpose("text.encoder.layer.0.intermediate.dense.weight"))
    variant("bad-bert-pooler.safetensors", "text.pooler.dense.bias",
            tensor_edit=drop("text.pooler.dense.bias"))
    variant("bad-bert-proj.safetensors", "text.proj.weight",
            cfg_edit=set_cfg("dim", doc["components"]["text"]["dim"] + 1))
    variant("bad-bert-nosep.safetensors", "[SEP]", cfg_edit=rename_vocab("[SEP]", "[SEPX]"))
    variant("bad-bert-maxlen.safetensors", "position_embeddings",
            cfg_edit=set_cfg("max_len", 1000))
    variant("bad-bert-heads.safetensors", "heads", cfg_edit=set_cfg("heads", 3))
    variant("bad-bert-layers.safetensors", "layers", cfg_edit=set_cfg("layers", 65))
    variant("bad-bert-pooling.safetensors", "pooling", cfg_edit=set_cfg("pooling", "max"))
    variant("bad-bert-type.safetensors", "gpt", cfg_edit=set_cfg("type", "gpt"))
    return bad


def bad_wordvec_variants(outdir, tensors, doc):
    bad = []
    v = len(doc["components"]["text"]["vocab"])
    d = json.loads(json.dumps(doc))
    d["components"]["text"]["vocab"] = d["components"]["text"]["vocab"][:v - 1]
    save_variant(os.path.join(outdir, "bad-wordvec-vocab.safetensors"), tensors, d)
    bad.append({"file": "bad-wordvec-vocab.safetensors", "error": "text.embeddings.weight"})
    t = dict(tensors)
    t["text.proj.weight"] = np.asarray(t["text.proj.weight"])[:, 1:]
    save_variant(os.path.join(outdir, "bad-wordvec-proj.safetensors"), t, doc)
    bad.append({"file": "bad-wordvec-proj.safetensors", "error": "text.proj.weight"})
    t = dict(tensors)
    del t["text.proj.weight"], t["text.proj.bias"]
    save_variant(os.path.join(outdir, "bad-wordvec-noproj.safetensors"), t, doc)
    bad.append({"file": "bad-wordvec-noproj.safetensors", "error": "dim"})
    return bad


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures",
                                                                 "text")
    os.makedirs(outdir, exist_ok=True)
    models = []

    def add(kind, name, *args, sentences=None, **kw):
        path = os.path.join(outdir, name)
        if kind == "bert":
            tensors, cfg, doc = make_bert(path, *args, **kw)
            cases = bert_cases(path, tensors, cfg, sentences or BERT_SENTENCES)
        else:
            tensors, cfg, doc = make_wordvec(path, *args, **kw)
            cases = wordvec_cases(path, cfg, WORDVEC_SENTENCES)
        models.append({"file": name, "type": kind, "dim": cfg["dim"],
                       "lowercase": cfg["lowercase"], "max_len": cfg.get("max_len", 0),
                       "vocab": cfg["vocab"], "cases": cases})
        return tensors, doc

    add("bert", "bert-mean.safetensors", 1, BERT_VOCAB, 32, 2, 4, 64, 16, 20, "mean",
        fp16=True)
    add("bert", "bert-pooler.safetensors", 2, BERT_VOCAB, 16, 2, 2, 32, 12, 12, "pooler",
        proj_dim=8, fp16=True)
    add("bert", "bert-cls-cased.safetensors", 3, BERT_CASED_VOCAB, 16, 1, 4, 24, 10, 10,
        "cls", lowercase=False)
    tiny_t, tiny_doc = add("bert", "bert-tiny.safetensors", 4, BERT_CASED_VOCAB, 8, 1, 2, 12,
                           6, 6, "pooler", lowercase=False, proj_dim=4)
    # 512 tokens, head size 24 (not a whole vector): the fused attention
    add("bert", "bert-long.safetensors", 7, BERT_VOCAB, 48, 2, 2, 64, 512, 512, "mean",
        fp16=True, sentences=long_sentences())
    wv_t, wv_doc = add("wordvec", "wordvec.safetensors", 5, WORDVEC_WORDS, 12, 8, True)
    add("wordvec", "wordvec-cased.safetensors", 6, WORDVEC_CASED_WORDS, 6, None, False)

    bad = bad_variants(outdir, tiny_t, tiny_doc) + bad_wordvec_variants(outdir, wv_t, wv_doc)
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump({"default_max_text_bytes": DEFAULT_MAX_TEXT_BYTES, "models": models,
                   "bad": bad}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# Reference outputs for tests/lib/test-preprocess.c.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run with Debian's python3 (it has torch and torchaudio):
#   /usr/bin/python3 tests/lib/ref_preprocess.py tests/fixtures/preprocess
#
# Independent of libmm's C code:
# - tokenizers: a re-implementation of google-research/bert tokenization.py
#   (BasicTokenizer + WordpieceTokenizer) on Python's unicodedata and
#   str.lower (), and of the wordvec rule of models/FORMAT.md;
# - image: torch.nn.functional.interpolate (bilinear, align_corners=False,
#   antialias=False) on the uint8 image as float, then (v/255 - mean) / std;
# - log-mel: torch.stft (center=False, hann_window (win_length)) power,
#   torchaudio.functional.melscale_fbanks (norm=None, mel_scale="htk").
import hashlib
import json
import os
import struct
import sys
import unicodedata

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "fixtures", "preprocess")

# ---------------------------------------------------------------- text


def decode(b):
    """libmm's UTF-8 policy: maximal subparts -> U+FFFD (Python's 'replace'),
    NUL -> U+FFFD."""
    return b.decode("utf-8", "replace").replace("\x00", "\ufffd")


def truncate_utf8(b, max_bytes):
    """Cut to max_bytes, backing off (at most 3 bytes) so that a character is
    not split."""
    if len(b) <= max_bytes:
        return b
    cut = max_bytes
    k = 0
    while k < 3 and cut > 0 and (b[cut] & 0xC0) == 0x80:
        cut -= 1
        k += 1
    if (b[cut] & 0xC0) == 0x80:
        cut = max_bytes
    return b[:cut]


# --- google-research/bert tokenization.py, transcribed ---
def _is_whitespace(ch):
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch):
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch):
    cp = ord(ch)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(ch).startswith("P")


def _is_chinese_char(cp):
    return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or
            (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F) or
            (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF) or
            (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


def basic_tokenize(text, lower):
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        out.append(" " if _is_whitespace(ch) else ch)
    text = "".join(out)
    out = []
    for ch in text:
        out.append(" " + ch + " " if _is_chinese_char(ord(ch)) else ch)
    text = "".join(out)
    split = []
    for tok in text.strip().split():
        if lower:
            tok = tok.lower()
            tok = "".join(c for c in unicodedata.normalize("NFD", tok)
                          if unicodedata.category(c) != "Mn")
        words = []
        new_word = True
        for ch in tok:
            if _is_punctuation(ch):
                words.append([ch])
                new_word = True
            else:
                if new_word:
                    words.append([])
                new_word = False
                words[-1].append(ch)
        split.extend("".join(w) for w in words)
    return " ".join(split).strip().split()


def wordpiece(tokens, vocab, max_chars=100):
    out = []
    for tok in tokens:
        chars = list(tok)
        if len(chars) > max_chars:
            out.append("[UNK]")
            continue
        bad = False
        start = 0
        subs = []
        while start < len(chars):
            end = len(chars)
            cur = None
            while start < end:
                s = "".join(chars[start:end])
                if start > 0:
                    s = "##" + s
                if s in vocab:
                    cur = s
                    break
                end -= 1
            if cur is None:
                bad = True
                break
            subs.append(cur)
            start = end
        out.extend(["[UNK]"] if bad else subs)
    return out


def bert_encode(raw, lower, max_len, max_text_bytes, vocab):
    text = decode(truncate_utf8(raw, max_text_bytes))
    pieces = wordpiece(basic_tokenize(text, lower), vocab)[:max_len - 2]
    toks = ["[CLS]"] + pieces + ["[SEP]"]
    return toks, len(pieces)


def word_tokenize(raw, lower):
    """models/FORMAT.md wordvec rule: maximal runs of alphanumerics, an ASCII
    apostrophe with alphanumerics on both sides belongs to the word."""
    text = decode(raw)
    if lower:
        text = text.lower()
    words, cur = [], ""
    n = len(text)
    for i, ch in enumerate(text):
        if ch.isalnum():
            cur += ch
        elif (ch == "'" and cur and i + 1 < n and text[i + 1].isalnum()):
            cur += ch
        else:
            if cur:
                words.append(cur)
            cur = ""
    if cur:
        words.append(cur)
    return words


BERT_CASES = [
    # name, bytes, lowercase, max_len, max_text_bytes
    ("hello", "Hello, World!", True, 32, 4096),
    ("hello-cased", "Hello, World!", False, 32, 4096),
    ("accents", "Café naïve résumé CAFÉ e\u0301", True, 32, 4096),
    ("accents-cased", "Café naïve résumé CAFÉ e\u0301", False, 32, 4096),
    ("apostrophe", "don't stop, it's rock'n'roll", True, 32, 4096),
    ("cjk", "我爱北京天安门 and 日本語の文 \uf900x", True, 32, 4096),
    ("emoji", "I \u2764\ufe0f emoji \U0001F600\U0001F44D\U0001F3FD ok hi\U0001F600", True, 32,
     4096),
    ("punctuation", "wait... what?! (yes) [no] {maybe} \u00abquote\u00bb \u2014 dash \u2013 "
     "\u00bfqu\u00e9? \u00a1s\u00ed! $5 ^_^ a`b~c", True, 64, 4096),
    ("invalid-utf8", b"abc\xff\xfedef \xc3\x28 \xe2\x82 ok \xf0\x9f\x98 end \xed\xa0\x80 sur "
     b"\xc0\xaf over \xf4\x90\x80\x80 big \x80\x80 x", True, 64, 4096),
    ("nul", b"hel\x00lo wor\x00 \x00ld the\x00", True, 32, 4096),
    ("controls", "a\x0bb\x0cc\u200bd\u00ade e\tf\ng\rh\x7fi\u2028j\u2029k\u3000l", True, 32,
     4096),
    ("whitespace-only", " \t\n \u3000 \u00a0 \u2009 ", True, 32, 4096),
    ("empty", "", True, 32, 4096),
    ("long-words", "x" * 101 + " " + "x" * 100 + " ok " + "é" * 101, True, 128, 4096),
    ("truncate", "the cafe the cafe hello world the cafe", True, 6, 4096),
    ("truncate-mid-word", "unaffable unaffable", True, 4, 4096),
    ("max-len-2", "hello world", True, 2, 4096),
    ("greek", "ΟΔΟΣ ΟΔΟΣ. ΣΑΣ Σ ὈΔΥΣΣΕΎΣ", True, 32, 4096),
    ("scripts", "İstanbul STRASSE straße ﬁne Ⅻ Ⓐ 한국어 Tiếng Việt Ǆemal ǅ ＡＢＣ１２３", True, 64,
     4096),
    ("scripts-cased", "İstanbul STRASSE ﬁne Ⅻ 한국어 Tiếng ＡＢＣ１２３", False, 64, 4096),
    ("wordpieces", "unaffable playing played plays hellworld", True, 32, 4096),
    ("text-bytes-cut", "héllo " * 20, True, 64, 14),
    ("text-bytes-cut-4", "ab\U0001F600\U0001F600", True, 16, 5),
]

# Inputs generated by repetition (1 MB), truncated by max_text_bytes.
BERT_REPEAT_CASES = [
    ("huge-cut", "héllo wörld! the cafe ", 48000, True, 512, 1001),
    ("huge-maxlen", "héllo wörld! the cafe ", 48000, True, 128, 2 << 20),
    ("huge-garbage", "\xff\xfe\x80 ab", 200000, True, 64, 1 << 20),
]

WORD_CASES = [
    # name, bytes, lowercase, max_ids
    ("hello", "Hello, World! hello", True, 16),
    ("hello-cased", "Hello, World! hello", False, 16),
    ("apostrophe", "Don't stop 'quoted' rock''n don't' it's", True, 16),
    ("accents", "café CAFÉ Café naïve", True, 16),
    ("accents-cased", "café CAFÉ Café", False, 16),
    ("cjk-emoji", "我爱北京 x\U0001F600hello\U0001F600world 123 abc123", True, 16),
    ("invalid-utf8", b"hel\xfflo world\xc3 \xe2\x82hello", True, 16),
    ("nul", b"hel\x00lo world\x00hello", True, 16),
    ("max-ids", "hello world hello world hello", True, 3),
    ("empty", "", True, 16),
    ("punct-only", "!!! ... ''' ---", True, 16),
]

SANITIZE_CASES = [
    (b"plain ascii", 64),
    (b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 64),
    (b"\xff\xfe\xfd", 64),
    (b"\xc3\x28 \xe2\x82 \xf0\x9f\x98", 64),
    (b"\xed\xa0\x80 \xc0\xaf \xe0\x80\x80 \xf4\x90\x80\x80 \xf8\x88\x80\x80\x80", 64),
    (b"a\x00b\x00", 64),
    (b"\xef\xbf\xbd real", 64),
    (b"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 7),   # stops at a whole character
    (b"ab\xff", 5),
    (b"abc", 1),
]


def sanitize_ref(raw, cap):
    out = b""
    for ch in decode(raw):
        e = ch.encode("utf-8")
        if len(out) + len(e) + 1 > cap:
            break
        out += e
    return out


def as_bytes(x):
    return x if isinstance(x, bytes) else x.encode("utf-8")


def build_bert_vocab():
    base = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cafe", "café", "don", "'", "t",
            "un", "##aff", "##able", "hello", "world", "hell", "##o", "##world", "play",
            "##ing", "##ed", "##s", "x", "##x", "ok", "i", "stanbul", "σ", "ς", "οδος", "οδοσ",
            "e", "##e", "##́", "naive", "resume", "Hello", "World", "Café", "CAFÉ", "hi",
            "##😀", "😀", "emoji", "❤", "中", "北", "京", "日", "本", "の", "ⅻ", "ⓐ", "strasse",
            "straße", "ﬁne", "ａｂｃ１２３", "ᄒ", "##ᅡ", "##ᆫ", "wait", ".", "?", "!", "(",
            ")", "what", "yes", "no", "$", "5", "^", "_", "a", "b", "c", "`", "~", "abc",
            "def", "end", "over", "big", "wor", "##ld", "lo", "hel", "##lo", "ab", "heˊ",
            "he", "##llo", "vi", "##et", "tieng", "d", "##zemal", "dz", "##emal", "ǆ", "ǅ"]
    vocab = []
    for w in base:
        if w not in vocab:
            vocab.append(w)
    # plus the basic tokens of the cases, split deterministically so that
    # whole words, pieces and unknown words all occur
    for name, raw, lower, _, _ in BERT_CASES:
        if name in ("wordpieces", "truncate", "truncate-mid-word"):
            continue    # these exercise the hand-written pieces above
        for tok in basic_tokenize(decode(as_bytes(raw)), lower):
            h = hashlib.sha1(tok.encode()).digest()[0] % 4
            if len(tok) > 100:
                continue
            if h == 0:
                cand = [tok]
            elif h == 1 and len(tok) > 1:
                k = 1 + h % (len(tok) - 1)
                cand = [tok[:k], "##" + tok[k:]]
            elif h == 2:
                cand = [tok[:1]] + ["##" + c for c in tok[1:]]
            else:
                cand = []
            for w in cand:
                if w not in vocab:
                    vocab.append(w)
    vocab.append("the")     # a duplicate keeps its first id
    return vocab


def ids_of(tokens, vocab):
    first = {}
    for i, w in enumerate(vocab):
        first.setdefault(w, i)
    return [first[t] for t in tokens]


def write_text_fixture():
    vocab = build_bert_vocab()
    vset = set(vocab)
    wp = []
    for name, raw, lower, max_len, mtb in BERT_CASES:
        raw = as_bytes(raw)
        toks, n_content = bert_encode(raw, lower, max_len, mtb, vset)
        wp.append({"name": name, "text_hex": raw.hex(), "repeat": 1, "lowercase": lower,
                   "max_len": max_len, "max_text_bytes": mtb, "tokens": toks,
                   "ids": ids_of(toks, vocab), "n_content": n_content})
    for name, unit, rep, lower, max_len, mtb in BERT_REPEAT_CASES:
        raw = unit.encode("latin-1" if "\xff" in unit else "utf-8")
        toks, n_content = bert_encode(raw * rep, lower, max_len, mtb, vset)
        wp.append({"name": name, "text_hex": raw.hex(), "repeat": rep, "lowercase": lower,
                   "max_len": max_len, "max_text_bytes": mtb, "tokens": toks,
                   "ids": ids_of(toks, vocab), "n_content": n_content})

    word_vocab = ["hello", "world", "don't", "it's", "stop", "quoted", "rock", "n", "café",
                  "naïve", "Café", "CAFÉ", "Hello", "World", "我爱北京", "x", "123", "abc123",
                  "hel", "lo", "world", "hello"]
    wv = []
    for name, raw, lower, max_ids in WORD_CASES:
        raw = as_bytes(raw)
        words = word_tokenize(raw, lower)
        known = [w for w in words if w in word_vocab][:max_ids]
        wv.append({"name": name, "text_hex": raw.hex(), "lowercase": lower, "max_ids": max_ids,
                   "words": known, "ids": ids_of(known, word_vocab)})

    san = [{"in_hex": raw.hex(), "cap": cap, "out_hex": sanitize_ref(raw, cap).hex()}
           for raw, cap in SANITIZE_CASES]
    doc = {"bert_vocab": vocab, "word_vocab": word_vocab, "wordpiece": wp, "word": wv,
           "sanitize": san}
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=0)


# Random strings over a pool of tricky characters, against a vocabulary of
# every single character (and its "##" form) so that the ids spell out the
# exact normalised characters and word boundaries.
RANDOM_POOL = (list("aAbBzZ09") + list("!\"#'(),-.:;?@[]^_`{|}~") +
               [" ", "\t", "\n", "\r", "\x00", "\x0b", "\x7f", "\u200b", "\u00ad", "\u3000",
                "\u00a0", "\u2028", "\u2029", "\u0085",
                "é", "É", "ñ", "Ñ", "ü", "\u0301", "\u0308", "ß", "ﬁ", "Σ", "σ", "ς", "Ο",
                "Δ", "ά", "Ά", "İ", "ı", "ǅ", "Ǆ", "Ⅻ", "ⅻ", "Ⓐ", "ª", "ʰ", "ˊ", "ー", "中",
                "文", "\uf900", "\U00020000", "😀", "\ufe0f", "\U0001F3FD", "한", "ᄀ", "«",
                "¿", "—", "’", "·", "℃", "Ω", "Å", "Ǳ", "ﬀ", "ｶ", "ａ", "Ａ", "\u0e01",
                "\u0e34", "\u0915", "\u093f", "\u05d0", "\u0627", "\u064b"])


def random_texts(n):
    rng = np.random.default_rng(4242)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 30))
        text = "".join(RANDOM_POOL[j] for j in rng.integers(0, len(RANDOM_POOL), k))
        raw = text.encode("utf-8")
        if i % 5 == 4:   # a few invalid bytes
            pos = int(rng.integers(0, len(raw) + 1))
            raw = raw[:pos] + bytes([0xff, 0xc3, 0x80, 0xe2])[int(rng.integers(0, 4)):] + raw[pos:]
        out.append(raw)
    return out


def write_random_text_fixture():
    texts = random_texts(160)
    chars = set()
    for i, raw in enumerate(texts):
        for tok in basic_tokenize(decode(raw), i % 2 == 0):
            chars.update(tok)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    for c in sorted(chars):
        # a few characters stay unknown so [UNK] words occur too
        if hashlib.sha1(c.encode()).digest()[0] % 10 == 0:
            continue
        vocab += [c, "##" + c]
    vset = set(vocab)
    cases = []
    for i, raw in enumerate(texts):
        lower = i % 2 == 0
        toks, n_content = bert_encode(raw, lower, 48, 4096, vset)
        cases.append({"name": "random-%d" % i, "text_hex": raw.hex(), "repeat": 1,
                      "lowercase": lower, "max_len": 48, "max_text_bytes": 4096,
                      "ids": ids_of(toks, vocab), "n_content": n_content})
    with open(os.path.join(OUT, "tokenizer_random.json"), "w", encoding="utf-8") as f:
        json.dump({"bert_vocab": vocab, "wordpiece": cases}, f, ensure_ascii=False)


# ---------------------------------------------------------------- image

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
IMAGE_CASES = [
    # in_w, in_h, out_w, out_h, gray
    (13, 7, 8, 8, False),
    (40, 30, 16, 16, False),
    (5, 4, 11, 9, False),
    (1, 1, 3, 2, False),
    (16, 16, 16, 16, False),
    (7, 13, 5, 20, False),
    (13, 7, 8, 8, True),
    (40, 30, 16, 16, True),
]


def image_ref(pix, out_w, out_h):
    """pix: uint8 (h, w, 3) -> (3, out_h, out_w) float32"""
    x = torch.from_numpy(pix).permute(2, 0, 1).unsqueeze(0).float()
    y = torch.nn.functional.interpolate(x, size=(out_h, out_w), mode="bilinear",
                                        align_corners=False, antialias=False)[0]
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return ((y / 255.0 - mean) / std).numpy()


def write_image_fixture():
    rng = np.random.default_rng(1234)
    cases = []
    for in_w, in_h, out_w, out_h, gray in IMAGE_CASES:
        if gray:
            g = rng.integers(0, 256, size=(in_h, in_w), dtype=np.uint8)
            pix = np.repeat(g[:, :, None], 3, axis=2)
            data = g.tobytes()
        else:
            pix = rng.integers(0, 256, size=(in_h, in_w, 3), dtype=np.uint8)
            data = pix.tobytes()
        out = image_ref(pix, out_w, out_h)
        cases.append({"width": in_w, "height": in_h, "out_width": out_w, "out_height": out_h,
                      "gray": gray, "pixels_hex": data.hex(),
                      "out": [float("%.8g" % v) for v in out.reshape(-1)]})
    with open(os.path.join(OUT, "image.json"), "w") as f:
        json.dump({"mean": MEAN, "std": STD, "cases": cases}, f)


# ---------------------------------------------------------------- log-mel

MEL_CASES = [
    {"name": "a", "sample_rate": 16000, "n_fft": 400, "win_length": 400, "hop_length": 160,
     "n_mels": 64, "f_min": 0.0, "f_max": 8000.0, "log_offset": 1e-6},
    {"name": "b", "sample_rate": 16000, "n_fft": 512, "win_length": 301, "hop_length": 128,
     "n_mels": 40, "f_min": 60.0, "f_max": 7600.0, "log_offset": 1e-3},
    # n_fft / 2 = 224 = 2^5 * 7: libmm's DFT-by-GEMM fallback, not kissfft
    {"name": "c", "sample_rate": 16000, "n_fft": 448, "win_length": 400, "hop_length": 160,
     "n_mels": 48, "f_min": 0.0, "f_max": 8000.0, "log_offset": 1e-6},
    # 240 = 4 * 4 * 3 * 5: a radix-3 stage in libmm's own FFT; odd window
    # offset; 51 frames, not a multiple of its 16 frames per vector
    {"name": "d", "sample_rate": 16000, "n_fft": 480, "win_length": 361, "hop_length": 150,
     "n_mels": 32, "f_min": 30.0, "f_max": 7000.0, "log_offset": 1e-5},
    # a 12-point FFT (stages 4, 3): the smallest plans
    {"name": "e", "sample_rate": 16000, "n_fft": 24, "win_length": 20, "hop_length": 10,
     "n_mels": 4, "f_min": 0.0, "f_max": 8000.0, "log_offset": 1e-6},
]


def logmel_ref(x, p):
    import torchaudio
    win = torch.hann_window(p["win_length"], periodic=True)
    spec = torch.stft(x, n_fft=p["n_fft"], hop_length=p["hop_length"],
                      win_length=p["win_length"], window=win, center=False,
                      return_complex=True)
    power = spec.abs() ** 2  # (n_freq, n_frames)
    fb = torchaudio.functional.melscale_fbanks(p["n_fft"] // 2 + 1, p["f_min"], p["f_max"],
                                               p["n_mels"], p["sample_rate"], norm=None,
                                               mel_scale="htk")  # (n_freq, n_mels)
    mel = fb.T @ power
    return torch.log(mel + p["log_offset"])


def write_logmel_fixture():
    sr = 16000
    n = sr // 2
    t = np.arange(n) / sr
    # chirp 100 Hz -> 6 kHz plus noise, amplitude ~0.5
    phase = 2 * np.pi * (100 * t + (6000 - 100) / (2 * 0.5) * t * t)
    rng = np.random.default_rng(99)
    x = (0.4 * np.sin(phase) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    with open(os.path.join(OUT, "logmel_input.f32"), "wb") as f:
        f.write(struct.pack("<%df" % n, *x))
    xt = torch.from_numpy(x)
    for p in MEL_CASES:
        y = logmel_ref(xt, p).numpy().astype(np.float32)
        p["n_frames"] = int(y.shape[1])
        with open(os.path.join(OUT, "logmel_%s.f32" % p["name"]), "wb") as f:
            f.write(struct.pack("<%df" % y.size, *y.reshape(-1)))
    with open(os.path.join(OUT, "logmel.json"), "w") as f:
        json.dump({"n_samples": n, "cases": MEL_CASES}, f, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    what = sys.argv[2:] or ["text", "image", "logmel"]
    if "text" in what:
        write_text_fixture()
        write_random_text_fixture()
    if "image" in what:
        write_image_fixture()
    if "logmel" in what:
        write_logmel_fixture()

"""PyTorch twins of the libmm architectures and preprocessing (models/FORMAT.md).

Every module here uses the tensor names libmm binds, so a model file is
`{prefix + k: v for k, v in module.state_dict().items()}` plus the "mm"
document that `config()` returns.  The preprocessing functions compute what
libmm computes (bilinear resize with half-pixel centres, log-mel from a
non-centred periodic-Hann STFT and an HTK filterbank, the word tokenizer), so
that predictions made here and by the C library agree.

    /usr/bin/python3 -c "import mmtorch"      (needs python3-torch, python3-torchaudio)
"""
import json
import re

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - message for users
    raise SystemExit("mmtorch: PyTorch is missing (%s); install it with "
                     "`apt-get install -y python3-torch` and run with /usr/bin/python3" % e)

import mmfile

COMPONENTS = ("text", "image", "audio", "fusion", "head")


# --------------------------------------------------------------------------
# preprocessing

# Tokens: maximal runs of alphanumeric characters, with apostrophes kept
# inside a word ("don't"), as libmm's mm_word_tokenize().
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def word_tokens(text, lowercase=True):
    """list of str: the tokens libmm's word tokenizer produces for @text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if lowercase:
        text = text.lower()
    return _WORD_RE.findall(text)


def word_ids(text, index, lowercase=True):
    """ids of the known words of @text (unknown words are skipped)."""
    return [index[t] for t in word_tokens(text, lowercase) if t in index]


def composite_on_white(rgba):
    """(H, W, 4) uint8 -> (H, W, 3) uint8: v = (c a + 255 (255 - a) + 127) / 255.

    The C tool (tools/mm-classify.c) composites transparent pictures the
    same way, in integers."""
    rgba = np.asarray(rgba, dtype=np.uint32)
    a = rgba[..., 3:4]
    out = (rgba[..., :3] * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def image_input(pixels, width, height, mean, std):
    """pixels (B, H, W, 3) uint8 tensor -> (B, 3, height, width) float32:
    ((bilinear resize of the pixels) / 255 - mean) / std."""
    x = pixels.permute(0, 3, 1, 2).float()
    if x.shape[2] != height or x.shape[3] != width:
        x = F.interpolate(x, size=(height, width), mode="bilinear",
                          align_corners=False, antialias=False)
    x = x / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


class LogMel(nn.Module):
    """samples (B, N) float -> (B, n_mels, 1 + (N - n_fft) / hop) log-mel."""

    def __init__(self, sample_rate=16000, n_fft=400, win_length=400, hop_length=160,
                 n_mels=64, f_min=0.0, f_max=8000.0, log_offset=1e-6):
        super().__init__()
        try:
            from torchaudio.functional import melscale_fbanks
        except ImportError as e:
            raise SystemExit("mmtorch: torchaudio is missing (%s); install it with "
                             "`apt-get install -y python3-torchaudio`" % e)
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.log_offset = log_offset
        self.register_buffer("window", torch.hann_window(win_length, periodic=True),
                             persistent=False)
        fb = melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate,
                             norm=None, mel_scale="htk")
        self.register_buffer("fb", fb.t().contiguous(), persistent=False)  # (n_mels, F)

    def forward(self, x):
        spec = torch.stft(x, self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window, center=False, return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2               # (B, F, T)
        mel = torch.matmul(self.fb, power)                     # (B, n_mels, T)
        return torch.log(mel + self.log_offset)


# --------------------------------------------------------------------------
# encoders

class WordVec(nn.Module):
    """Averaged word vectors, then an optional linear projection.
    Input: a flat LongTensor of ids and per-example offsets (EmbeddingBag)."""

    def __init__(self, vocab, emb_dim, dim=None, lowercase=True):
        super().__init__()
        self.vocab = list(vocab)
        self.index = {}
        for i, w in enumerate(self.vocab):
            self.index.setdefault(w, i)
        self.lowercase = lowercase
        self.embeddings = nn.EmbeddingBag(len(self.vocab), emb_dim, mode="mean")
        self.proj = nn.Linear(emb_dim, dim) if dim is not None else None
        self.dim = dim if dim is not None else emb_dim

    def ids(self, text):
        return word_ids(text, self.index, self.lowercase)

    def forward(self, flat_ids, offsets):
        z = self.embeddings(flat_ids, offsets)   # empty bags give zeros
        return self.proj(z) if self.proj is not None else z

    def config(self):
        return {"type": "wordvec", "vocab": self.vocab, "dim": self.dim,
                "lowercase": self.lowercase}


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        idn = self.downsample(x) if self.downsample is not None else x
        return F.relu(y + idn)


class ResNet(nn.Module):
    """torchvision ResNet names with free widths/blocks; input (B, 3, H, W)
    already normalised (see image_input)."""

    def __init__(self, width=64, height=64, widths=(16, 32, 64, 96), blocks=(1, 1, 1, 1),
                 dim=64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 stem_kernel=7, stem_stride=2, stem_maxpool=True):
        super().__init__()
        self.cfg = {"type": "resnet", "width": width, "height": height, "mean": list(mean),
                    "std": list(std), "stem_kernel": stem_kernel, "stem_stride": stem_stride,
                    "stem_maxpool": stem_maxpool, "widths": list(widths),
                    "blocks": list(blocks), "dim": dim if dim else widths[-1]}
        self.conv1 = nn.Conv2d(3, widths[0], stem_kernel, stem_stride, stem_kernel // 2,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.stem_maxpool = stem_maxpool
        c_in = widths[0]
        for s, (w, nb) in enumerate(zip(widths, blocks)):
            layer = []
            for b in range(nb):
                layer.append(BasicBlock(c_in, w, 2 if (s > 0 and b == 0) else 1))
                c_in = w
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*layer))
        self.n_stages = len(widths)
        self.fc = nn.Linear(c_in, dim) if dim else None

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.stem_maxpool:
            x = F.max_pool2d(x, 3, 2, 1)
        for s in range(self.n_stages):
            x = getattr(self, "layer%d" % (s + 1))(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x) if self.fc is not None else x

    def config(self):
        return dict(self.cfg)


class CNN1d(nn.Module):
    """log-mel (B, n_mels, T) -> convs (+BN) + ReLU -> mean over time -> fc."""

    def __init__(self, convs, dim=64, sample_rate=16000, n_fft=400, win_length=400,
                 hop_length=160, n_mels=64, f_min=0.0, f_max=8000.0, log_offset=1e-6,
                 window=16000, hop=8000, batch_norm=True):
        super().__init__()
        self.cfg = {"type": "cnn1d", "sample_rate": sample_rate, "n_fft": n_fft,
                    "win_length": win_length, "hop_length": hop_length, "n_mels": n_mels,
                    "f_min": f_min, "f_max": f_max, "log_offset": log_offset,
                    "window": window, "hop": hop,
                    "convs": [dict(c) for c in convs], "dim": dim}
        self.logmel = LogMel(sample_rate, n_fft, win_length, hop_length, n_mels, f_min, f_max,
                             log_offset)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList() if batch_norm else None
        c_in = n_mels
        for c in convs:
            self.convs.append(nn.Conv1d(c_in, c["out"], c["kernel"], c.get("stride", 1),
                                        c.get("padding", 0), groups=c.get("groups", 1),
                                        bias=not batch_norm))
            if batch_norm:
                self.bns.append(nn.BatchNorm1d(c["out"]))
            c_in = c["out"]
        self.fc = nn.Linear(c_in, dim)

    def forward(self, feats):
        x = feats
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.bns is not None:
                x = self.bns[i](x)
            x = F.relu(x)
        return self.fc(x.mean(dim=2))

    def config(self):
        return dict(self.cfg)


# --------------------------------------------------------------------------
# fusion and head

class ConcatFusion(nn.Module):
    """z_1 (+) ... (+) z_M with zeros for a missing input, then the mask bits."""

    def __init__(self, inputs, append_mask=True):
        super().__init__()
        self.inputs = [dict(i) for i in inputs]
        self.append_mask = append_mask
        self.dim = sum(i["dim"] for i in inputs) + (len(inputs) if append_mask else 0)

    def forward(self, zs, mask):
        """zs: list of (B, d_i); mask (B, M) float of 0/1."""
        parts = [z * mask[:, i:i + 1] for i, z in enumerate(zs)]
        if self.append_mask:
            parts.append(mask)
        return torch.cat(parts, dim=1)

    def config(self):
        return {"type": "concat", "inputs": self.inputs, "append_mask": self.append_mask,
                "dim": self.dim}


class AttentionFusion(nn.Module):
    """Attention of a learnt query over modality tokens (FORMAT.md)."""

    def __init__(self, inputs, d_model=64, heads=4):
        super().__init__()
        self.inputs = [dict(i) for i in inputs]
        self.d_model, self.heads, self.dim = d_model, heads, d_model
        self.proj = nn.ModuleList([nn.Linear(i["dim"], d_model) for i in inputs])
        self.modality_embed = nn.Parameter(torch.randn(len(inputs), d_model) * 0.1)
        self.query = nn.Parameter(torch.randn(1, d_model) * 0.1)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, zs, mask):
        tokens = torch.stack([p(z) for p, z in zip(self.proj, zs)], 1) + self.modality_embed
        b = tokens.shape[0]
        q = self.query.unsqueeze(0).expand(b, 1, self.d_model)
        missing = mask < 0.5
        all_missing = missing.all(dim=1)
        safe = missing.clone()
        safe[all_missing] = False          # avoid NaN, zeroed below
        att, _ = self.attn(q, tokens, tokens, key_padding_mask=safe, need_weights=False)
        att = att * (~all_missing).float().view(b, 1, 1)
        return self.norm(q + att).squeeze(1)

    def config(self):
        return {"type": "attention", "inputs": self.inputs, "d_model": self.d_model,
                "heads": self.heads, "dim": self.dim}


class MLPHead(nn.Module):
    def __init__(self, d_in, hidden, labels, kind="softmax"):
        super().__init__()
        sizes = [d_in] + list(hidden) + [len(labels)]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self.labels = list(labels)
        self.kind = kind

    def logits(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x

    def forward(self, x):
        y = self.logits(x)
        if self.kind == "softmax":
            return torch.softmax(y, dim=1)
        if self.kind == "sigmoid":
            return torch.sigmoid(y)
        return y

    def config(self):
        return {"type": "mlp", "kind": self.kind, "layers": len(self.layers),
                "labels": self.labels, "dim": len(self.labels)}


# --------------------------------------------------------------------------
# files

def state_tensors(prefix, module):
    """{prefix.name: float32 numpy} of a module's state_dict (buffers that
    are not part of the format, like num_batches_tracked, are dropped)."""
    out = {}
    for k, v in module.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        out[prefix + "." + k] = v.detach().cpu().float().numpy()
    return out


def save_model(path, name, components, fp16=True, extra_metadata=None):
    """components: {"text": module, ...} (any subset) -> model file."""
    tensors, doc = {}, {"version": 1, "name": name, "components": {}}
    for comp in COMPONENTS:
        m = components.get(comp)
        if m is None:
            continue
        tensors.update(state_tensors(comp, m))
        doc["components"][comp] = m.config()
    mmfile.save(path, tensors, doc, fp16=fp16, extra_metadata=extra_metadata)
    return doc


def _load_into(module, tensors, prefix):
    sd = {k[len(prefix) + 1:]: torch.from_numpy(v) for k, v in tensors.items()
          if k.startswith(prefix + ".")}
    missing, unexpected = module.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError("%s: missing tensors %s, unexpected tensors %s"
                         % (prefix, missing, unexpected))


def load_model(path):
    """Reads a model file written for libmm back into these modules
    (wordvec, resnet, cnn1d, concat/attention, mlp).  Returns (doc, {comp: module})."""
    tensors, doc = mmfile.load(path)
    mods = {}
    comps = doc["components"]
    if "text" in comps:
        c = comps["text"]
        if c["type"] != "wordvec":
            raise ValueError("load_model: text type %r not supported here" % c["type"])
        e = tensors["text.embeddings.weight"].shape[1]
        has_proj = "text.proj.weight" in tensors
        mods["text"] = WordVec(c["vocab"], e, c["dim"] if has_proj else None,
                               c.get("lowercase", True))
    if "image" in comps:
        c = comps["image"]
        mods["image"] = ResNet(c["width"], c["height"], c["widths"], c["blocks"],
                               c["dim"] if "image.fc.weight" in tensors else None,
                               c["mean"], c["std"], c.get("stem_kernel", 7),
                               c.get("stem_stride", 2), c.get("stem_maxpool", True))
    if "audio" in comps:
        c = dict(comps["audio"])
        c.pop("type")
        mods["audio"] = CNN1d(batch_norm="audio.bns.0.weight" in tensors, **c)
    if "fusion" in comps:
        c = comps["fusion"]
        if c["type"] == "concat":
            mods["fusion"] = ConcatFusion(c["inputs"], c.get("append_mask", False))
        else:
            mods["fusion"] = AttentionFusion(c["inputs"], c["d_model"], c["heads"])
    if "head" in comps:
        c = comps["head"]
        d_in = tensors["head.layers.0.weight"].shape[1]
        hidden = [tensors["head.layers.%d.weight" % i].shape[0] for i in range(c["layers"] - 1)]
        mods["head"] = MLPHead(d_in, hidden, c["labels"], c["kind"])
    for comp, m in mods.items():
        _load_into(m, tensors, comp)
        m.eval()
    return doc, mods


def dumps_doc(doc):
    return json.dumps(doc, indent=1)

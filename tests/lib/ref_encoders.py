#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""PyTorch references for tests/lib/test-encoders.c.

    /usr/bin/python3 tests/lib/ref_encoders.py            # writes tests/fixtures/encoders/
    /usr/bin/python3 tests/lib/ref_encoders.py --resnet18 [DIR]   # default /tmp

Each case is a model file NAME.safetensors (torch state_dict() with the
component prefix, plus the "mm" metadata) and NAME-io.safetensors holding the
inputs and the PyTorch outputs as F32 tensors ("io.*").  The networks are
torch modules with random (seeded) weights and random batch-norm running
statistics, run in float64; the references are rounded to float32.

  resnet-small      torchvision BasicBlocks, widths [8,16], blocks [1,1],
                    32x32 input, fc to 16; an RGB picture of another size
                    (resized by F.interpolate bilinear, align_corners=False)
  resnet-folded     the same network with every batch-norm folded into a conv
                    bias (no bn tensors): must give the same outputs
  resnet-nostem     stem 3x3 stride 1, no max-pool, no fc
  audio             torch.stft + torchaudio melscale_fbanks (htk, norm None),
                    Conv1d/BatchNorm1d stack incl. a grouped and a strided
                    conv; two input lengths
  fusion-attn       torch.nn.MultiheadAttention (batch_first) with
                    key_padding_mask + residual + LayerNorm, for several masks
  head-softmax / head-sigmoid / head-regression
  bad-*             one tensor with a wrong shape (the loader must name it)

--resnet18 writes torchvision.models.resnet18(num_classes=32) with random
weights (45 MB, not committed) as DIR/mm-resnet18.safetensors (+ -io); the
test runs it when MM_RESNET18 points at that file.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio
import torchvision
from torchvision.models.resnet import BasicBlock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import mmfile  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "encoders")
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

torch.manual_seed(20240)


def export(module, prefix):
    """state_dict() with the component prefix, without integer buffers."""
    return {prefix + k: v.detach().float().numpy() for k, v in module.state_dict().items()
            if v.dtype.is_floating_point}


def save_case(out, name, tensors, components, io):
    mmfile.save(os.path.join(out, name + ".safetensors"), tensors,
                {"version": 1, "name": name, "components": components})
    if io is not None:
        mmfile.save(os.path.join(out, name + "-io.safetensors"),
                    {"io." + k: np.asarray(v, dtype=np.float32) for k, v in io.items()},
                    {"version": 1, "name": name + "-io", "components": {}})


def randomize_bn(module):
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)


# ---- image ------------------------------------------------------------------

class SmallResNet(nn.Module):
    """torchvision's ResNet with configurable stem, stages and fc; same names."""

    def __init__(self, widths, blocks, stem_kernel=7, stem_stride=2, stem_maxpool=True,
                 num_classes=None):
        super().__init__()
        self.stem_maxpool = stem_maxpool
        self.conv1 = nn.Conv2d(3, widths[0], stem_kernel, stem_stride, stem_kernel // 2,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = widths[0]
        for s, (w, n) in enumerate(zip(widths, blocks)):
            layers = []
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                down = None
                if stride != 1 or inplanes != w:
                    down = nn.Sequential(nn.Conv2d(inplanes, w, 1, stride, bias=False),
                                         nn.BatchNorm2d(w))
                layers.append(BasicBlock(inplanes, w, stride, down))
                inplanes = w
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*layers))
        self.n_stages = len(widths)
        self.fc = nn.Linear(inplanes, num_classes) if num_classes else None

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.stem_maxpool:
            x = self.maxpool(x)
        for s in range(self.n_stages):
            x = getattr(self, "layer%d" % (s + 1))(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x) if self.fc is not None else x


def image_preprocess(pixels, width, height):
    """pixels (h, w, 3) uint8 RGB -> (1, 3, height, width) float64 as FORMAT.md says."""
    x = torch.from_numpy(pixels.astype(np.float64)).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                      antialias=False)
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def test_picture(h, w, seed):
    """A smooth picture with some noise (uint8, RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], -1)
    img += rng.normal(0, 20, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def image_cfg(width, height, widths, blocks, dim, stem_kernel=7, stem_stride=2,
              stem_maxpool=True):
    return {"type": "resnet", "width": width, "height": height, "mean": MEAN, "std": STD,
            "stem_kernel": stem_kernel, "stem_stride": stem_stride,
            "stem_maxpool": stem_maxpool, "widths": widths, "blocks": blocks, "dim": dim}


def run_image(net, pics, width, height):
    net = net.double().eval()
    with torch.no_grad():
        return [net(image_preprocess(p, width, height))[0].numpy() for p in pics]


def fold_bn(sd, conv, bn):
    """Replaces conv weight + bn by a conv with weight and bias (eps 1e-5)."""
    g, b = sd.pop(bn + ".weight"), sd.pop(bn + ".bias")
    m, v = sd.pop(bn + ".running_mean"), sd.pop(bn + ".running_var")
    scale = g / np.sqrt(v.astype(np.float64) + 1e-5)
    sd[conv + ".weight"] = (sd[conv + ".weight"] * scale[:, None, None, None]).astype(np.float32)
    sd[conv + ".bias"] = (b - m * scale).astype(np.float32)


def image_cases(out):
    widths, blocks = [8, 16], [1, 1]
    net = SmallResNet(widths, blocks, num_classes=16)
    randomize_bn(net)
    pics = [test_picture(20, 24, 1), test_picture(11, 37, 2), test_picture(36, 34, 3)]
    ys = run_image(net, pics, 32, 32)
    io = {}
    for i, (p, y) in enumerate(zip(pics, ys)):
        io["pixels%d" % i] = p.astype(np.float32)        # (h, w, 3) RGB values
        io["expected%d" % i] = y
    sd = export(net, "image.")
    cfg = image_cfg(32, 32, widths, blocks, 16)
    save_case(out, "resnet-small", sd, {"image": cfg}, io)

    # Same network, every batch-norm folded into its conv: same references.
    folded = dict(sd)
    fold_bn(folded, "image.conv1", "image.bn1")
    for s in range(len(widths)):
        for b in range(blocks[s]):
            p = "image.layer%d.%d." % (s + 1, b)
            fold_bn(folded, p + "conv1", p + "bn1")
            fold_bn(folded, p + "conv2", p + "bn2")
            if p + "downsample.0.weight" in folded:
                fold_bn(folded, p + "downsample.0", p + "downsample.1")
    save_case(out, "resnet-folded", folded, {"image": cfg}, None)

    # Stem 3x3 stride 1 without max-pool, three stages, no fc.
    net = SmallResNet([4, 6, 8], [1, 2, 1], stem_kernel=3, stem_stride=1, stem_maxpool=False)
    randomize_bn(net)
    pic = test_picture(9, 14, 5)
    ys = run_image(net, [pic], 12, 10)
    cfg = image_cfg(12, 10, [4, 6, 8], [1, 2, 1], 8, 3, 1, False)
    sd = export(net, "image.")
    save_case(out, "resnet-nostem", sd, {"image": cfg},
              {"pixels0": pic.astype(np.float32), "expected0": ys[0]})

    bad = dict(sd)
    bad["image.layer2.0.downsample.0.weight"] = np.zeros((6, 4, 1, 2), np.float32)
    save_case(out, "bad-image", bad, {"image": cfg}, None)


def resnet18_case(out):
    net = torchvision.models.resnet18(num_classes=32)
    randomize_bn(net)
    pic = test_picture(200, 256, 4)
    y = run_image(net, [pic], 224, 224)[0]
    cfg = image_cfg(224, 224, [64, 128, 256, 512], [2, 2, 2, 2], 32)
    save_case(out, "mm-resnet18", export(net, "image."), {"image": cfg},
              {"pixels0": pic.astype(np.float32), "expected0": y})
    print("wrote", os.path.join(out, "mm-resnet18.safetensors"))


# ---- audio ------------------------------------------------------------------

AUDIO = {"sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160,
         "n_mels": 20, "f_min": 50.0, "f_max": 7600.0, "log_offset": 1e-6,
         "window": 8000, "hop": 4000}
CONVS = [{"out": 12, "kernel": 5, "stride": 1, "padding": 2, "groups": 1, "bn": True, "bias": True},
         {"out": 12, "kernel": 3, "stride": 2, "padding": 1, "groups": 3, "bn": True, "bias": False},
         {"out": 10, "kernel": 3, "stride": 1, "padding": 0, "groups": 1, "bn": False, "bias": True}]


class AudioCNN(nn.Module):
    def __init__(self, n_mels, convs, dim):
        super().__init__()
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleDict()
        c_in = n_mels
        for i, c in enumerate(convs):
            self.convs.append(nn.Conv1d(c_in, c["out"], c["kernel"], c["stride"], c["padding"],
                                        groups=c["groups"], bias=c["bias"]))
            if c["bn"]:
                self.bns[str(i)] = nn.BatchNorm1d(c["out"])
            c_in = c["out"]
        self.fc = nn.Linear(c_in, dim)

    def forward(self, feat):               # (1, n_mels, T)
        x = feat
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if str(i) in self.bns:
                x = self.bns[str(i)](x)
            x = F.relu(x)
        return self.fc(x.mean(dim=2))


def log_mel(samples, a):
    x = torch.from_numpy(samples.astype(np.float64))
    window = torch.hann_window(a["win_length"], periodic=True, dtype=torch.float64)
    spec = torch.stft(x, a["n_fft"], a["hop_length"], a["win_length"], window=window,
                      center=False, return_complex=True)
    power = spec.abs() ** 2                                    # (n_freq, T)
    fb = torchaudio.functional.melscale_fbanks(a["n_fft"] // 2 + 1, a["f_min"], a["f_max"],
                                               a["n_mels"], a["sample_rate"], norm=None,
                                               mel_scale="htk").double()   # (n_freq, n_mels)
    return torch.log(fb.T @ power + a["log_offset"])           # (n_mels, T)


def audio_signal(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / AUDIO["sample_rate"]
    s = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t)
    s += rng.normal(0, 0.05, n)
    return s.astype(np.float32)


def audio_cases(out):
    net = AudioCNN(AUDIO["n_mels"], CONVS, 6)
    randomize_bn(net)
    net = net.double().eval()
    io = {}
    for i, n in enumerate([4000, 2345, 1300]):
        s = audio_signal(n, 10 + i)
        with torch.no_grad():
            feat = log_mel(s, AUDIO)
            y = net(feat[None])[0].numpy()
        io["samples%d" % i] = s
        io["expected%d" % i] = y
        if i == 0:
            io["logmel0"] = feat.numpy()
    sd = export(net, "audio.")
    cfg = dict(AUDIO, type="cnn1d", dim=6,
               convs=[{k: c[k] for k in ("out", "kernel", "stride", "padding", "groups")}
                      for c in CONVS])
    save_case(out, "audio", sd, {"audio": cfg}, io)

    bad = dict(sd)
    bad["audio.convs.1.weight"] = np.zeros((12, 12, 3), np.float32)   # groups ignored
    save_case(out, "bad-audio", bad, {"audio": cfg}, None)


# ---- fusion -----------------------------------------------------------------

FUSION_INPUTS = [{"modality": "image", "dim": 5}, {"modality": "audio", "dim": 7},
                 {"modality": "text", "dim": 3}]
MASKS = [[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]]


class AttentionFusion(nn.Module):
    def __init__(self, dims, d_model, heads):
        super().__init__()
        self.proj = nn.ModuleList([nn.Linear(d, d_model) for d in dims])
        self.modality_embed = nn.Parameter(torch.randn(len(dims), d_model) * 0.5)
        self.query = nn.Parameter(torch.randn(1, d_model))
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm = nn.LayerNorm(d_model)
        with torch.no_grad():
            self.attn.in_proj_bias.normal_(0, 0.2)
            self.attn.out_proj.bias.normal_(0, 0.2)
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_(0, 0.2)

    def forward(self, zs, present):
        q = self.query[None]                                        # (1, 1, d)
        if not any(present):
            return self.norm(q)[0, 0]
        tokens = torch.stack([p(z) + e for p, z, e in zip(self.proj, zs, self.modality_embed)])
        pad = torch.tensor([not p for p in present])[None]          # True = ignore
        a, _ = self.attn(q, tokens[None], tokens[None], key_padding_mask=pad,
                         need_weights=False)
        return self.norm(q + a)[0, 0]


def fusion_cases(out):
    dims = [i["dim"] for i in FUSION_INPUTS]
    net = AttentionFusion(dims, 8, 2).double().eval()
    io = {}
    zs = [torch.randn(d, dtype=torch.float64) for d in dims]
    for i, z in enumerate(zs):
        io["input%d" % i] = z.numpy()
    for m, mask in enumerate(MASKS):
        with torch.no_grad():
            io["expected%d" % m] = net(zs, mask).numpy()
        io["mask%d" % m] = np.array(mask, np.float32)
    sd = export(net, "fusion.")
    cfg = {"type": "attention", "inputs": FUSION_INPUTS, "d_model": 8, "heads": 2, "dim": 8}
    save_case(out, "fusion-attn", sd, {"fusion": cfg}, io)

    bad = dict(sd)
    bad["fusion.attn.in_proj_weight"] = np.zeros((8, 24), np.float32)
    save_case(out, "bad-fusion", bad, {"fusion": cfg}, None)


# ---- head -------------------------------------------------------------------

class MlpHead(nn.Module):
    def __init__(self, sizes, kind):
        super().__init__()
        self.kind = kind
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        if self.kind == "softmax":
            return torch.softmax(x, -1)
        if self.kind == "sigmoid":
            return torch.sigmoid(x)
        return x


def head_cases(out):
    for kind, sizes in [("softmax", [12, 16, 10, 5]), ("sigmoid", [12, 9, 4]),
                        ("regression", [12, 3])]:
        net = MlpHead(sizes, kind).double().eval()
        io = {}
        for i in range(3):
            x = torch.randn(sizes[0], dtype=torch.float64) * 2
            with torch.no_grad():
                io["input%d" % i] = x.numpy()
                io["expected%d" % i] = net(x).numpy()
        labels = ["%s%d" % (kind[:3], k) for k in range(sizes[-1])]
        cfg = {"type": "mlp", "kind": kind, "layers": len(sizes) - 1, "labels": labels,
               "dim": sizes[-1]}
        sd = export(net, "head.")
        save_case(out, "head-" + kind, sd, {"head": cfg}, io)
        if kind == "softmax":
            bad = dict(sd)
            bad["head.layers.1.weight"] = np.zeros((10, 15), np.float32)
            save_case(out, "bad-head", bad, {"head": cfg}, None)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--resnet18":
        out = sys.argv[2] if len(sys.argv) > 2 else "/tmp"
        resnet18_case(out)
        return
    os.makedirs(OUT, exist_ok=True)
    image_cases(OUT)
    audio_cases(OUT)
    fusion_cases(OUT)
    head_cases(OUT)


if __name__ == "__main__":
    main()

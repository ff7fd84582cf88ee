#!/usr/bin/python3
"""Convert an ONNX file into a libmm model file with a `graph` component.

    /usr/bin/python3 models/onnx2mm.py IN.onnx OUT.safetensors --component image \\
        --size 224x224 [--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225] [--labels labels.txt]

    audio:  --component audio --audio-input logmel|logmel_t|waveform --sample-rate 16000
            --n-fft 400 --hop-length 160 --n-mels 64 --window 32000 [--hop 16000 ...]
    text:   --component text --vocab vocab.txt --max-len 64 [--pool masked_mean]
            [--inputs input_ids=token_ids,attention_mask=attention_mask]
    head:   --component head --labels labels.txt [--head-kind softmax|sigmoid|regression]

Everything the ONNX file computes from constants and shapes is folded for the
fixed input size (Shape, Gather/Concat of shape pieces, ConstantOfShape,
Expand, Range, Cast...); Dropout and Identity are removed; batch-norm is
folded into a preceding convolution; a constant-mode Pad becomes a Pad node, or
the following convolution's padding when its value is 0; the erf form of GELU becomes one Gelu
node; opset-11+ constant inputs (Clip, Slice, Reshape, Split, Squeeze,
Unsqueeze, Reduce*) become attributes.  An operator libmm does not have is
refused with its op type, node name and the list of supported operators.

The written file is checked (the self-check): the converted graph and the
original ONNX graph are evaluated in numpy (models/mmgraph_ref.py) on a probe
input, then libmm runs the written file on the same input (tools/mm-embed,
found in build*/tools/ or given by --mm-embed / $MM_EMBED).  A relative error
(max |libmm - reference| / max |reference|) above 1e-4 deletes the file and
exits with status 1, naming the first diverging node when it can be found.
--no-check skips the libmm part (the numpy part always runs).

Needs numpy and Debian's python3-onnx; no onnxruntime, no torch.
"""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import mmfile  # noqa: E402
import mmgraph_ref  # noqa: E402

TOLERANCE = 1e-4

# the operators of FORMAT.md's graph component
SUPPORTED = ["Conv", "Gemm", "MatMul", "BatchNormalization", "InstanceNormalization",
             "LayerNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid",
             "HardSwish", "Tanh", "Erf", "Gelu", "Exp", "Sqrt", "Reciprocal", "Neg", "Abs",
             "Log", "Pow", "Softmax", "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool",
             "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax",
             "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split",
             "Slice", "Pad", "Gather", "Identity", "Dropout", "Cast", "Where"]

# attributes each op may carry in the file (FORMAT.md); others are dropped
# when they hold their default, refused otherwise
ATTRS = {
    "Conv": ["kernel_shape", "strides", "pads", "dilations", "group"],
    "Gemm": ["alpha", "beta", "transA", "transB"],
    "BatchNormalization": ["epsilon"],
    "InstanceNormalization": ["epsilon"],
    "LayerNormalization": ["axis", "epsilon"],
    "LeakyRelu": ["alpha"],
    "Clip": ["min", "max"],
    "HardSigmoid": ["alpha", "beta"],
    "Gelu": ["approximate"],
    "Softmax": ["axis"],
    "MaxPool": ["kernel_shape", "strides", "pads", "dilations", "ceil_mode"],
    "AveragePool": ["kernel_shape", "strides", "pads", "ceil_mode", "count_include_pad"],
    "ReduceMean": ["axes", "keepdims"],
    "ReduceSum": ["axes", "keepdims"],
    "ReduceMax": ["axes", "keepdims"],
    "Reshape": ["shape"],
    "Flatten": ["axis"],
    "Transpose": ["perm"],
    "Squeeze": ["axes"],
    "Unsqueeze": ["axes"],
    "Concat": ["axis"],
    "Split": ["axis", "split"],
    "Slice": ["starts", "ends", "axes", "steps"],
    "Pad": ["pads", "value"],
    "Gather": ["axis", "indices"],
    "Cast": ["to"],
}

INPUT_KINDS = ("image", "logmel", "logmel_t", "waveform", "token_ids", "attention_mask",
               "token_type_ids", "features")
POOLS = ("flatten", "channel_mean", "first_token", "masked_mean")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ConvertError(Exception):
    pass


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
        return onnx, numpy_helper
    except ImportError:
        raise ConvertError("onnx2mm: Python module 'onnx' is missing; install it with "
                           "`apt-get install -y python3-onnx` and run with /usr/bin/python3")


# --------------------------------------------------------------------------
# ONNX file -> plain graph {nodes, consts, inputs, outputs}

def _attr_value(a, numpy_helper):
    from onnx import AttributeProto as A
    if a.type == A.FLOAT:
        return float(a.f)
    if a.type == A.INT:
        return int(a.i)
    if a.type == A.STRING:
        return a.s.decode("utf-8", "replace")
    if a.type == A.TENSOR:
        return numpy_helper.to_array(a.t)
    if a.type == A.FLOATS:
        return [float(v) for v in a.floats]
    if a.type == A.INTS:
        return [int(v) for v in a.ints]
    if a.type == A.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    raise ConvertError("onnx2mm: attribute '%s' of type %d is not supported" % (a.name, a.type))


def read_onnx(path):
    onnx, numpy_helper = _onnx()
    try:
        model = onnx.load(path)
    except Exception as e:  # onnx raises DecodeError, OSError...
        raise ConvertError("onnx2mm: cannot read %s: %s" % (path, e))
    g = model.graph
    opset = 1
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = imp.version
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes = []
    for k, n in enumerate(g.node):
        if n.domain not in ("", "ai.onnx"):
            raise ConvertError("onnx2mm: node '%s': operator %s of domain '%s' is not supported"
                               " (only the standard ONNX domain)" % (n.name or k, n.op_type,
                                                                      n.domain))
        nodes.append({"name": n.name or "%s_%d" % (n.op_type, k), "op": n.op_type,
                      "inputs": list(n.input), "outputs": list(n.output),
                      "attrs": {a.name: _attr_value(a, numpy_helper) for a in n.attribute}})
    inputs = []
    for i in g.input:
        if i.name in consts:
            continue
        tt = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        inputs.append({"name": i.name, "dtype": mmgraph_ref.ONNX_DTYPES.get(tt.elem_type),
                       "dims": dims})
    outputs = [o.name for o in g.output]
    return {"nodes": nodes, "consts": consts, "inputs": inputs, "outputs": outputs,
            "opset": opset}


# --------------------------------------------------------------------------
# probe inputs and the preprocessing libmm applies (numpy)

def hann_periodic(n):
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def mel_fbank(cfg):
    """(n_freq, n_mels), torchaudio melscale_fbanks(norm=None, mel_scale='htk')"""
    n_freq = cfg["n_fft"] // 2 + 1
    freqs = np.linspace(0, cfg["sample_rate"] // 2, n_freq)
    hz2mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    mel2hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    m = np.linspace(hz2mel(cfg["f_min"]), hz2mel(cfg["f_max"]), cfg["n_mels"] + 2)
    f = mel2hz(m)
    fd = f[1:] - f[:-1]
    slopes = f[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / fd[:-1]
    up = slopes[:, 2:] / fd[1:]
    return np.maximum(0.0, np.minimum(down, up))


def logmel(x, cfg):
    """x (N,) -> (n_mels, T), as FORMAT.md's cnn1d front end"""
    n_fft, hop, wl = cfg["n_fft"], cfg["hop_length"], cfg["win_length"]
    win = np.zeros(n_fft)
    left = (n_fft - wl) // 2
    win[left:left + wl] = hann_periodic(wl)
    t = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop:i * hop + n_fft] for i in range(t)]).astype(np.float64)
    power = np.abs(np.fft.rfft(frames * win, axis=1)) ** 2      # (T, n_freq)
    mel = power @ mel_fbank(cfg)                                # (T, n_mels)
    return np.log(mel + cfg["log_offset"]).T


def audio_defaults(cfg):
    out = {"sample_rate": 16000, "n_fft": 400, "n_mels": 64, "f_min": 0.0,
           "log_offset": 1e-6}
    out.update({k: v for k, v in cfg.items() if v is not None})
    out.setdefault("win_length", out["n_fft"])
    out.setdefault("hop_length", out["n_fft"] // 4)
    out.setdefault("f_max", out["sample_rate"] / 2.0)
    out.setdefault("window", out["sample_rate"])
    out.setdefault("hop", out["window"])
    return out


def probe_words(vocab, lowercase):
    pat = re.compile(r"^[a-z]+$" if lowercase else r"^[A-Za-z]+$")
    words = [w for w in vocab if pat.match(w)]
    rng = np.random.default_rng(7)
    if not words:
        return ""
    pick = rng.choice(len(words), size=min(12, len(words)), replace=False)
    return " ".join(words[i] for i in pick)


def make_probe(comp, seed=1):
    """Probe input for a component document: (raw input for mm-embed as
    bytes, {kind: float32 array of the graph input's shape})."""
    rng = np.random.default_rng(seed)
    kinds = {i["kind"]: i for i in comp["inputs"]}
    feeds = {}
    if "image" in kinds:
        w, h = comp["width"], comp["height"]
        pix = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        mean = np.asarray(comp["mean"], np.float32).reshape(3, 1, 1)
        std = np.asarray(comp["std"], np.float32).reshape(3, 1, 1)
        x = (pix.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0) - mean) / std
        feeds["image"] = x.reshape(kinds["image"]["shape"]).astype(np.float32)
        return pix.tobytes(), feeds
    if kinds.keys() & {"logmel", "logmel_t", "waveform"}:
        n = comp["window"]
        t = np.arange(n) / comp["sample_rate"]
        x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(n)).astype(np.float32)
        for k in ("logmel", "logmel_t"):
            if k in kinds:
                m = logmel(x.astype(np.float64), comp)
                if k == "logmel_t":
                    m = m.T
                feeds[k] = m.reshape(kinds[k]["shape"]).astype(np.float32)
        if "waveform" in kinds:
            feeds["waveform"] = x.reshape(kinds["waveform"]["shape"])
        return x.tobytes(), feeds
    if "token_ids" in kinds:
        vocab = comp["vocab"]
        text = probe_words(vocab, comp.get("lowercase", True))
        index = {w: i for i, w in enumerate(vocab)}
        L = comp["max_len"]
        ids = [index["[CLS]"]] + [index[w] for w in text.split()][:L - 2] + [index["[SEP]"]]
        n = len(ids)
        ids = ids + [comp.get("pad_id", 0)] * (L - n)
        feeds["token_ids"] = np.asarray(ids, np.float32).reshape(1, L)
        feeds["attention_mask"] = (np.arange(L) < n).astype(np.float32).reshape(1, L)
        feeds["token_type_ids"] = np.zeros((1, L), np.float32)
        return text.encode("utf-8"), feeds
    if "features" in kinds:
        d = kinds["features"]["shape"][-1]
        x = rng.standard_normal(d).astype(np.float32)
        feeds["features"] = x.reshape(kinds["features"]["shape"])
        return x.tobytes(), feeds
    raise ConvertError("onnx2mm: no input kind to probe")


# --------------------------------------------------------------------------
# conversion

def _sanitise(name, used):
    s = re.sub(r"[^A-Za-z0-9_.]", "_", name).strip("_.") or "t"
    s = re.sub(r"_+", "_", s)[:200]
    base, k = s, 1
    while s in used:
        s = "%s_%d" % (base, k)
        k += 1
    used.add(s)
    return s


def _input_shape(kind, onnx_rank, comp):
    if kind == "image":
        return [1, 3, comp["height"], comp["width"]]
    if kind in ("logmel", "logmel_t"):
        t = 1 + (comp["window"] - comp["n_fft"]) // comp["hop_length"]
        s = [comp["n_mels"], t] if kind == "logmel" else [t, comp["n_mels"]]
        return [1] + s if onnx_rank == 3 else [1, 1] + s
    if kind == "waveform":
        return [1, comp["window"]]
    if kind in ("token_ids", "attention_mask", "token_type_ids"):
        return [1, comp["max_len"]]
    if kind == "features":
        return [1, comp["in_dim"]]
    raise ConvertError("onnx2mm: unknown input kind '%s'" % kind)


def _guess_kind(name, component, audio_input):
    n = name.lower()
    if component == "image":
        return "image"
    if component == "audio":
        return audio_input
    if component == "head":
        return "features"
    if "mask" in n:
        return "attention_mask"
    if "type" in n or "segment" in n:
        return "token_type_ids"
    return "token_ids"


def _is_close(a, v, tol=1e-6):
    a = np.asarray(a)
    return a.size == 1 and abs(float(a.reshape(-1)[0]) - v) <= tol * max(1.0, abs(v))


class Converter:
    def __init__(self, g, component, comp, input_kinds, output_name, pool):
        self.g = g
        self.component = component
        self.comp = comp
        self.input_kinds = input_kinds
        self.output_name = output_name
        self.pool = pool

    def refuse_op(self, n):
        raise ConvertError(
            "onnx2mm: node '%s': operator %s is not supported by libmm's graph component "
            "(supported: %s)" % (n["name"], n["op"], ", ".join(SUPPORTED)))

    def run(self):
        g = self.g
        # 1. fix the inputs and evaluate the original graph on the probe
        self.inputs = []
        feeds_f32 = {}
        raw, probe_feeds = None, None
        for i in g["inputs"]:
            kind = self.input_kinds[i["name"]]
            shape = _input_shape(kind, len(i["dims"]), self.comp)
            if len(i["dims"]) != len(shape) or any(d is not None and d > 0 and d != s
                                                   for d, s in zip(i["dims"], shape)):
                raise ConvertError("onnx2mm: input '%s' has shape %s in the ONNX file; a %s "
                                   "input of this component is %s"
                                   % (i["name"], i["dims"], kind, shape))
            self.inputs.append({"onnx": i, "kind": kind, "shape": shape})
        comp_inputs = [{"name": x["onnx"]["name"], "kind": x["kind"], "shape": x["shape"]}
                       for x in self.inputs]
        self.comp["inputs"] = comp_inputs
        raw, probe_feeds = make_probe(self.comp)
        self.probe_raw = raw
        values = dict(g["consts"])
        for x in self.inputs:
            v = probe_feeds[x["kind"]]
            feeds_f32[x["onnx"]["name"]] = v
            dt = x["onnx"]["dtype"] or np.float32
            values[x["onnx"]["name"]] = v.astype(dt)
        for n in g["nodes"]:
            if n["op"] not in mmgraph_ref.ALL_OPS:
                self.refuse_op(n)
        try:
            mmgraph_ref.run_nodes(g["nodes"], values)
        except mmgraph_ref.RefError as e:
            raise ConvertError("onnx2mm: evaluating the ONNX graph on a probe input failed: %s"
                               % e)
        self.orig_values = values
        self.feeds = feeds_f32
        out = self.output_name or g["outputs"][0]
        if out not in values:
            raise ConvertError("onnx2mm: output '%s' is not in the graph (outputs: %s)"
                               % (out, ", ".join(g["outputs"])))
        self.orig_out = out
        # 2. fold: everything that does not depend on an input is a constant
        dynamic = {x["onnx"]["name"] for x in self.inputs}
        nodes = []
        consts = {}
        for n in g["nodes"]:
            live = [t for t in n["inputs"] if t in dynamic]
            if n["op"] in ("Shape", "Size") or not live:
                for o in n["outputs"]:
                    if o:
                        consts[o] = values[o]
                continue
            for o in n["outputs"]:
                dynamic.add(o)
            nodes.append(dict(n, attrs=dict(n["attrs"])))
        for k, v in g["consts"].items():
            consts.setdefault(k, v)
        self.consts = consts
        self.nodes = nodes
        self.dynamic = dynamic
        if out not in dynamic:
            raise ConvertError("onnx2mm: output '%s' does not depend on the input" % out)
        self.rewrite()
        return self

    # ------------------------------------------------------------------
    def shape(self, name):
        return tuple(np.shape(self.orig_values[name]))

    def rewrite(self):
        alias = {}

        def res(t):
            while t in alias:
                t = alias[t]
            return t

        out_nodes = []
        for n in self.nodes:
            n["inputs"] = [res(t) if t else t for t in n["inputs"]]
            op = n["op"]
            if op in ("Identity", "Dropout"):
                alias[n["outputs"][0]] = n["inputs"][0]
                if len(n["outputs"]) > 1 and n["outputs"][1]:
                    self.consts[n["outputs"][1]] = np.ones(self.shape(n["outputs"][0]), bool)
                continue
            if op == "Pad":
                self.rewrite_pad(n)
                if not any(n["attrs"]["pads"]):     # what torch writes before some pools
                    alias[n["outputs"][0]] = n["inputs"][0]
                    continue
                out_nodes.append(n)
                continue
            if op == "Expand" and n["inputs"][1] not in self.dynamic:
                # broadcast to a fixed shape: x + zeros(shape) is exact
                zn = n["outputs"][0] + ".expand_zeros"
                self.consts[zn] = np.zeros(self.shape(n["outputs"][0]), np.float32)
                n["op"], n["inputs"] = "Add", [n["inputs"][0], zn]
                op = "Add"
            if op == "Cast":
                src = n["inputs"][0]
                to = np.dtype(mmgraph_ref.ONNX_DTYPES.get(int(n["attrs"]["to"]), np.float32))
                src_dt = np.asarray(self.orig_values[src]).dtype
                # every value is float32 in libmm: a cast between exact
                # integers and floats, or to a float type, changes nothing
                if to.kind == "f" or (src_dt.kind in "iub" and to.kind in "iu"):
                    alias[n["outputs"][0]] = src
                    continue
                n["attrs"] = {"to": int(n["attrs"]["to"])}
            elif op not in SUPPORTED:
                self.refuse_op(n)
            self.rewrite_attrs(n)
            out_nodes.append(n)
        self.alias = alias
        self.out = res(self.orig_out)
        self.nodes = out_nodes
        self.fold_bn()
        self.fold_pad()
        self.fuse_gelu()
        self.prune()

    def rewrite_pad(self, n):
        """ONNX Pad (opsets 2-18) -> {"pads": begin... end... over every axis,
        "value"}; only constant mode with constant pads and value."""
        a, ins = n["attrs"], n["inputs"]
        mode = a.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode != "constant":
            raise ConvertError("onnx2mm: node '%s': Pad mode '%s' is not supported (only "
                               "'constant')" % (n["name"], mode))
        rank = len(self.shape(ins[0]))
        if self.g["opset"] >= 11:
            pads = [int(v) for v in np.asarray(self.const(n, 1)).reshape(-1)]
            value = self.const(n, 2)
            axes = self.const(n, 3)
        else:
            pads, value, axes = list(a.get("pads", [])), a.get("value", 0.0), None
        value = 0.0 if value is None else float(np.asarray(value).reshape(-1)[0])
        if axes is not None:
            axes = [int(v) % rank for v in np.asarray(axes).reshape(-1)]
            full = [0] * (2 * rank)
            for j, ax in enumerate(axes):
                full[ax], full[rank + ax] = pads[j], pads[len(axes) + j]
            pads = full
        if len(pads) != 2 * rank:
            raise ConvertError("onnx2mm: node '%s': Pad has %d pads for a rank-%d input"
                               % (n["name"], len(pads), rank))
        if not math.isfinite(value):
            raise ConvertError("onnx2mm: node '%s': Pad value %s is not supported (finite "
                               "values only)" % (n["name"], value))
        if any(p < 0 for p in pads):
            raise ConvertError("onnx2mm: node '%s': negative pads %s (cropping) are not "
                               "supported" % (n["name"], pads))
        n["inputs"] = ins[:1]
        n["attrs"] = {"pads": pads, "value": value}

    def fold_pad(self):
        """A zero Pad of the spatial axes whose only consumer is a Conv becomes
        the Conv's padding."""
        by_out = {m["outputs"][0]: m for m in self.nodes}
        dead = set()
        for c in self.nodes:
            if c["op"] != "Conv":
                continue
            p = by_out.get(c["inputs"][0])
            if p is None or p["op"] != "Pad" or p["attrs"]["value"] != 0.0 \
                    or p["outputs"][0] == self.out or len(self.consumers(p["outputs"][0])) != 1:
                continue
            pads = p["attrs"]["pads"]
            r = len(pads) // 2
            nd = len(c["attrs"]["kernel_shape"])
            if r != nd + 2 or pads[0] or pads[1] or pads[r] or pads[r + 1]:
                continue
            cp = list(c["attrs"]["pads"])
            for i in range(nd):
                cp[i] += pads[2 + i]
                cp[nd + i] += pads[r + 2 + i]
            c["attrs"]["pads"] = cp
            c["inputs"][0] = p["inputs"][0]
            dead.add(id(p))
        self.nodes = [m for m in self.nodes if id(m) not in dead]

    def const(self, n, i):
        t = n["inputs"][i] if i < len(n["inputs"]) else ""
        if not t:
            return None
        if t in self.dynamic:
            raise ConvertError("onnx2mm: node '%s' (%s): input %d ('%s') must be a constant for "
                               "libmm (it is computed from the input)" % (n["name"], n["op"],
                                                                         i, t))
        return self.consts[t]

    def rewrite_attrs(self, n):
        op, a = n["op"], n["attrs"]
        ins = n["inputs"]
        x_shape = self.shape(ins[0]) if ins and ins[0] else ()
        y_shape = self.shape(n["outputs"][0])
        rank = len(x_shape)
        opset = self.g["opset"]
        new = {}
        if op == "Conv":
            w = self.const(n, 1)
            nd = w.ndim - 2
            if nd not in (1, 2):
                raise ConvertError("onnx2mm: node '%s': %d-D Conv is not supported (1-D and 2-D)"
                                   % (n["name"], nd))
            kernel = list(a.get("kernel_shape", w.shape[2:]))
            strides = list(a.get("strides", [1] * nd))
            dil = list(a.get("dilations", [1] * nd))
            new = {"kernel_shape": kernel, "strides": strides,
                   "pads": mmgraph_ref._auto_pads(a, x_shape, kernel, strides, dil),
                   "dilations": dil, "group": int(a.get("group", 1))}
        elif op in ("MaxPool", "AveragePool"):
            kernel = list(a["kernel_shape"])
            nd = len(kernel)
            if nd not in (1, 2):
                raise ConvertError("onnx2mm: node '%s': %d-D %s is not supported"
                                   % (n["name"], nd, op))
            strides = list(a.get("strides", [1] * nd))
            dil = list(a.get("dilations", [1] * nd))
            if any(d != 1 for d in dil):
                raise ConvertError("onnx2mm: node '%s': %s with dilations %s is not supported"
                                   % (n["name"], op, dil))
            if len(n["outputs"]) > 1 and n["outputs"][1]:
                raise ConvertError("onnx2mm: node '%s': MaxPool's Indices output is not "
                                   "supported" % n["name"])
            n["outputs"] = n["outputs"][:1]
            new = {"kernel_shape": kernel, "strides": strides,
                   "pads": mmgraph_ref._auto_pads(a, x_shape, kernel, strides, dil),
                   "ceil_mode": int(a.get("ceil_mode", 0))}
            if op == "AveragePool":
                new["count_include_pad"] = int(a.get("count_include_pad", 0))
        elif op == "Gemm":
            new = {"alpha": float(a.get("alpha", 1.0)), "beta": float(a.get("beta", 1.0)),
                   "transA": int(a.get("transA", 0)), "transB": int(a.get("transB", 0))}
        elif op in ("BatchNormalization", "InstanceNormalization"):
            if a.get("training_mode", 0):
                raise ConvertError("onnx2mm: node '%s': BatchNormalization in training mode"
                                   % n["name"])
            n["outputs"] = n["outputs"][:1]
            new = {"epsilon": float(a.get("epsilon", 1e-5))}
        elif op == "LayerNormalization":
            for o in n["outputs"][1:]:
                if o and self.used(o):
                    raise ConvertError("onnx2mm: node '%s': LayerNormalization's Mean/InvStdDev"
                                       " outputs are not supported" % n["name"])
            n["outputs"] = n["outputs"][:1]
            new = {"axis": int(a.get("axis", -1)) % rank, "epsilon": float(a.get("epsilon", 1e-5))}
        elif op == "LeakyRelu":
            new = {"alpha": float(a.get("alpha", 0.01))}
        elif op == "HardSigmoid":
            new = {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))}
        elif op == "Clip":
            lo, hi = (self.const(n, 1), self.const(n, 2)) if opset >= 11 else (None, None)
            lo = a.get("min") if lo is None else float(np.asarray(lo).reshape(-1)[0])
            hi = a.get("max") if hi is None else float(np.asarray(hi).reshape(-1)[0])
            if lo is not None and math.isfinite(lo):
                new["min"] = float(lo)
            if hi is not None and math.isfinite(hi):
                new["max"] = float(hi)
            ins = ins[:1]
        elif op == "Softmax":
            axis = int(a.get("axis", -1 if opset >= 13 else 1)) % rank
            if opset < 13 and axis != rank - 1:
                raise ConvertError("onnx2mm: node '%s': opset-%d Softmax over axes %d.. "
                                   "(flattened) is not supported; export with opset 13+"
                                   % (n["name"], opset, axis))
            new = {"axis": axis}
        elif op in ("ReduceMean", "ReduceSum", "ReduceMax"):
            axes = None
            if len(ins) > 1 and ins[1]:
                axes = [int(v) for v in np.asarray(self.const(n, 1)).reshape(-1)]
            elif "axes" in a:
                axes = list(a["axes"])
            if not axes:
                if a.get("noop_with_empty_axes", 0):
                    raise ConvertError("onnx2mm: node '%s': noop_with_empty_axes" % n["name"])
                axes = list(range(rank))
            new = {"axes": sorted(v % rank for v in axes), "keepdims": int(a.get("keepdims", 1))}
            ins = ins[:1]
        elif op == "Reshape":
            new = {"shape": list(y_shape)}
            ins = ins[:1]
        elif op == "Flatten":
            ax = int(a.get("axis", 1))
            new = {"axis": ax + rank if ax < 0 else ax}
        elif op == "Transpose":
            new = {"perm": list(a.get("perm", list(range(rank))[::-1]))}
        elif op == "Squeeze":
            new = {"axes": [i for i in range(rank) if x_shape[i] == 1]}
            axes = None
            if len(ins) > 1 and ins[1]:
                axes = [int(v) % rank for v in np.asarray(self.const(n, 1)).reshape(-1)]
            elif "axes" in a:
                axes = [int(v) % rank for v in a["axes"]]
            if axes is not None:
                new = {"axes": sorted(axes)}
            ins = ins[:1]
        elif op == "Unsqueeze":
            axes = ([int(v) for v in np.asarray(self.const(n, 1)).reshape(-1)]
                    if len(ins) > 1 and ins[1] else list(a["axes"]))
            r = rank + len(axes)
            new = {"axes": sorted(v % r for v in axes)}
            ins = ins[:1]
        elif op == "Concat":
            new = {"axis": int(a["axis"]) % rank}
        elif op == "Split":
            axis = int(a.get("axis", 0)) % rank
            new = {"axis": axis, "split": [self.shape(o)[axis] for o in n["outputs"]]}
            ins = ins[:1]
        elif op == "Slice":
            if opset >= 10:
                starts = np.asarray(self.const(n, 1)).reshape(-1)
                ends = np.asarray(self.const(n, 2)).reshape(-1)
                axes = self.const(n, 3)
                steps = self.const(n, 4)
            else:
                starts, ends = a["starts"], a["ends"]
                axes, steps = a.get("axes"), None
            axes = (list(range(len(starts))) if axes is None
                    else [int(v) for v in np.asarray(axes).reshape(-1)])
            steps = [1] * len(starts) if steps is None else [int(v) for v in
                                                             np.asarray(steps).reshape(-1)]
            s2, e2 = [], []
            for s, e, ax, st in zip(starts, ends, axes, steps):
                d = x_shape[ax % rank]
                s, e = int(max(min(int(s), 2 ** 40), -2 ** 40)), int(max(min(int(e), 2 ** 40),
                                                                          -2 ** 40))
                s = s + d if s < 0 else s
                e = e + d if e < 0 else e
                if st > 0:
                    s, e = min(max(s, 0), d), min(max(e, 0), d)
                else:
                    s, e = min(max(s, -1), d - 1), min(max(e, -1), d - 1)
                    if e == -1:
                        e = -d - 1      # "before index 0", after the spec's adding of d
                s2.append(s)
                e2.append(e)
            new = {"starts": s2, "ends": e2, "axes": [v % rank for v in axes], "steps": steps}
            ins = ins[:1]
        elif op == "Gather":
            new = {"axis": int(a.get("axis", 0)) % rank}
        elif op == "Cast":
            new = {"to": int(a["to"])}
        elif op == "Gelu":
            new = {"approximate": 1 if a.get("approximate", "none") in ("tanh", 1) else 0}
        elif op == "Pow":
            e = self.const(n, 1)
            if np.size(e) != 1:
                raise ConvertError("onnx2mm: node '%s': Pow's exponent must be one number"
                                   % n["name"])
        n["attrs"] = new
        n["inputs"] = ins

    def consumers(self, name):
        return [m for m in self.nodes if name in m["inputs"]]

    def used(self, name):
        return any(name in m["inputs"] for m in self.nodes) or name == self.orig_out

    def fold_bn(self):
        by_out = {m["outputs"][0]: m for m in self.nodes}
        keep = []
        removed = set()
        for n in self.nodes:
            if n["op"] == "BatchNormalization":
                src = by_out.get(n["inputs"][0])
                if (src is not None and src["op"] == "Conv" and src["outputs"][0] != self.out
                        and len(self.consumers(src["outputs"][0])) == 1
                        and all(t not in self.dynamic for t in n["inputs"][1:5])
                        and all(t not in self.dynamic for t in src["inputs"][1:] if t)):
                    s, b, m, v = [np.asarray(self.consts[t], np.float64)
                                  for t in n["inputs"][1:5]]
                    k = s / np.sqrt(v + n["attrs"].get("epsilon", 1e-5))
                    w = np.asarray(self.consts[src["inputs"][1]], np.float64)
                    cb = (np.asarray(self.consts[src["inputs"][2]], np.float64)
                          if len(src["inputs"]) > 2 and src["inputs"][2] else 0.0)
                    wn, bn = src["name"] + ".bnfold.weight", src["name"] + ".bnfold.bias"
                    self.consts[wn] = (w * k.reshape((-1,) + (1,) * (w.ndim - 1))
                                       ).astype(np.float32)
                    self.consts[bn] = ((cb - m) * k + b).astype(np.float32)
                    src["inputs"] = [src["inputs"][0], wn, bn]
                    src["outputs"] = [n["outputs"][0]]
                    removed.add(id(n))
                    by_out[n["outputs"][0]] = src
                    continue
            keep.append(n)
        self.nodes = keep

    def fuse_gelu(self):
        """x * 0.5 * (1 + Erf(x / sqrt 2)), in the orders torch writes it."""
        by_out = {m["outputs"][0]: m for m in self.nodes}
        dead = set()
        r2 = math.sqrt(2.0)

        def single(name):
            c = self.consumers(name)
            return c[0] if len(c) == 1 and name != self.out else None

        def other(n, name):
            a, b = n["inputs"][:2]
            return b if a == name else a if b == name else None

        def cval(t):
            return None if t in self.dynamic else self.consts.get(t)

        for erf in list(self.nodes):
            if erf["op"] != "Erf":
                continue
            d = by_out.get(erf["inputs"][0])
            if d is None or single(d["outputs"][0]) is not erf:
                continue
            x = d["inputs"][0]
            if d["op"] == "Div" and _is_close(cval(d["inputs"][1]), r2):
                pass
            elif d["op"] == "Mul" and (_is_close(cval(d["inputs"][1]), 1 / r2)
                                       or _is_close(cval(d["inputs"][0]), 1 / r2)):
                x = d["inputs"][0] if _is_close(cval(d["inputs"][1]), 1 / r2) else d["inputs"][1]
            else:
                continue
            add = single(erf["outputs"][0])
            if add is None or add["op"] != "Add" or not _is_close(
                    cval(other(add, erf["outputs"][0])), 1.0):
                continue
            m1 = single(add["outputs"][0])
            if m1 is None or m1["op"] != "Mul":
                continue
            o = other(m1, add["outputs"][0])
            if o == x:                               # (x * (1 + erf)) * 0.5
                m2 = single(m1["outputs"][0])
                if m2 is None or m2["op"] != "Mul" or not _is_close(
                        cval(other(m2, m1["outputs"][0])), 0.5):
                    continue
                last, group = m2, [d, erf, add, m1, m2]
            else:                                    # (x * 0.5) * (1 + erf)
                h = by_out.get(o)
                if h is None or h["op"] != "Mul" or single(o) is not m1 or \
                        not (other(h, x) is not None and _is_close(cval(other(h, x)), 0.5)):
                    continue
                last, group = m1, [d, erf, add, h, m1]
            gelu = {"name": erf["name"] + ".gelu", "op": "Gelu", "inputs": [x],
                    "outputs": [last["outputs"][0]], "attrs": {"approximate": 0}}
            for m in group[:-1]:
                dead.add(id(m))
            idx = self.nodes.index(last)
            self.nodes[idx] = gelu
            by_out[gelu["outputs"][0]] = gelu
        self.nodes = [m for m in self.nodes if id(m) not in dead]

    def prune(self):
        need = {self.out}
        keep = []
        for n in reversed(self.nodes):
            if any(o in need for o in n["outputs"] if o):
                keep.append(n)
                need.update(t for t in n["inputs"] if t)
        self.nodes = keep[::-1]

    # ------------------------------------------------------------------
    def emit(self):
        """-> (component document, {tensor name: array}) with sanitised names."""
        used = set()
        names = {}

        def nm(t):
            if t not in names:
                names[t] = _sanitise(t, used)
            return names[t]

        for x in self.inputs:
            nm(x["onnx"]["name"])
        tensors = {}
        nodes = []
        for n in self.nodes:
            ins = []
            for t in n["inputs"]:
                if not t:
                    ins.append("")
                    continue
                if t not in self.dynamic:
                    arr = np.asarray(self.consts[t])
                    name = nm(t)
                    tensors["%s.%s" % (self.component, name)] = arr.astype(np.float32)
                ins.append(nm(t))
            # no '/' (ONNX writes "/layer/Conv"): libmm's JSON depth check reads
            # '/'...'/' as a comment, as json-glib 1.6 may
            nn = re.sub(r"[^A-Za-z0-9_.:-]", "_", n["name"]).strip("_")[:256] or n["op"]
            nodes.append({"name": nn, "op": n["op"], "inputs": ins,
                          "outputs": [nm(o) for o in n["outputs"]], "attrs": n["attrs"]})
        comp = dict(self.comp)
        comp["type"] = "graph"
        comp["inputs"] = [{"name": nm(x["onnx"]["name"]), "kind": x["kind"],
                           "shape": x["shape"]} for x in self.inputs]
        comp["output"] = nm(self.out)
        comp["pool"] = self.pool
        comp["nodes"] = nodes
        # which tensor of the ONNX graph each emitted name holds (diagnosis)
        self.source_names = {v: k for k, v in names.items()}
        return comp, tensors


def _json_safe(v):
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return _json_safe(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def pool_dim(shape, pool):
    if pool == "flatten":
        return int(np.prod(shape))
    if pool == "channel_mean":
        return int(shape[1])
    return int(shape[-1])


# --------------------------------------------------------------------------
# running the numpy reference of an emitted component

def emitted_feeds(comp, feeds_by_kind):
    return {i["name"]: feeds_by_kind[i["kind"]] for i in comp["inputs"]}


def eval_component(comp, tensors, feeds_by_kind, upto=None):
    """Values of every tensor of the emitted graph (numpy, float32 inputs)."""
    prefix = None
    values = {}
    for k, v in tensors.items():
        prefix = k.split(".", 1)[0]
        values[k.split(".", 1)[1]] = v
    del prefix
    values.update(emitted_feeds(comp, feeds_by_kind))
    nodes = comp["nodes"] if upto is None else comp["nodes"][:upto + 1]
    return mmgraph_ref.run_nodes(nodes, values, ops=mmgraph_ref.OPS)


def first_source_divergence(comp, tensors, feeds_by_kind, source):
    """The first node of the emitted graph whose output differs (past 1e-4
    relative) from the same tensor of the source ONNX graph, both evaluated in
    numpy on the probe: (node, error) or None.  @source: {"names": emitted
    name -> ONNX name, "values": the ONNX graph's values}."""
    values = {k.split(".", 1)[1]: v for k, v in tensors.items()}
    values.update(emitted_feeds(comp, feeds_by_kind))
    names, ref = source["names"], source["values"]
    for n in comp["nodes"]:
        mmgraph_ref.run_nodes([n], values, ops=mmgraph_ref.OPS)
        for o in n["outputs"]:
            src = names.get(o)
            if o and src in ref and np.shape(ref[src]) == np.shape(values[o]):
                e = rel_err(values[o], ref[src])
                if not e <= TOLERANCE:
                    return n, e
    return None


def _source_where(comp, tensors, feeds_by_kind, source):
    try:
        d = first_source_divergence(comp, tensors, feeds_by_kind, source)
    except Exception as e:  # the diagnosis must not hide the error itself
        return "; (could not locate the diverging node: %s)" % e
    if not d:
        return ""
    return "; first diverging node: '%s' (%s), relative error %.3g against the ONNX graph" % (
        d[0]["name"], d[0]["op"], d[1])


def component_vector(comp, values, feeds_by_kind):
    v = mmgraph_ref.pool_output(values[comp["output"]], comp.get("pool", "flatten"),
                                feeds_by_kind.get("attention_mask"))
    return v


def head_activation(kind, v):
    v = np.asarray(v, np.float64)
    if kind == "softmax":
        e = np.exp(v - v.max())
        return e / e.sum()
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-v))
    return v


def rel_err(got, ref):
    got = np.asarray(got, np.float64).reshape(-1)
    ref = np.asarray(ref, np.float64).reshape(-1)
    if got.shape != ref.shape:
        return float("inf")
    scale = max(np.abs(ref).max(), 1e-30)
    return float(np.abs(got - ref).max() / scale)


# --------------------------------------------------------------------------
# libmm side (tools/mm-embed)

def find_mm_embed(explicit=None):
    if explicit:
        return explicit
    if os.environ.get("MM_EMBED"):
        return os.environ["MM_EMBED"]
    root = os.path.dirname(HERE)
    cands = sorted(glob.glob(os.path.join(root, "build*", "tools", "mm-embed")),
                   key=lambda p: -os.path.getmtime(p))
    return cands[0] if cands else None


def run_mm_embed(tool, model_path, component, raw):
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "in.raw")
        out = os.path.join(tmp, "out.f32")
        with open(inp, "wb") as f:
            f.write(raw)
        r = subprocess.run([tool, model_path, component, inp, out], capture_output=True,
                           text=True, timeout=600)
        if r.returncode:
            raise ConvertError("libmm could not run %s: %s" % (model_path,
                                                             r.stderr.strip() or r.stdout))
        return np.fromfile(out, dtype="<f4")


def _truncated_doc(doc, component, tensors, k, out_name):
    comp = dict(doc["components"][component])
    comp["nodes"] = comp["nodes"][:k + 1]
    comp["output"] = out_name
    comp["pool"] = "flatten"
    if component == "head":
        comp["kind"] = "regression"
    used = {t for n in comp["nodes"] for t in n["inputs"]}
    ts = {kk: v for kk, v in tensors.items() if kk.split(".", 1)[1] in used}
    return comp, ts


def first_divergence(tool, doc, component, tensors, raw, feeds_by_kind, tmpdir):
    """Bisection over the node list: libmm on a prefix of the graph whose
    output is node k's output, against numpy.  Returns (node, error) or None."""
    comp0 = doc["components"][component]
    values = eval_component(comp0, tensors, feeds_by_kind)
    nodes = comp0["nodes"]

    def bad(k):
        out = nodes[k]["outputs"][0]
        comp, ts = _truncated_doc(doc, component, tensors, k, out)
        comp["dim"] = int(np.size(values[out]))
        if component == "head":
            comp["labels"] = ["o%d" % i for i in range(comp["dim"])]
        p = os.path.join(tmpdir, "prefix.safetensors")
        mmfile.save(p, ts, {"version": 1, "name": "prefix", "components": {component: comp}})
        try:
            got = run_mm_embed(tool, p, component, raw)
        except ConvertError:
            return None
        return rel_err(got, values[out])

    lo, hi = 0, len(nodes) - 1
    e_hi = bad(hi)
    if e_hi is None or e_hi <= TOLERANCE:
        return None
    found = (nodes[hi], e_hi)
    while lo < hi:
        mid = (lo + hi) // 2
        e = bad(mid)
        if e is not None and e > TOLERANCE:
            hi = mid
            found = (nodes[mid], e)
        else:
            lo = mid + 1
    return found


def self_check(path, doc, component, tensors, raw, feeds_by_kind, reference, tool=None,
               label="onnx2mm", source=None):
    """Runs the written file through libmm and compares with @reference (the
    component's output vector computed from the source).  On failure deletes
    @path and raises ConvertError naming the first diverging node: of libmm
    against the file's graph in numpy, or else (@source given, see
    first_source_divergence) of the file's graph against the ONNX graph.
    Returns the relative error."""
    tool = find_mm_embed(tool)
    if not tool or not os.path.exists(tool):
        _remove(path)
        raise ConvertError(
            "%s: cannot check %s: tools/mm-embed not found (build the project with meson, "
            "pass --mm-embed PATH or set MM_EMBED; --no-check skips the check); file deleted"
            % (label, path))
    try:
        got = run_mm_embed(tool, path, component, raw)
    except ConvertError as e:
        _remove(path)
        raise ConvertError("%s: self-check failed: %s; file deleted" % (label, e))
    comp = doc["components"][component]
    if component == "head":
        reference = head_activation(comp.get("kind", "softmax"), reference)
    err = rel_err(got, reference)
    if not err <= TOLERANCE:
        where = ""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                d = first_divergence(tool, doc, component, tensors, raw, feeds_by_kind, tmp)
            if d:
                where = "; first diverging node: '%s' (%s), relative error %.3g" % (
                    d[0]["name"], d[0]["op"], d[1])
            else:
                where = ("; libmm agrees with the file's graph evaluated in numpy, so the file "
                         "itself differs from the source (a conversion error)")
                if source:
                    where += _source_where(doc["components"][component], tensors,
                                           feeds_by_kind, source)
        except Exception as e:  # the diagnosis must not hide the error itself
            where = "; (could not locate the diverging node: %s)" % e
        _remove(path)
        raise ConvertError("%s: self-check FAILED: libmm's %s output differs from the source "
                           "by %.3g relative (max |diff| / max |ref|, limit %g)%s; %s deleted"
                           % (label, component, err, TOLERANCE, where, path))
    return err


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


# --------------------------------------------------------------------------
# the whole conversion

def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.rstrip("\r\n") != ""]


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f]


def component_config(component, opts):
    """The keys of the component document that define its inputs."""
    c = {}
    if component == "image":
        w, h = opts.get("size", (224, 224))
        c.update({"width": int(w), "height": int(h),
                  "mean": list(opts.get("mean") or IMAGENET_MEAN),
                  "std": list(opts.get("std") or IMAGENET_STD)})
    elif component == "audio":
        c.update(audio_defaults({k: opts.get(k) for k in (
            "sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max",
            "log_offset", "window", "hop")}))
        if opts.get("audio_input", "logmel") == "waveform":
            for k in ("n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max",
                      "log_offset"):
                c.pop(k, None)
    elif component == "text":
        vocab = opts.get("vocab")
        if not vocab:
            raise ConvertError("onnx2mm: a text component needs --vocab vocab.txt")
        for s in ("[CLS]", "[SEP]"):
            if s not in vocab:
                raise ConvertError("onnx2mm: the vocabulary has no %s" % s)
        c.update({"vocab": vocab, "lowercase": bool(opts.get("lowercase", True)),
                  "max_len": int(opts.get("max_len") or 128),
                  "pad_id": int(opts.get("pad_id") or 0)})
    elif component == "head":
        c.update({"kind": opts.get("head_kind") or "softmax"})
    else:
        raise ConvertError("onnx2mm: --component must be image, audio, text or head")
    return c


def convert(onnx_path, component, opts):
    """-> (component document, tensors, info) where info holds what the checks
    need: probe raw bytes, feeds by kind, the ONNX output on the probe."""
    g = read_onnx(onnx_path)
    comp = component_config(component, opts)
    kinds = {}
    explicit = opts.get("inputs") or {}
    for i in g["inputs"]:
        k = explicit.get(i["name"]) or _guess_kind(i["name"], component,
                                                    opts.get("audio_input", "logmel"))
        if k not in INPUT_KINDS:
            raise ConvertError("onnx2mm: input '%s': unknown kind '%s' (one of %s)"
                               % (i["name"], k, ", ".join(INPUT_KINDS)))
        kinds[i["name"]] = k
    if component == "head":
        if len(g["inputs"]) != 1:
            raise ConvertError("onnx2mm: a head takes one input")
        d = g["inputs"][0]["dims"]
        if not d or d[-1] is None:
            raise ConvertError("onnx2mm: the head's input needs a fixed last dimension")
        comp["in_dim"] = int(d[-1])
    pool = opts.get("pool") or "flatten"
    if pool not in POOLS:
        raise ConvertError("onnx2mm: --pool must be one of %s" % ", ".join(POOLS))
    if pool == "masked_mean" and "attention_mask" not in kinds.values():
        raise ConvertError("onnx2mm: --pool masked_mean needs an attention_mask input")
    cv = Converter(g, component, comp, kinds, opts.get("output"), pool).run()
    out_shape = cv.shape(cv.orig_out)
    if pool in ("first_token", "masked_mean") and len(out_shape) != 3:
        raise ConvertError("onnx2mm: --pool %s needs an output (1, L, H), not %s"
                           % (pool, out_shape))
    if pool == "channel_mean" and len(out_shape) < 2:
        raise ConvertError("onnx2mm: --pool channel_mean needs an output (1, C, ...)")
    cv.comp["dim"] = pool_dim(out_shape, pool)
    if opts.get("dim") and int(opts["dim"]) != cv.comp["dim"]:
        raise ConvertError("onnx2mm: --dim %s but the output %s pooled by %s gives %d"
                           % (opts["dim"], out_shape, pool, cv.comp["dim"]))
    cv.comp.pop("in_dim", None)
    doc, tensors = cv.emit()
    doc = _json_safe(doc)
    if component == "head":
        labels = opts.get("labels")
        if not labels or len(labels) != doc["dim"]:
            raise ConvertError("onnx2mm: a head needs --labels with %d lines" % doc["dim"])
        doc["labels"] = labels
    by_kind = {x["kind"]: cv.feeds[x["onnx"]["name"]] for x in cv.inputs}
    if "attention_mask" not in by_kind:
        by_kind["attention_mask"] = None
    reference = mmgraph_ref.pool_output(cv.orig_values[cv.orig_out], pool,
                                        by_kind.get("attention_mask"))
    info = {"raw": cv.probe_raw, "feeds": by_kind, "reference": reference,
            "source": {"names": cv.source_names, "values": cv.orig_values}}
    # the folding check: the emitted graph in numpy equals the original ONNX
    values = eval_component(doc, tensors, by_kind)
    mine = component_vector(doc, values, by_kind)
    err = rel_err(mine, reference)
    info["fold_error"] = err
    if not err <= 1e-5:
        raise ConvertError("onnx2mm: internal error: the converted graph differs from the ONNX "
                           "graph by %.3g relative in numpy (a folding bug)%s; nothing written"
                           % (err, _source_where(doc, tensors, by_kind, info["source"])))
    return doc, tensors, info


def identity_head(component, dim, labels):
    """A concat fusion of one input and a softmax head whose one layer is the
    identity: the component's output are the class scores."""
    if len(labels) != dim:
        raise ConvertError("onnx2mm: --labels has %d lines, the output has %d values"
                           % (len(labels), dim))
    comps = {"fusion": {"type": "concat", "inputs": [{"modality": component, "dim": dim}],
                        "dim": dim},
             "head": {"type": "mlp", "kind": "softmax", "layers": 1, "dim": dim,
                      "labels": labels}}
    tensors = {"head.layers.0.weight": np.eye(dim, dtype=np.float32),
               "head.layers.0.bias": np.zeros(dim, np.float32)}
    return comps, tensors


def convert_file(onnx_path, out_path, component, opts, check=True, tool=None, name=None,
                 fp16=False, log=print):
    comp, tensors, info = convert(onnx_path, component, opts)
    doc = {"version": 1, "name": name or os.path.splitext(os.path.basename(out_path))[0],
           "components": {component: comp}}
    if opts.get("labels") and component != "head":
        extra, t2 = identity_head(component, comp["dim"], opts["labels"])
        doc["components"].update(extra)
        tensors.update(t2)
    mmfile.save(out_path, tensors, doc, fp16=fp16)
    log("%s: %s graph, %d nodes, %d tensors, output %s -> dim %d (numpy check of the folding: "
        "%.2g)" % (out_path, component, len(comp["nodes"]), len(tensors), comp["output"],
                   comp["dim"], info["fold_error"]))
    if check:
        if fp16 and fp16 != "auto":
            tensors = {k: np.asarray(v, np.float16).astype(np.float32)
                       for k, v in tensors.items()}
            vals = eval_component(comp, {k: v for k, v in tensors.items()
                                         if k.startswith(component + ".")}, info["feeds"])
            info["reference"] = component_vector(comp, vals, info["feeds"])
        ctensors = {k: v for k, v in tensors.items() if k.startswith(component + ".")}
        err = self_check(out_path, doc, component, ctensors, info["raw"], info["feeds"],
                         info["reference"], tool, source=info.get("source"))
        log("%s: self-check against the ONNX graph passed: relative error %.3g" % (out_path, err))
    return doc


def parse_size(s):
    m = re.match(r"^(\d+)[xX](\d+)$", s or "")
    if not m:
        raise ConvertError("onnx2mm: --size must be WIDTHxHEIGHT, e.g. 224x224")
    return int(m.group(1)), int(m.group(2))


def parse_floats(s, n, what):
    if s is None:
        return None
    v = [float(x) for x in s.split(",")]
    if len(v) != n:
        raise ConvertError("onnx2mm: --%s needs %d comma-separated numbers" % (what, n))
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:13]))
    ap.add_argument("onnx")
    ap.add_argument("out")
    ap.add_argument("--component", required=True, choices=["image", "audio", "text", "head"])
    ap.add_argument("--name", help="model name (default: the file's base name)")
    ap.add_argument("--size", help="image: WIDTHxHEIGHT (default 224x224)")
    ap.add_argument("--mean", help="image: 3 numbers (default ImageNet's)")
    ap.add_argument("--std", help="image: 3 numbers (default ImageNet's)")
    ap.add_argument("--labels", help="class names, one a line: adds a softmax head over the "
                    "output (for a head: its labels)")
    ap.add_argument("--audio-input", default="logmel", choices=["logmel", "logmel_t",
                                                                 "waveform"])
    for k in ("sample-rate", "n-fft", "win-length", "hop-length", "n-mels", "window", "hop"):
        ap.add_argument("--" + k, type=int)
    for k in ("f-min", "f-max", "log-offset"):
        ap.add_argument("--" + k, type=float)
    ap.add_argument("--vocab", help="text: WordPiece vocab.txt")
    ap.add_argument("--max-len", type=int, help="text: tokens incl. [CLS]/[SEP] (default 128)")
    ap.add_argument("--cased", action="store_true", help="text: no lower-casing")
    ap.add_argument("--pad-id", type=int)
    ap.add_argument("--inputs", help="NAME=KIND,... kinds of the ONNX inputs (%s)"
                    % ", ".join(INPUT_KINDS))
    ap.add_argument("--head-kind", choices=["softmax", "sigmoid", "regression"])
    ap.add_argument("--pool", choices=POOLS, help="how the output becomes the vector")
    ap.add_argument("--dim", type=int, help="expected output dimension (checked)")
    ap.add_argument("--output", help="ONNX output to use (default: the first)")
    ap.add_argument("--fp16", action="store_true", help="store weights as F16")
    ap.add_argument("--mm-embed", help="path of tools/mm-embed for the self-check")
    ap.add_argument("--no-check", action="store_true", help="skip the libmm self-check")
    a = ap.parse_args(argv)
    try:
        opts = {"audio_input": a.audio_input, "max_len": a.max_len, "pad_id": a.pad_id,
                "lowercase": not a.cased, "head_kind": a.head_kind, "pool": a.pool,
                "dim": a.dim, "output": a.output}
        for k in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "window", "hop",
                  "f_min", "f_max", "log_offset"):
            opts[k] = getattr(a, k)
        if a.component == "image":
            opts["size"] = parse_size(a.size or "224x224")
            opts["mean"] = parse_floats(a.mean, 3, "mean")
            opts["std"] = parse_floats(a.std, 3, "std")
        if a.vocab:
            opts["vocab"] = read_vocab(a.vocab)
        if a.labels:
            opts["labels"] = read_lines(a.labels)
        if a.inputs:
            opts["inputs"] = dict(p.split("=", 1) for p in a.inputs.split(","))
        convert_file(a.onnx, a.out, a.component, opts, check=not a.no_check, tool=a.mm_embed,
                     name=a.name, fp16=a.fp16)
    except (ConvertError, OSError) as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

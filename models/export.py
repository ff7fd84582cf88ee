#!/usr/bin/python3
"""Bring your own PyTorch model: state_dict + a small config -> libmm model file.

As a library:

    import export
    export.export("my.safetensors", {
        "image": (torchvision_resnet18, {"width": 224, "height": 224}),
        "text":  (bert_module, {"type": "bert", "vocab": vocab, "pooling": "cls"}),
    }, name="mine")

Each component is (module or state_dict, config).  The config needs only what
the weights cannot tell (input size, normalisation, vocabulary, labels...):
widths, blocks, hidden sizes, layer counts and dims are read from the tensor
shapes, and every tensor name and shape is checked against the architecture
(models/FORMAT.md) before anything is written.  A wrong architecture or an
unknown layer name is an error naming it.

From the command line:

    /usr/bin/python3 models/export.py resnet18 OUT.safetensors   (torchvision layout)
    /usr/bin/python3 models/export.py bert OUT.safetensors       (BERT-style encoder)
    /usr/bin/python3 models/export.py config CONFIG.json OUT.safetensors

CONFIG.json: {"name": "...", "components": {"image": {"state_dict": "w.pt",
"prefix": "backbone.", ...config...}, ...}}; the state_dict files are
torch.save()d dicts (or whole modules), "prefix" selects and strips a part of
them.  The examples use random weights (no pretrained weights exist offline);
load yours with `module.load_state_dict(torch.load(...))` before exporting.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class ExportError(Exception):
    pass


def _need(module, package):
    try:
        return __import__(module)
    except ImportError:
        raise ExportError("export: Python module '%s' is missing; install it with "
                          "`apt-get install -y %s` and run with /usr/bin/python3"
                          % (module, package))


np = _need("numpy", "python3-numpy")
import mmfile  # noqa: E402
import onnx2mm  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
BN = ("weight", "bias", "running_mean", "running_var")


# --------------------------------------------------------------------------
# state dicts

def to_numpy_state(obj):
    """module or state_dict -> {name: float32 numpy}; num_batches_tracked and
    BERT's position_ids / token_type_ids buffers are dropped."""
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    out = {}
    for k, v in obj.items():
        if k.endswith("num_batches_tracked") or k.endswith("position_ids") \
                or k.endswith("embeddings.token_type_ids"):
            continue
        if hasattr(v, "detach"):
            v = v.detach().cpu().float().numpy()
        out[k] = np.asarray(v, dtype=np.float32)
    return out


def shape(sd, name, comp):
    if name not in sd:
        raise ExportError("export: %s: tensor '%s' is missing" % (comp, name))
    return tuple(sd[name].shape)


def check_names(comp, arch, sd, expected):
    """expected: {name: shape tuple (None = any size on that axis)}."""
    unknown = sorted(set(sd) - set(expected))
    if unknown:
        raise ExportError(
            "export: %s: unknown layer name(s) for a %s: %s (expected names like %s)"
            % (comp, arch, ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else ""),
               ", ".join(sorted(expected)[:4])))
    missing = sorted(set(expected) - set(sd))
    if missing:
        raise ExportError("export: %s: %s is missing tensor(s): %s"
                          % (comp, arch, ", ".join(missing[:8])))
    for name, want in expected.items():
        got = sd[name].shape
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
            raise ExportError("export: %s: tensor '%s' has shape %s, a %s with this "
                              "configuration needs %s" % (comp, name, tuple(got), arch,
                                                          tuple(want)))


# --------------------------------------------------------------------------
# architectures: read the sizes from the weights, build the expected names

def resnet_config(sd, cfg):
    comp = "image"
    if "conv1.weight" not in sd or not any(k.startswith("layer1.") for k in sd):
        raise ExportError("export: image: architecture not supported by the resnet family; use "
                          "type graph (no conv1.weight/layer1.*; tensors like %s)"
                          % ", ".join(sorted(sd)[:3]))
    if any(re.match(r"layer\d+\.\d+\.conv3\.", k) for k in sd):
        raise ExportError("export: image: wrong architecture: this ResNet has bottleneck "
                          "blocks (conv3, as resnet50/101/152); libmm's resnet supports basic "
                          "blocks only (resnet18/34 layout)")
    w1 = shape(sd, "conv1.weight", comp)
    if len(w1) != 4 or w1[1] != 3:
        raise ExportError("export: image: conv1.weight %s is not a 3-channel stem conv" % (w1,))
    if w1[2:] != (7, 7) and "stem_stride" not in cfg:
        # a CIFAR-style stem (3x3, stride 1, no max-pool) cannot be told from
        # a state_dict: silently using stride 2 + max-pool computed garbage
        raise ExportError("export: image: conv1 is %dx%d, not the 7x7 stem: its stride and "
                          "max-pool cannot be read from a state_dict; pass the module itself, "
                          "or stem_stride and stem_maxpool in the config" % w1[2:])
    stages = sorted({int(m.group(1)) for k in sd for m in [re.match(r"layer(\d+)\.", k)] if m})
    if stages != list(range(1, len(stages) + 1)) or not stages:
        raise ExportError("export: image: expected layer1..layerN stages, found %s" % stages)
    widths, blocks = [], []
    for s in stages:
        nb = len({int(m.group(1)) for k in sd
                  for m in [re.match(r"layer%d\.(\d+)\." % s, k)] if m})
        widths.append(shape(sd, "layer%d.0.conv1.weight" % s, comp)[0])
        blocks.append(nb)
    has_fc = "fc.weight" in sd
    out = {"type": "resnet", "width": 224, "height": 224, "mean": IMAGENET_MEAN,
           "std": IMAGENET_STD, "stem_kernel": w1[2], "stem_stride": 2, "stem_maxpool": True,
           "widths": widths, "blocks": blocks,
           "dim": shape(sd, "fc.weight", comp)[0] if has_fc else widths[-1]}
    out.update(cfg)
    exp = {"conv1.weight": (widths[0], 3, out["stem_kernel"], out["stem_kernel"])}
    exp.update({"bn1." + p: (widths[0],) for p in BN})
    c_in = widths[0]
    for s, (w, nb) in enumerate(zip(widths, blocks)):
        for b in range(nb):
            stride = 2 if (s > 0 and b == 0) else 1
            p = "layer%d.%d." % (s + 1, b)
            exp[p + "conv1.weight"] = (w, c_in, 3, 3)
            exp[p + "conv2.weight"] = (w, w, 3, 3)
            for n in ("bn1.", "bn2."):
                exp.update({p + n + q: (w,) for q in BN})
            if stride != 1 or c_in != w:
                exp[p + "downsample.0.weight"] = (w, c_in, 1, 1)
                exp.update({p + "downsample.1." + q: (w,) for q in BN})
            c_in = w
    if has_fc:
        exp["fc.weight"] = (out["dim"], c_in)
        exp["fc.bias"] = (out["dim"],)
    return out, exp


def bert_config(sd, cfg):
    comp = "text"
    if "vocab" not in cfg:
        raise ExportError("export: text: a bert config needs \"vocab\" (the lines of vocab.txt)")
    for k in list(sd):
        if k.startswith("bert."):
            raise ExportError("export: text: tensor names start with 'bert.' (a model with a "
                              "task head?); pass prefix \"bert.\" to export the encoder")
    v, h = shape(sd, "embeddings.word_embeddings.weight", comp)
    if v != len(cfg["vocab"]):
        raise ExportError("export: text: the vocabulary has %d entries but "
                          "embeddings.word_embeddings.weight has %d rows" % (len(cfg["vocab"]), v))
    layers = len({int(m.group(1)) for k in sd
                  for m in [re.match(r"encoder\.layer\.(\d+)\.", k)] if m})
    inter = shape(sd, "encoder.layer.0.intermediate.dense.weight", comp)[0]
    p = shape(sd, "embeddings.position_embeddings.weight", comp)[0]
    t = shape(sd, "embeddings.token_type_embeddings.weight", comp)[0]
    pooling = cfg.get("pooling", "pooler" if "pooler.dense.weight" in sd else "cls")
    has_proj = "proj.weight" in sd
    out = {"type": "bert", "hidden": h, "layers": layers, "heads": cfg.get("heads", max(1, h // 64)),
           "intermediate": inter, "max_len": min(p, 512), "lowercase": True,
           "pooling": pooling, "layer_norm_eps": 1e-12,
           "dim": shape(sd, "proj.weight", comp)[0] if has_proj else h}
    out.update(cfg)
    if h % out["heads"]:
        raise ExportError("export: text: hidden size %d is not a multiple of heads %d"
                          % (h, out["heads"]))
    exp = {"embeddings.word_embeddings.weight": (v, h),
           "embeddings.position_embeddings.weight": (p, h),
           "embeddings.token_type_embeddings.weight": (t, h),
           "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,)}
    for i in range(layers):
        q = "encoder.layer.%d." % i
        for n in ("query", "key", "value"):
            exp[q + "attention.self.%s.weight" % n] = (h, h)
            exp[q + "attention.self.%s.bias" % n] = (h,)
        exp[q + "attention.output.dense.weight"] = (h, h)
        exp[q + "attention.output.dense.bias"] = (h,)
        exp[q + "attention.output.LayerNorm.weight"] = (h,)
        exp[q + "attention.output.LayerNorm.bias"] = (h,)
        exp[q + "intermediate.dense.weight"] = (inter, h)
        exp[q + "intermediate.dense.bias"] = (inter,)
        exp[q + "output.dense.weight"] = (h, inter)
        exp[q + "output.dense.bias"] = (h,)
        exp[q + "output.LayerNorm.weight"] = (h,)
        exp[q + "output.LayerNorm.bias"] = (h,)
    if "pooler.dense.weight" in sd:
        if pooling != "pooler":      # an unused pooler is dropped, not an error
            sd.pop("pooler.dense.weight")
            sd.pop("pooler.dense.bias", None)
        else:
            exp["pooler.dense.weight"] = (h, h)
            exp["pooler.dense.bias"] = (h,)
    if has_proj:
        exp["proj.weight"] = (out["dim"], h)
        if "proj.bias" in sd:
            exp["proj.bias"] = (out["dim"],)
    return out, exp


def wordvec_config(sd, cfg):
    v, e = shape(sd, "embeddings.weight", "text")
    if "vocab" not in cfg or len(cfg["vocab"]) != v:
        raise ExportError("export: text: a wordvec config needs \"vocab\" with %d words" % v)
    out = {"type": "wordvec", "lowercase": True,
           "dim": shape(sd, "proj.weight", "text")[0] if "proj.weight" in sd else e}
    out.update(cfg)
    exp = {"embeddings.weight": (v, e)}
    if "proj.weight" in sd:
        exp["proj.weight"] = (out["dim"], e)
        if "proj.bias" in sd:
            exp["proj.bias"] = (out["dim"],)
    return out, exp


def cnn1d_config(sd, cfg):
    comp = "audio"
    n = len({int(m.group(1)) for k in sd for m in [re.match(r"convs\.(\d+)\.", k)] if m})
    if n == 0:
        raise ExportError("export: audio: a cnn1d needs convs.0.weight ...")
    if "convs" not in cfg:
        raise ExportError("export: audio: a cnn1d config needs \"convs\" (kernel, stride, "
                          "padding, groups of each conv)")
    if len(cfg["convs"]) != n:
        raise ExportError("export: audio: config lists %d convs, the weights have %d"
                          % (len(cfg["convs"]), n))
    out = {"type": "cnn1d", "sample_rate": 16000, "n_fft": 400, "win_length": 400,
           "hop_length": 160, "f_min": 0.0, "f_max": 8000.0, "log_offset": 1e-6,
           "window": 16000, "hop": 8000,
           "n_mels": shape(sd, "convs.0.weight", comp)[1] * cfg["convs"][0].get("groups", 1),
           "dim": shape(sd, "fc.weight", comp)[0]}
    out.update(cfg)
    convs = []
    exp = {}
    c_in = out["n_mels"]
    for i in range(n):
        w = shape(sd, "convs.%d.weight" % i, comp)
        c = {"out": w[0], "kernel": w[2], "stride": 1, "padding": 0, "groups": 1}
        c.update(cfg["convs"][i])
        convs.append(c)
        exp["convs.%d.weight" % i] = (c["out"], c_in // c["groups"], c["kernel"])
        if "convs.%d.bias" % i in sd:
            exp["convs.%d.bias" % i] = (c["out"],)
        if "bns.%d.weight" % i in sd:
            exp.update({"bns.%d.%s" % (i, q): (c["out"],) for q in BN})
        c_in = c["out"]
    out["convs"] = convs
    exp["fc.weight"] = (out["dim"], c_in)
    exp["fc.bias"] = (out["dim"],)
    return out, exp


def concat_config(sd, cfg):
    if "inputs" not in cfg:
        raise ExportError("export: fusion: a concat config needs \"inputs\"")
    out = {"type": "concat", "append_mask": False}
    out.update(cfg)
    out["dim"] = sum(i["dim"] for i in out["inputs"]) + (
        len(out["inputs"]) if out["append_mask"] else 0)
    return out, {}


def attention_config(sd, cfg):
    if "inputs" not in cfg:
        raise ExportError("export: fusion: an attention config needs \"inputs\"")
    d = shape(sd, "query", "fusion")[1]
    out = {"type": "attention", "d_model": d, "heads": cfg.get("heads", 1), "dim": d}
    out.update(cfg)
    m = len(out["inputs"])
    exp = {"modality_embed": (m, d), "query": (1, d), "attn.in_proj_weight": (3 * d, d),
           "attn.in_proj_bias": (3 * d,), "attn.out_proj.weight": (d, d),
           "attn.out_proj.bias": (d,), "norm.weight": (d,), "norm.bias": (d,)}
    for i, inp in enumerate(out["inputs"]):
        exp["proj.%d.weight" % i] = (d, inp["dim"])
        exp["proj.%d.bias" % i] = (d,)
    return out, exp


def mlp_config(sd, cfg):
    n = len({int(m.group(1)) for k in sd for m in [re.match(r"layers\.(\d+)\.", k)] if m})
    if n == 0:
        raise ExportError("export: head: an mlp needs layers.0.weight ...")
    dim = shape(sd, "layers.%d.weight" % (n - 1), "head")[0]
    if "labels" not in cfg or len(cfg["labels"]) != dim:
        raise ExportError("export: head: the config needs \"labels\" with %d names" % dim)
    out = {"type": "mlp", "kind": "softmax", "layers": n, "dim": dim}
    out.update(cfg)
    exp = {}
    d_in = shape(sd, "layers.0.weight", "head")[1]
    for i in range(n):
        w = shape(sd, "layers.%d.weight" % i, "head")
        exp["layers.%d.weight" % i] = (w[0], d_in)
        exp["layers.%d.bias" % i] = (w[0],)
        d_in = w[0]
    return out, exp


def numeric_config(sd, cfg):
    """Numeric encoder: per-feature normalisation (buffers `mean`, `std`, or
    "mean"/"std" lists in the config) then an MLP `layers.i` to `dim`."""
    sd_keys = set(sd)
    for key in ("mean", "std"):
        if key in cfg:
            if key in sd_keys:
                raise ExportError("export: numeric: '%s' is both a tensor and in the config" % key)
            sd[key] = np.asarray(cfg.pop(key), dtype=np.float32).reshape(-1)
    n = len({int(m.group(1)) for k in sd for m in [re.match(r"layers\.(\d+)\.", k)] if m})
    if n == 0:
        raise ExportError("export: numeric: an mlp needs layers.0.weight ...")
    n_in = shape(sd, "layers.0.weight", "numeric")[1]
    for key in ("mean", "std"):
        v = sd.get(key)
        if v is None:
            raise ExportError("export: numeric: needs per-feature '%s' (a buffer or a config list "
                              "of %d numbers)" % (key, n_in))
        if not np.all(np.isfinite(v)) or (key == "std" and not np.all(v > 0)):
            raise ExportError("export: numeric: every '%s' must be finite%s"
                              % (key, " and > 0" if key == "std" else ""))
    if cfg.get("nan", "mean") not in ("mean", "zero", "error"):
        raise ExportError("export: numeric: \"nan\" must be mean, zero or error")
    if "names" in cfg and len(cfg["names"]) != n_in:
        raise ExportError("export: numeric: %d names for %d features" % (len(cfg["names"]), n_in))
    out = {"type": "mlp", "features": n_in, "layers": n,
           "dim": shape(sd, "layers.%d.weight" % (n - 1), "numeric")[0],
           "nan": "mean", "modality": "sensor"}
    out.update(cfg)
    exp = {"mean": (n_in,), "std": (n_in,)}
    d_in = n_in
    for i in range(n):
        w = shape(sd, "layers.%d.weight" % i, "numeric")
        exp["layers.%d.weight" % i] = (w[0], d_in)
        exp["layers.%d.bias" % i] = (w[0],)
        d_in = w[0]
    return out, exp


ARCHITECTURES = {
    "image": {"resnet": resnet_config},
    "text": {"wordvec": wordvec_config, "bert": bert_config},
    "audio": {"cnn1d": cnn1d_config},
    "fusion": {"concat": concat_config, "attention": attention_config},
    "head": {"mlp": mlp_config},
    "numeric": {"mlp": numeric_config},
}
GRAPH_COMPONENTS = ("image", "audio", "text", "head")
DEFAULT_TYPE = {"image": "resnet", "text": "wordvec", "audio": "cnn1d", "fusion": "concat",
                "head": "mlp", "numeric": "mlp"}


def export(path, components, name="model", fp16=False, extra_metadata=None, check=True,
           tool=None):
    """components: {"image"|"text"|"audio"|"fusion"|"head"|"numeric": (module or state_dict
    or None, config dict)}.  Type "graph" takes any nn.Module (models/export_graph.py).
    With check, the written file is run through libmm (tools/mm-embed) and
    compared with PyTorch (graph components, resnets given as modules); a
    difference over 1e-4 relative deletes it and raises ExportError.
    Returns the "mm" document written."""
    tensors, doc = {}, {"version": 1, "name": name, "components": {}}
    checks = []
    for comp, (obj, cfg) in components.items():
        if comp not in ARCHITECTURES:
            raise ExportError("export: unknown component '%s' (one of %s)"
                              % (comp, ", ".join(ARCHITECTURES)))
        cfg = dict(cfg)
        arch = cfg.pop("type", DEFAULT_TYPE[comp])
        if arch not in ARCHITECTURES[comp] and not (arch == "graph" and comp in GRAPH_COMPONENTS):
            raise ExportError("export: %s: unsupported architecture '%s' (libmm has %s)"
                              % (comp, arch, ", ".join(ARCHITECTURES[comp])))
        if arch == "graph":
            import export_graph
            try:
                conf, ts, info = export_graph.module_to_component(obj, comp, cfg)
            except onnx2mm.ConvertError as e:
                raise ExportError(str(e))
            doc["components"][comp] = conf
            tensors.update(ts)
            checks.append((comp, ts, info, info["torch_reference"]))
            continue
        if arch == "resnet" and hasattr(obj, "conv1") and hasattr(obj, "maxpool"):
            cfg = dict(resnet_stem_of(obj), **cfg)
        prefix = cfg.pop("prefix", "")
        sd = to_numpy_state(obj) if obj is not None else {}
        if prefix:
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            if not sd:
                raise ExportError("export: %s: no tensor starts with prefix '%s'" % (comp, prefix))
        conf, expected = ARCHITECTURES[comp][arch](sd, cfg)
        if arch == "resnet" and "fc.weight" not in sd:
            conf["dim"] = conf["widths"][-1]
        check_names(comp, arch, sd, expected)
        doc["components"][comp] = conf
        tensors.update({comp + "." + k: sd[k] for k in expected})
        if arch == "resnet" and hasattr(obj, "conv1") and hasattr(obj, "forward"):
            checks.append((comp, None, None, obj))
    mmfile.save(path, tensors, doc, fp16=fp16, extra_metadata=extra_metadata)
    if check:
        self_check(path, doc, tensors, checks, fp16, tool)
    return doc


def resnet_stem_of(module):
    """The stem of a torchvision-style ResNet module: kernel, stride, max-pool.
    A stem libmm's resnet family cannot run is refused."""
    torch = _need("torch", "python3-torch")
    c = module.conv1
    k, s, p = c.kernel_size[0], c.stride[0], c.padding[0]
    if c.kernel_size[0] != c.kernel_size[1] or c.stride[0] != c.stride[1] or p != k // 2 \
            or c.padding[0] != c.padding[1] or c.dilation != (1, 1) or c.groups != 1:
        raise ExportError("export: image: this stem (conv1 kernel %s stride %s padding %s) is "
                          "not supported by the resnet family; use type graph"
                          % (c.kernel_size, c.stride, c.padding))
    mp = module.maxpool
    if isinstance(mp, torch.nn.Identity):
        pool = False
    elif isinstance(mp, torch.nn.MaxPool2d) and mp.kernel_size in (3, (3, 3)) \
            and mp.stride in (2, (2, 2)) and mp.padding in (1, (1, 1)):
        pool = True
    else:
        raise ExportError("export: image: this stem's max-pool (%s) is not supported by the "
                          "resnet family; use type graph" % mp)
    return {"stem_kernel": k, "stem_stride": s, "stem_maxpool": pool}


def self_check(path, doc, tensors, checks, fp16, tool):
    """Runs the written file through libmm (tools/mm-embed) and compares each
    graph component (and each resnet given as a module) with PyTorch on a
    probe input; deletes the file and raises ExportError past 1e-4."""
    for comp, ts, info, ref in checks:
        if info is None:      # a family resnet given as a module
            torch = _need("torch", "python3-torch")
            tool = onnx2mm.find_mm_embed(tool)
            if not tool:
                print("export: %s not self-checked: tools/mm-embed not built" % comp,
                      file=sys.stderr)
                continue
            conf = doc["components"][comp]
            probe = {"inputs": [{"kind": "image", "shape": [1, 3, conf["height"],
                                                            conf["width"]]}]}
            probe.update(conf)
            raw, feeds = onnx2mm.make_probe(probe)
            with torch.no_grad():
                if fp16 and fp16 != "auto":     # auto keeps values exactly
                    ref = _f16_copy(ref)
                y = ref.eval()(torch.from_numpy(feeds["image"])).numpy().reshape(-1)
            ts, info = {}, {"raw": raw, "feeds": feeds}
        else:
            y = ref
            if fp16 and fp16 != "auto":
                ts = {k: np.asarray(v, np.float16).astype(np.float32) for k, v in ts.items()}
                vals = onnx2mm.eval_component(doc["components"][comp], ts, info["feeds"])
                y = onnx2mm.component_vector(doc["components"][comp], vals, info["feeds"])
        try:
            onnx2mm.self_check(path, doc, comp, ts, info["raw"], info["feeds"], y, tool,
                               label="export", source=info.get("source"))
        except onnx2mm.ConvertError as e:
            raise ExportError(str(e))


def _f16_copy(module):
    import copy
    m = copy.deepcopy(module)
    for p in m.state_dict().values():
        if p.dtype.is_floating_point:
            p.copy_(p.half().float())
    return m


# --------------------------------------------------------------------------
# examples

def example_resnet18(out):
    torch = _need("torch", "python3-torch")
    _need("torchvision", "python3-torchvision")
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=1000).eval()
    labels = ["class%03d" % i for i in range(1000)]
    # the backbone with its fc (1000-d embedding) as the image encoder, and
    # an identity-like softmax head, so mm-classify/imageenc can run it alone
    eye = np.eye(1000, dtype=np.float32)
    doc = export(out, {
        "image": (net, {"width": 224, "height": 224}),
        "fusion": (None, {"type": "concat", "inputs": [{"modality": "image", "dim": 1000}]}),
        "head": ({"layers.0.weight": eye, "layers.0.bias": np.zeros(1000, np.float32)},
                 {"labels": labels}),
    }, name="resnet18", fp16=True)
    return doc


class _BertSelf:
    pass


def bert_module(vocab_size, hidden=64, layers=2, heads=4, intermediate=128, positions=64):
    """A BERT-style encoder with Hugging Face BertModel tensor names."""
    torch = _need("torch", "python3-torch")
    nn = torch.nn

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(vocab_size, hidden)
            self.position_embeddings = nn.Embedding(positions, hidden)
            self.token_type_embeddings = nn.Embedding(2, hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

        def forward(self, ids):
            pos = torch.arange(ids.shape[1])[None]
            return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos)
                                  + self.token_type_embeddings(torch.zeros_like(ids)))

    class Dense(nn.Module):
        def __init__(self, d_in, d_out, ln):
            super().__init__()
            self.dense = nn.Linear(d_in, d_out)
            if ln:
                self.LayerNorm = nn.LayerNorm(d_out, eps=1e-12)

    class SelfAttn(nn.Module):
        def __init__(self):
            super().__init__()
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.self = SelfAttn()
            self.output = Dense(hidden, hidden, True)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = Attention()
            self.intermediate = Dense(hidden, intermediate, False)
            self.output = Dense(intermediate, hidden, True)

        def forward(self, x):
            b, n, _ = x.shape
            a = self.attention.self
            split = lambda t: t.view(b, n, heads, hidden // heads).transpose(1, 2)  # noqa: E731
            q, k, v = split(a.query(x)), split(a.key(x)), split(a.value(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / (hidden // heads) ** 0.5, -1) @ v
            att = att.transpose(1, 2).reshape(b, n, hidden)
            o = self.attention.output
            x = o.LayerNorm(x + o.dense(att))
            f = torch.nn.functional.gelu(self.intermediate.dense(x))
            return self.output.LayerNorm(x + self.output.dense(f))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.ModuleList([Layer() for _ in range(layers)])

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()
            self.pooler = Dense(hidden, hidden, False)

        def forward(self, ids):
            x = self.embeddings(ids)
            for layer in self.encoder.layer:
                x = layer(x)
            return x

    return Bert()


def example_vocab():
    """A small WordPiece vocabulary: specials, letters, '##' letters, common words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    punct = list(".,!?'\"-:;()")
    words = ("the a an and of to in is it on with for this that dog cat car bird music news "
             "weather sport sports game play plays playing red blue green kangaroo truck").split()
    pieces = ["##" + x for x in letters] + ["##s", "##ing", "##ed"]
    return specials + punct + letters + pieces + words


def example_bert(out):
    torch = _need("torch", "python3-torch")
    torch.manual_seed(0)
    vocab = example_vocab()
    net = bert_module(len(vocab)).eval()
    return export(out, {"text": (net, {"type": "bert", "vocab": vocab, "heads": 4,
                                       "max_len": 64, "pooling": "cls"})},
                  name="bert-example")


def from_config(config_path, out):
    torch = _need("torch", "python3-torch")
    with open(config_path) as f:
        conf = json.load(f)
    base = os.path.dirname(os.path.abspath(config_path))
    comps = {}
    for comp, cfg in conf.get("components", {}).items():
        cfg = dict(cfg)
        sd = None
        if "state_dict" in cfg:
            p = os.path.join(base, cfg.pop("state_dict"))
            try:
                sd = torch.load(p, map_location="cpu")
            except (OSError, RuntimeError) as e:
                raise ExportError("export: %s: cannot read %s: %s" % (comp, p, e))
        comps[comp] = (sd, cfg)
    return export(out, comps, name=conf.get("name", "model"), fp16=conf.get("fp16", False))


def from_module(a):
    torch = _need("torch", "python3-torch")
    import importlib
    if os.path.exists(a.module):
        net = torch.load(a.module, map_location="cpu")
    else:
        mod, _, fn = a.module.rpartition(".")
        try:
            net = getattr(importlib.import_module(mod), fn)()
        except (ImportError, AttributeError, ValueError) as e:
            raise ExportError("export: cannot make a module from '%s': %s" % (a.module, e))
    if a.weights:
        net.load_state_dict(torch.load(a.weights, map_location="cpu"))
    cfg = {"type": "graph"}
    if a.component == "image":
        w, h = onnx2mm.parse_size(a.size)
        cfg.update({"width": w, "height": h})
    if a.config:
        with open(a.config) as f:
            cfg.update(json.load(f))
    comps = {a.component: (net.eval(), cfg)}
    name = os.path.splitext(os.path.basename(a.out))[0]
    if a.labels:
        labels = onnx2mm.read_lines(a.labels)
        comps["fusion"] = (None, {"type": "concat", "inputs": [{"modality": a.component,
                                                                "dim": len(labels)}]})
        comps["head"] = ({"layers.0.weight": np.eye(len(labels), dtype=np.float32),
                          "layers.0.bias": np.zeros(len(labels), np.float32)},
                         {"labels": labels})
    return export(a.out, comps, name=name, fp16=a.fp16, check=not a.no_check)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("resnet18", help="torchvision resnet18 (random weights)").add_argument("out")
    sub.add_parser("bert", help="BERT-style encoder (random weights)").add_argument("out")
    c = sub.add_parser("config", help="components from a JSON config")
    c.add_argument("config")
    c.add_argument("out")
    g = sub.add_parser("module", help="any nn.Module as a graph component: a constructor "
                       "such as torchvision.models.mobilenet_v2, or a torch.save()d module")
    g.add_argument("module")
    g.add_argument("out")
    g.add_argument("--component", default="image", choices=list(GRAPH_COMPONENTS))
    g.add_argument("--size", default="224x224", help="image: WIDTHxHEIGHT")
    g.add_argument("--weights", help="a state_dict file to load into the module")
    g.add_argument("--labels", help="class names, one a line: adds a softmax head")
    g.add_argument("--config", help="JSON of further component keys (FORMAT.md)")
    g.add_argument("--fp16", action="store_true")
    g.add_argument("--no-check", action="store_true", help="skip the libmm self-check")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "module":
            doc = from_module(a)
        elif a.cmd == "resnet18":
            doc = example_resnet18(a.out)
        elif a.cmd == "bert":
            doc = example_bert(a.out)
        else:
            doc = from_config(a.config, a.out)
    except (ExportError, onnx2mm.ConvertError) as e:
        print(e, file=sys.stderr)
        return 1
    print("%s: %s" % (a.out, ", ".join("%s %s" % (k, v["type"])
                                         for k, v in doc["components"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

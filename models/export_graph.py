"""The PyTorch route of models/export.py: any nn.Module as a `graph` component.

    export.export("m.safetensors", {"image": (torchvision.models.mobilenet_v2(),
                  {"type": "graph", "width": 224, "height": 224})})

The module is exported to ONNX (torch.onnx.export, opset 17) into a temporary
file and converted by models/onnx2mm.py; after the file is written,
export.py runs it through libmm and compares with the module itself in
PyTorch on the probe input (self_check).

Config keys (besides those of the input kind, see models/FORMAT.md):
  inputs: kinds of the forward() arguments in order (default by component:
          image -> ["image"], audio -> ["logmel"], text -> ["token_ids"],
          head -> ["features"]); logmel_rank 3 or 4 for a logmel input;
  pool, output_index (which output of a tuple, default 0), labels, in_dim (head).
"""
import os
import tempfile

import numpy as np

import onnx2mm

DEFAULT_INPUTS = {"image": ["image"], "audio": ["logmel"], "text": ["token_ids"],
                  "head": ["features"]}


class _Pick:
    pass


def _opts(component, cfg):
    o = dict(cfg)
    if component == "image":
        o["size"] = (cfg.get("width", 224), cfg.get("height", 224))
    if "input" in cfg:
        o["audio_input"] = cfg["input"]
    elif component == "audio":
        o["audio_input"] = DEFAULT_INPUTS["audio"][0] if "inputs" not in cfg else cfg["inputs"][0]
    if component == "head":
        o["head_kind"] = cfg.get("kind", "softmax")
    return o


def module_to_component(module, component, cfg, tmpdir=None):
    """-> (component doc, tensors, info); info also holds "torch_reference",
    the module's own output on the probe, pooled as the component says."""
    import torch
    kinds = list(cfg.get("inputs") or DEFAULT_INPUTS[component])
    opts = _opts(component, {k: v for k, v in cfg.items() if k != "inputs"})
    comp = onnx2mm.component_config(component, opts)
    if component == "head":
        comp["in_dim"] = int(cfg["in_dim"])
    dummies = []
    for k in kinds:
        rank = int(cfg.get("logmel_rank", 3)) if k in ("logmel", "logmel_t") else 0
        shape = onnx2mm._input_shape(k, rank, comp)
        if k in ("token_ids", "attention_mask", "token_type_ids"):
            dummies.append(torch.ones(shape, dtype=torch.long))
        else:
            dummies.append(torch.zeros(shape))
    idx = int(cfg.get("output_index", 0))

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *xs):
            y = self.m(*xs)
            if isinstance(y, (tuple, list)):
                y = y[idx]
            elif isinstance(y, dict):
                y = list(y.values())[idx]
            return y

    net = Wrapped(module.eval()).eval()
    names = ["in_%s" % k for k in kinds]
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        path = os.path.join(tmp, "module.onnx")
        # not under no_grad: nn.MultiheadAttention's fast path has no ONNX export
        torch.onnx.export(net, tuple(dummies), path, opset_version=17, input_names=names,
                          output_names=["output"], do_constant_folding=True)
        opts["inputs"] = dict(zip(names, kinds))
        doc, tensors, info = onnx2mm.convert(path, component, opts)
    # the module itself on the probe
    xs = []
    for k in kinds:
        v = info["feeds"][k]
        xs.append(torch.from_numpy(v.astype(np.int64) if k in (
            "token_ids", "attention_mask", "token_type_ids") else v.copy()))
    with torch.no_grad():
        y = net(*xs).detach().float().numpy()
    info["torch_reference"] = onnx2mm.mmgraph_ref.pool_output(
        y, doc["pool"], info["feeds"].get("attention_mask"))
    err = onnx2mm.rel_err(info["reference"], info["torch_reference"])
    if not err <= onnx2mm.TOLERANCE:
        raise onnx2mm.ConvertError(
            "export: %s: the ONNX export of the module differs from the module by %.3g "
            "relative on the probe input (torch.onnx.export lost something)" % (component, err))
    return doc, tensors, info

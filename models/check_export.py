#!/usr/bin/python3
"""Check the bring-your-own-model path end to end: export with models/export.py,
run the file with the C tool, compare with the same network in PyTorch.

    /usr/bin/python3 models/check_export.py build-models/tools/mm-classify

1. torchvision resnet18 (random weights, seed 0) exported as the image
   encoder with an identity softmax head over its 1000 outputs: the C tool's
   top-3 labels and probabilities on a picture must equal torchvision's
   (same F16-rounded weights, same bilinear resize and normalisation).
2. The BERT-style example (Hugging Face BertModel names) with an identity
   softmax head over the [CLS] vector: same comparison on a sentence, with
   the reference computed by the module in export.py.
3. Errors: a resnet50 state_dict (bottleneck blocks), an unknown layer name
   and an unknown architecture must be refused with a message naming them.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export  # noqa: E402
import mmtorch  # noqa: E402


def f16(module):
    with torch.no_grad():
        for p in module.state_dict().values():
            if p.dtype == torch.float32:
                p.copy_(p.half().float())
    return module


def run_tool(tool, model, *args):
    r = subprocess.run([tool, "-m", model, "--top", "3"] + list(args), capture_output=True,
                       text=True)
    if r.returncode:
        raise SystemExit("mm-classify failed: " + r.stderr)
    return [(l.split("\t")[0], float(l.split("\t")[1]))
            for l in r.stdout.splitlines()[1:]]


def compare(name, c_top, probs, labels):
    order = np.argsort(-probs)[:3]
    ref = [(labels[i], float(probs[i])) for i in order]
    ok = all(a[0] == b[0] and abs(a[1] - b[1]) <= 2e-4 for a, b in zip(c_top, ref))
    print("%s: C %s\n%s  PyTorch %s -> %s" % (name, c_top, " " * len(name), ref,
                                                "OK" if ok else "MISMATCH"))
    return ok


def identity_head(dim, labels):
    return {"fusion": (None, {"type": "concat", "inputs": [{"modality": "image", "dim": dim}]}),
            "head": ({"layers.0.weight": np.eye(dim, dtype=np.float32),
                      "layers.0.bias": np.zeros(dim, np.float32)}, {"labels": labels})}


def check_resnet18(tool, tmp):
    import torchvision
    from PIL import Image
    torch.manual_seed(0)
    net = f16(torchvision.models.resnet18(weights=None).eval())
    labels = ["class%03d" % i for i in range(1000)]
    path = os.path.join(tmp, "r18.safetensors")
    comps = {"image": (net, {"width": 224, "height": 224})}
    comps.update(identity_head(1000, labels))
    export.export(path, comps, name="r18", fp16=True)
    pic = os.path.join(HERE, "..", "tools", "testdata", "kangaroo.png")
    px = mmtorch.composite_on_white(np.asarray(Image.open(pic).convert("RGBA")))
    x = mmtorch.image_input(torch.from_numpy(px.copy())[None], 224, 224,
                            export.IMAGENET_MEAN, export.IMAGENET_STD)
    with torch.no_grad():
        probs = torch.softmax(net(x), 1)[0].numpy()
    return compare("resnet18", run_tool(tool, path, "--image", pic), probs, labels)


def check_bert(tool, tmp):
    torch.manual_seed(0)
    vocab = export.example_vocab()
    net = f16(export.bert_module(len(vocab)).eval())
    labels = ["h%02d" % i for i in range(64)]
    path = os.path.join(tmp, "bert.safetensors")
    comps = {"text": (net, {"type": "bert", "vocab": vocab, "heads": 4, "max_len": 64,
                            "pooling": "cls"})}
    comps.update(identity_head(64, labels))
    comps["fusion"][1]["inputs"][0]["modality"] = "text"
    export.export(path, comps, name="bert", fp16=True)
    text = "The red kangaroo plays music"
    # WordPiece by hand for this sentence (every word is in the vocabulary)
    index = {w: i for i, w in enumerate(vocab)}
    ids = [index["[CLS]"]] + [index[w] for w in text.lower().split()] + [index["[SEP]"]]
    with torch.no_grad():
        cls = net(torch.tensor([ids]))[0, 0]
        probs = torch.softmax(cls, 0).numpy()
    return compare("bert", run_tool(tool, path, "--text", text), probs, labels)


def check_errors(tmp):
    import torchvision
    ok = True
    cases = [
        ({"image": (torchvision.models.resnet50(), {})}, "bottleneck"),
        ({"image": (dict(torchvision.models.resnet18().state_dict(),
                         **{"layer2.0.se.weight": torch.zeros(4)}), {})}, "layer2.0.se.weight"),
        ({"image": (torchvision.models.resnet18(), {"type": "vit"})}, "unsupported architecture 'vit'"),
        ({"head": ({"layers.0.weight": np.zeros((3, 4), np.float32),
                    "layers.0.bias": np.zeros(3, np.float32)}, {"labels": ["a", "b"]})},
         "\"labels\" with 3 names"),
    ]
    for comps, want in cases:
        try:
            export.export(os.path.join(tmp, "bad.safetensors"), comps)
            print("error case %r: accepted -> MISMATCH" % want)
            ok = False
        except export.ExportError as e:
            good = want in str(e)
            print("error case: %s -> %s" % (e, "OK" if good else "MISMATCH"))
            ok = ok and good
    return ok


def main():
    tool = sys.argv[1] if len(sys.argv) > 1 else "build-models/tools/mm-classify"
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ok = check_resnet18(tool, tmp)
        ok = check_bert(tool, tmp) and ok
        ok = check_errors(tmp) and ok
    print("all export checks passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

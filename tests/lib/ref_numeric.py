#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""PyTorch references for tests/lib/test-numeric.c (the numeric encoder).

    /usr/bin/python3 tests/lib/ref_numeric.py        # writes tests/fixtures/encoders/numeric-*

Each case is a model file written by models/export.py from a torch module
(so the export path is tested too) and NAME-io.safetensors with inputs
("io.input<i>", NaN = missing) and PyTorch's outputs ("io.expected<i>"),
computed in float64 and rounded to float32.

  numeric-mean    5 features, MLP 5-16-8, "nan": "mean" (the default)
  numeric-zero    3 features with names, one linear 3-4, "nan": "zero"
  numeric-error   4 features, MLP 4-6-6-2, "nan": "error" (inputs without NaN)
  bad-numeric     a std of 0 (the loader must refuse it, naming the feature)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import export  # noqa: E402
import mmfile  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "encoders")

torch.manual_seed(20251)


class NumericEncoder(nn.Module):
    """What a user trains: normalise with the training set's statistics,
    fill missing values, MLP."""

    def __init__(self, sizes, mean, std, nan):
        super().__init__()
        self.nan = nan
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, v):
        missing = torch.isnan(v)
        if missing.any():
            assert self.nan != "error"
            fill = self.mean if self.nan == "mean" else torch.zeros_like(self.mean)
            v = torch.where(missing, fill, v)
        x = (v - self.mean) / self.std
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x


def case(name, sizes, nan, n_nan, names=None):
    f = sizes[0]
    mean = (np.random.RandomState(f).randn(f) * 10).tolist()
    std = (np.random.RandomState(f + 1).uniform(0.1, 5.0, f)).tolist()
    net = NumericEncoder(sizes, mean, std, nan).eval()
    cfg = {"nan": nan}
    if names:
        cfg["names"] = names
    export.export(os.path.join(OUT, name + ".safetensors"), {"numeric": (net, cfg)}, name=name)
    net = net.double()
    io = {}
    rs = np.random.RandomState(len(name))
    for i in range(4):
        v = np.array(mean) + rs.randn(f) * np.array(std) * 2
        for k in rs.choice(f, size=min(n_nan * (i % 2), f), replace=False):
            v[k] = np.nan   # every other input has missing values
        with torch.no_grad():
            y = net(torch.tensor(v, dtype=torch.float64))
        io["input%d" % i] = v
        io["expected%d" % i] = y.numpy()
    mmfile.save(os.path.join(OUT, name + "-io.safetensors"),
                {"io." + k: np.asarray(v, dtype=np.float32) for k, v in io.items()},
                {"version": 1, "name": name + "-io", "components": {}})
    return net


def main():
    case("numeric-mean", [5, 16, 8], "mean", 2)
    case("numeric-zero", [3, 4], "zero", 1, names=["speed", "temperature", "level"])
    case("numeric-error", [4, 6, 6, 2], "error", 0)
    tensors, doc = mmfile.load(os.path.join(OUT, "numeric-mean.safetensors"))
    tensors["numeric.std"][3] = 0.0
    doc["name"] = "bad-numeric"
    mmfile.save(os.path.join(OUT, "bad-numeric.safetensors"), tensors, doc)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""PyTorch reference outputs for tests/lib/test-ops.c.

Run with Debian's python3-torch:  /usr/bin/python3 tests/lib/ref_ops.py

Writes tests/fixtures/ops/: one raw little-endian float32 file per array,
<case>.<array>.f32, and manifest.json listing each case: the op, its integer
parameters and the shape of each array.  The test reads the manifest, so a
case added here is tested without touching the C file (as long as its op is
known there).  References are computed in float64 from the float32 inputs
that are stored, then rounded to float32.
"""
import json
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "ops")

torch.manual_seed(1234)
cases = []


def rand(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def add(name, op, params, arrays):
    os.makedirs(OUT, exist_ok=True)
    entry = {"name": name, "op": op, "params": params, "arrays": {}}
    for key, t in arrays.items():
        t = t.detach().to(torch.float32).contiguous()
        t.numpy().astype("<f4").tofile(os.path.join(OUT, f"{name}.{key}.f32"))
        entry["arrays"][key] = list(t.shape)
    cases.append(entry)


def d(t):
    return t.double()


def conv2d(name, c_in, h, w, c_out, k, stride, pad, groups):
    x = rand(c_in, h, w)
    wt = rand(c_out, c_in // groups, k, k, scale=0.3)
    b = rand(c_out)
    y = F.conv2d(d(x)[None], d(wt), d(b), stride=stride, padding=pad, groups=groups)[0]
    add(name, "conv2d", dict(c_in=c_in, h=h, w=w, c_out=c_out, k=k, stride=stride, pad=pad,
                             groups=groups), dict(x=x, w=wt, b=b, y=y))


def conv1d(name, c_in, t, c_out, k, stride, pad, groups):
    x = rand(c_in, t)
    wt = rand(c_out, c_in // groups, k, scale=0.3)
    b = rand(c_out)
    y = F.conv1d(d(x)[None], d(wt), d(b), stride=stride, padding=pad, groups=groups)[0]
    add(name, "conv1d", dict(c_in=c_in, t=t, c_out=c_out, k=k, stride=stride, pad=pad,
                             groups=groups), dict(x=x, w=wt, b=b, y=y))


def pool(name, op, c, h, w, k, stride, pad):
    x = rand(c, h, w)
    if op == "maxpool2d":
        y = F.max_pool2d(d(x)[None], k, stride, pad)[0]
    else:
        y = F.avg_pool2d(d(x)[None], k, stride, pad, count_include_pad=True)[0]
    add(name, op, dict(c=c, h=h, w=w, k=k, stride=stride, pad=pad), dict(x=x, y=y))


conv2d("conv2d_s2p1", 3, 11, 9, 8, 3, 2, 1, 1)
conv2d("conv2d_g2", 4, 8, 7, 6, 3, 1, 1, 2)
conv2d("conv2d_dw", 5, 9, 10, 5, 3, 2, 1, 5)
conv2d("conv2d_dw_s1", 4, 7, 6, 4, 3, 1, 1, 4)
conv2d("conv2d_dw_mult", 3, 6, 5, 6, 3, 1, 1, 3)
conv2d("conv2d_1x1", 6, 5, 7, 4, 1, 1, 0, 1)
conv2d("conv2d_k7s2p3", 3, 13, 12, 4, 7, 2, 3, 1)
conv2d("conv2d_bigk", 2, 3, 4, 3, 5, 1, 2, 1)      # kernel larger than the input
conv2d("conv2d_1px", 3, 1, 1, 2, 3, 1, 1, 1)       # one pixel, padded

conv1d("conv1d_s2p1", 6, 17, 4, 3, 2, 1, 1)
conv1d("conv1d_g3", 6, 15, 9, 5, 1, 2, 3)
conv1d("conv1d_dw", 4, 13, 4, 3, 1, 1, 4)
conv1d("conv1d_1x1", 5, 9, 3, 1, 1, 0, 1)
conv1d("conv1d_bigk", 2, 3, 3, 7, 1, 3, 1)
conv1d("conv1d_t1", 3, 1, 2, 3, 2, 1, 1)

pool("maxpool_3s2p1", "maxpool2d", 3, 11, 10, 3, 2, 1)
pool("maxpool_2s2", "maxpool2d", 2, 7, 9, 2, 2, 0)
pool("avgpool_3s2p1", "avgpool2d", 3, 9, 8, 3, 2, 1)
pool("avgpool_2s2", "avgpool2d", 2, 7, 5, 2, 2, 0)
pool("avgpool_3s1p1", "avgpool2d", 2, 1, 2, 3, 1, 1)

# layernorm: one row with a large mean to catch one-pass variance
x = rand(5, 24)
x[2] += 300.0
g, b = rand(24), rand(24)
y = F.layer_norm(d(x), (24,), d(g), d(b), eps=1e-5)
add("layernorm", "layernorm", dict(n=5, d=24, eps=1e-5), dict(x=x, gamma=g, beta=b, y=y))
x = rand(1, 7)
y = F.layer_norm(d(x), (7,), eps=1e-5)
add("layernorm_plain", "layernorm", dict(n=1, d=7, eps=1e-5), dict(x=x, y=y))

x = torch.cat([torch.linspace(-8, 8, 161), rand(140, scale=3.0)]).float()
add("gelu", "gelu", dict(n=x.numel()), dict(x=x, y=F.gelu(d(x))))
add("silu", "silu", dict(n=x.numel()), dict(x=x, y=F.silu(d(x))))
add("tanh", "tanh", dict(n=x.numel()), dict(x=x, y=torch.tanh(d(x))))
add("sigmoid", "sigmoid", dict(n=x.numel()), dict(x=x, y=torch.sigmoid(d(x))))

x = rand(4, 37, scale=4.0)
x[1] += 1000.0
add("softmax", "softmax", dict(n=4, d=37), dict(x=x, y=torch.softmax(d(x), dim=-1)))


def mha(name, e, heads, n_q, n_k, masked):
    m = torch.nn.MultiheadAttention(e, heads, batch_first=True)
    with torch.no_grad():                 # non-zero biases so they are tested
        m.in_proj_bias.normal_()
        m.out_proj.bias.normal_()
    m = m.double().eval()
    query, key, value = rand(n_q, e), rand(n_k, e), rand(n_k, e)
    mask = torch.zeros(n_k, dtype=torch.bool)    # True = ignore (PyTorch)
    for j in masked:
        mask[j] = True
    with torch.no_grad():
        y, _ = m(d(query)[None], d(key)[None], d(value)[None], key_padding_mask=mask[None],
                 need_weights=False)
    add(name, "mha", dict(e=e, heads=heads, n_q=n_q, n_k=n_k),
        dict(query=query, key=key, value=value, key_valid=(~mask).float(),
             in_w=m.in_proj_weight, in_b=m.in_proj_bias, out_w=m.out_proj.weight,
             out_b=m.out_proj.bias, y=y[0]))


mha("mha_masked", 16, 4, 5, 7, [1, 4, 6])
mha("mha_self", 12, 2, 6, 6, [])
mha("mha_q1", 8, 1, 1, 3, [0])

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"generator": "tests/lib/ref_ops.py", "torch": torch.__version__, "cases": cases},
              f, indent=1)
print(f"{len(cases)} cases written to {os.path.normpath(OUT)}")

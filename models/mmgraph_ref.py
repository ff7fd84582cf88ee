"""numpy reference evaluator of ONNX-style operator graphs (numpy only).

Used by models/onnx2mm.py in two ways:
- on the ORIGINAL ONNX graph (integers, shapes, every op torch.onnx.export
  writes that the converter folds away), to fold constants and to compute the
  reference output of the self-check;
- on the EMITTED `graph` component of a model file (models/FORMAT.md), to
  check that folding and rewriting kept the network's meaning, and to find
  the first node where libmm diverges.

    import mmgraph_ref
    outs = mmgraph_ref.run_nodes(nodes, values)    # nodes: [{op, inputs, outputs, attrs}]

Each operator is one function, (inputs, attrs) -> list of outputs, written
from the ONNX operator specification (opset 17, inference).  Attributes are
plain Python values (ints, floats, lists, numpy arrays for tensors).
"""
import math

import numpy as np

# ONNX TensorProto data types
ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
               7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
               13: np.uint64}


class RefError(Exception):
    pass


def _a(attrs, name, default=None):
    v = attrs.get(name, default)
    return v


def _inp(inputs, i):
    return inputs[i] if i < len(inputs) and inputs[i] is not None else None


def _ints(x):
    return [int(v) for v in np.asarray(x).reshape(-1)]


# --------------------------------------------------------------------------
# convolution and pooling

def _pad_spatial(x, pads, value):
    nd = len(pads) // 2
    if not any(pads):
        return x
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    neg = [(max(0, -b), max(0, -e)) for b, e in widths]
    widths = [(max(0, b), max(0, e)) for b, e in widths]
    x = np.pad(x, widths, constant_values=value)
    if any(b or e for b, e in neg):
        sl = tuple(slice(b, x.shape[i] - e) for i, (b, e) in enumerate(neg))
        x = x[sl]
    return x


def _windows(x, kernel, strides, dilations):
    """x (N, C, *S) padded -> view (N, C, *out, *kernel)"""
    nd = len(kernel)
    out = [(x.shape[2 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1
           for i in range(nd)]
    if any(o <= 0 for o in out):
        raise RefError("output size %s <= 0" % (out,))
    st = x.strides
    shape = x.shape[:2] + tuple(out) + tuple(kernel)
    strides = st[:2] + tuple(st[2 + i] * strides[i] for i in range(nd)) + \
        tuple(st[2 + i] * dilations[i] for i in range(nd))
    return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)


def _auto_pads(attrs, x_shape, kernel, strides, dilations):
    nd = len(kernel)
    ap = attrs.get("auto_pad", "NOTSET")
    if isinstance(ap, bytes):
        ap = ap.decode()
    if ap in ("NOTSET", "", None):
        return list(attrs.get("pads", [0] * (2 * nd)))
    if ap == "VALID":
        return [0] * (2 * nd)
    pads = [0] * (2 * nd)
    for i in range(nd):
        n = x_shape[2 + i]
        out = -(-n // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - n)
        small, big = total // 2, total - total // 2
        pads[i], pads[i + nd] = (small, big) if ap == "SAME_UPPER" else (big, small)
    return pads


def op_conv(inputs, attrs):
    x, w, b = inputs[0], inputs[1], _inp(inputs, 2)
    nd = w.ndim - 2
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    strides = list(attrs.get("strides", [1] * nd))
    dil = list(attrs.get("dilations", [1] * nd))
    group = int(attrs.get("group", 1))
    pads = _auto_pads(attrs, x.shape, kernel, strides, dil)
    xp = _pad_spatial(x.astype(np.float64), pads, 0.0)
    win = _windows(xp, kernel, strides, dil)  # N, C, *out, *k
    n, c = x.shape[:2]
    m = w.shape[0]
    if c % group or m % group or w.shape[1] * group != c:
        raise RefError("Conv: %d channels, weight %s, group %d" % (c, w.shape, group))
    cg, mg = c // group, m // group
    outs = []
    wd = w.astype(np.float64)
    sp = tuple(range(2, 2 + nd))
    for g in range(group):
        wi = win[:, g * cg:(g + 1) * cg]          # N, cg, *out, *k
        wg = wd[g * mg:(g + 1) * mg]               # mg, cg, *k
        # sum over cg and kernel axes
        y = np.tensordot(wi, wg, axes=([1] + [2 + nd + i for i in range(nd)],
                                       [1] + [2 + i for i in range(nd)]))  # N, *out, mg
        outs.append(np.moveaxis(y, -1, 1))
    y = np.concatenate(outs, axis=1) if group > 1 else outs[0]
    del sp
    if b is not None:
        y = y + b.astype(np.float64).reshape((1, m) + (1,) * nd)
    return [y.astype(np.float32)]


def _pool_pads(attrs, x, kernel, strides, dil):
    nd = len(kernel)
    pads = _auto_pads(attrs, x.shape, kernel, strides, dil)
    if not attrs.get("ceil_mode", 0):
        return pads, pads
    # ceil mode: extra padding at the end so that the last window fits, but a
    # window may not start in the end padding (PyTorch's rule)
    extra = list(pads)
    for i in range(nd):
        n = x.shape[2 + i] + pads[i] + pads[i + nd]
        eff = (kernel[i] - 1) * dil[i] + 1
        out = -(-(n - eff) // strides[i]) + 1
        if (out - 1) * strides[i] >= x.shape[2 + i] + pads[i]:
            out -= 1
        need = (out - 1) * strides[i] + eff - n
        extra[i + nd] = pads[i + nd] + max(0, need)
    return pads, extra


def op_maxpool(inputs, attrs):
    x = inputs[0]
    kernel = list(attrs["kernel_shape"])
    nd = len(kernel)
    strides = list(attrs.get("strides", [1] * nd))
    dil = list(attrs.get("dilations", [1] * nd))
    _, pads = _pool_pads(attrs, x, kernel, strides, dil)
    xp = _pad_spatial(x, pads, -np.inf)
    win = _windows(xp, kernel, strides, dil)
    return [win.max(axis=tuple(range(-nd, 0))).astype(np.float32)]


def op_averagepool(inputs, attrs):
    x = inputs[0]
    kernel = list(attrs["kernel_shape"])
    nd = len(kernel)
    strides = list(attrs.get("strides", [1] * nd))
    dil = [1] * nd
    pads0, pads = _pool_pads(attrs, x, kernel, strides, dil)
    xp = _pad_spatial(x.astype(np.float64), pads, 0.0)
    win = _windows(xp, kernel, strides, dil)
    s = win.sum(axis=tuple(range(-nd, 0)))
    # divisor: real elements, or (count_include_pad) elements inside the
    # declared pads (not the ceil-mode overhang)
    ones = np.ones((1, 1) + x.shape[2:])
    if attrs.get("count_include_pad", 0):
        ones = _pad_spatial(ones, pads0, 1.0)
        extra = [0] * nd + [pads[i + nd] - pads0[i + nd] for i in range(nd)]
        ones = _pad_spatial(ones, extra, 0.0)
    else:
        ones = _pad_spatial(ones, pads, 0.0)
    cnt = _windows(ones, kernel, strides, dil).sum(axis=tuple(range(-nd, 0)))
    return [(s / cnt).astype(np.float32)]


def op_globalaveragepool(inputs, attrs):
    x = inputs[0]
    return [x.astype(np.float64).mean(axis=tuple(range(2, x.ndim)), keepdims=True)
            .astype(np.float32)]


def op_globalmaxpool(inputs, attrs):
    x = inputs[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


# --------------------------------------------------------------------------
# linear algebra, normalisation

def op_gemm(inputs, attrs):
    a, b, c = inputs[0].astype(np.float64), inputs[1].astype(np.float64), _inp(inputs, 2)
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    y = float(attrs.get("alpha", 1.0)) * (a @ b)
    if c is not None:
        y = y + float(attrs.get("beta", 1.0)) * c.astype(np.float64)
    return [y.astype(np.float32)]


def op_matmul(inputs, attrs):
    a, b = inputs
    if a.dtype.kind == "f":
        return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)]
    return [np.matmul(a, b)]


def op_batchnormalization(inputs, attrs):
    x, s, b, m, v = [t.astype(np.float64) for t in inputs[:5]]
    eps = float(attrs.get("epsilon", 1e-5))
    sh = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - m.reshape(sh)) / np.sqrt(v.reshape(sh) + eps) * s.reshape(sh) + b.reshape(sh)
    return [y.astype(np.float32)]


def op_instancenormalization(inputs, attrs):
    x, s, b = [t.astype(np.float64) for t in inputs[:3]]
    eps = float(attrs.get("epsilon", 1e-5))
    ax = tuple(range(2, x.ndim))
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
    sh = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mu) / np.sqrt(var + eps) * s.reshape(sh) + b.reshape(sh)
    return [y.astype(np.float32)]


def op_layernormalization(inputs, attrs):
    x = inputs[0].astype(np.float64)
    s = inputs[1].astype(np.float64)
    b = _inp(inputs, 2)
    axis = int(attrs.get("axis", -1))
    if axis < 0:
        axis += x.ndim
    eps = float(attrs.get("epsilon", 1e-5))
    ax = tuple(range(axis, x.ndim))
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * s
    if b is not None:
        y = y + b.astype(np.float64)
    return [y.astype(np.float32)]


# --------------------------------------------------------------------------
# element-wise

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _f(fn):
    def op(inputs, attrs):
        return [fn(inputs[0].astype(np.float64), attrs).astype(np.float32)]
    return op


def op_clip(inputs, attrs):
    x = inputs[0]
    lo = _inp(inputs, 1)
    hi = _inp(inputs, 2)
    lo = attrs.get("min", -np.inf) if lo is None else lo
    hi = attrs.get("max", np.inf) if hi is None else hi
    return [np.minimum(np.maximum(x, np.asarray(lo, x.dtype)), np.asarray(hi, x.dtype))]


def op_softmax(inputs, attrs):
    x = inputs[0].astype(np.float64)
    axis = int(attrs.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [(e / e.sum(axis=axis, keepdims=True)).astype(np.float32)]


def _gelu(x, attrs):
    if attrs.get("approximate", 0) in ("tanh", b"tanh", 1):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _binary(fn):
    def op(inputs, attrs):
        a, b = inputs[0], inputs[1]
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            dt = np.result_type(a.dtype, b.dtype)
            r = fn(a.astype(np.float64), b.astype(np.float64))
            return [r.astype(dt if dt != np.float64 else np.float32)]
        return [np.asarray(fn(a, b)).astype(np.result_type(a.dtype, b.dtype))]
    return op


def _int_div(a, b):
    q = np.trunc(a / b) if a.dtype.kind == "f" else np.fix(np.true_divide(a, b))
    return q


def op_div(inputs, attrs):
    a, b = inputs
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return [np.fix(np.true_divide(a, b)).astype(np.result_type(a.dtype, b.dtype))]
    return _binary(np.divide)(inputs, attrs)


def op_pow(inputs, attrs):
    a, b = inputs
    r = np.power(a.astype(np.float64), b.astype(np.float64))
    return [r.astype(a.dtype if a.dtype.kind == "f" else a.dtype)]


def op_where(inputs, attrs):
    c, a, b = inputs
    return [np.where(c.astype(bool), a, b)]


def op_cast(inputs, attrs):
    to = ONNX_DTYPES.get(int(attrs["to"]))
    if to is None:
        raise RefError("Cast to data type %s" % attrs["to"])
    x = inputs[0]
    if x.dtype.kind == "f" and np.dtype(to).kind in "iu":
        x = np.trunc(x)
    return [x.astype(to)]


# --------------------------------------------------------------------------
# shapes and data movement (opset-13+ inputs or the older attributes)

def _axes(inputs, attrs, idx):
    t = _inp(inputs, idx)
    if t is not None:
        return _ints(t)
    a = attrs.get("axes")
    return None if a is None else [int(v) for v in a]


def op_reshape(inputs, attrs):
    x = inputs[0]
    shape = _ints(inputs[1]) if _inp(inputs, 1) is not None else list(attrs["shape"])
    allowzero = attrs.get("allowzero", 0)
    out = [x.shape[i] if (d == 0 and not allowzero) else d for i, d in enumerate(shape)]
    return [x.reshape(out)]


def op_flatten(inputs, attrs):
    x = inputs[0]
    axis = int(attrs.get("axis", 1))
    if axis < 0:
        axis += x.ndim
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def op_transpose(inputs, attrs):
    x = inputs[0]
    perm = attrs.get("perm")
    return [np.transpose(x, perm if perm is None else list(perm))]


def op_squeeze(inputs, attrs):
    x = inputs[0]
    axes = _axes(inputs, attrs, 1)
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(a % x.ndim for a in axes))]


def op_unsqueeze(inputs, attrs):
    x = inputs[0]
    axes = _axes(inputs, attrs, 1)
    r = x.ndim + len(axes)
    shape = list(x.shape)
    for a in sorted(a % r for a in axes):
        shape.insert(a, 1)
    return [x.reshape(shape)]


def op_concat(inputs, attrs):
    xs = [t for t in inputs if t is not None]
    return [np.concatenate(xs, axis=int(attrs["axis"]))]


def op_split(inputs, attrs):
    x = inputs[0]
    axis = int(attrs.get("axis", 0)) % x.ndim
    split = _inp(inputs, 1)
    split = _ints(split) if split is not None else attrs.get("split")
    n_out = attrs.get("_n_outputs", 1)
    if split is None:
        n = attrs.get("num_outputs", n_out)
        size = -(-x.shape[axis] // n)
        split = [min(size, x.shape[axis] - i * size) for i in range(n)]
    idx = np.cumsum(split)[:-1]
    return list(np.split(x, idx, axis=axis))


def op_slice(inputs, attrs):
    x = inputs[0]
    if len(inputs) > 1:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if _inp(inputs, 3) is not None else list(range(len(starts)))
        steps = _ints(inputs[4]) if _inp(inputs, 4) is not None else [1] * len(starts)
    else:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = list(attrs.get("steps", [1] * len(starts)))
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) % x.ndim
        n = x.shape[a]
        s, e, st = int(s), int(e), int(st)
        # clamp as the spec says (huge sentinels such as INT64_MAX)
        if s < 0:
            s += n
        if e < 0:
            e += n
        if st > 0:
            s = min(max(s, 0), n)
            e = min(max(e, 0), n)
        else:
            s = min(max(s, -1), n - 1)
            e = min(max(e, -1), n - 1)
        sl[a] = slice(s, e if e >= 0 else None, st)
    return [x[tuple(sl)]]


def op_gather(inputs, attrs):
    x, idx = inputs
    axis = int(attrs.get("axis", 0)) % x.ndim
    i = np.asarray(idx)
    if i.dtype.kind == "f":
        i = i.astype(np.int64)
    i = np.where(i < 0, i + x.shape[axis], i)
    if np.any(i < 0) or np.any(i >= x.shape[axis]):
        raise RefError("Gather index out of range")
    return [np.take(x, i, axis=axis)]


def op_reducemean(inputs, attrs):
    x = inputs[0]
    axes = _axes(inputs, attrs, 1)
    keep = bool(attrs.get("keepdims", 1))
    if axes is None or len(axes) == 0:
        if attrs.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.ndim))
    r = x.astype(np.float64).mean(axis=tuple(a % x.ndim for a in axes), keepdims=keep)
    return [np.asarray(r).astype(x.dtype)]


def _reduce(fn):
    def op(inputs, attrs):
        x = inputs[0]
        axes = _axes(inputs, attrs, 1)
        keep = bool(attrs.get("keepdims", 1))
        if axes is None or len(axes) == 0:
            if attrs.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.ndim))
        return [np.asarray(fn(x, axis=tuple(a % x.ndim for a in axes), keepdims=keep))
                .astype(x.dtype)]
    return op


def op_shape(inputs, attrs):
    s = np.array(inputs[0].shape, dtype=np.int64)
    start = attrs.get("start", 0)
    end = attrs.get("end", None)
    return [s[start:end]]


def op_constantofshape(inputs, attrs):
    v = attrs.get("value")
    v = np.zeros(1, np.float32) if v is None else np.asarray(v).reshape(-1)
    return [np.full(_ints(inputs[0]), v[0], dtype=v.dtype)]


def op_expand(inputs, attrs):
    x, shape = inputs[0], _ints(inputs[1])
    out = np.broadcast_shapes(x.shape, tuple(shape))
    return [np.broadcast_to(x, out).copy()]


def op_range(inputs, attrs):
    s, l, d = [np.asarray(t).reshape(()) for t in inputs]
    return [np.arange(s, l, d).astype(np.result_type(s.dtype, l.dtype, d.dtype))]


def op_constant(inputs, attrs):
    for k in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if k in attrs:
            v = attrs[k]
            if k == "value_float" or k == "value_floats":
                return [np.asarray(v, np.float32)]
            if k == "value_int" or k == "value_ints":
                return [np.asarray(v, np.int64)]
            return [np.asarray(v)]
    raise RefError("Constant without a value")


def op_tile(inputs, attrs):
    return [np.tile(inputs[0], _ints(inputs[1]))]


def op_pad(inputs, attrs):
    x = inputs[0]
    pads = _ints(inputs[1]) if _inp(inputs, 1) is not None else list(attrs["pads"])
    val = _inp(inputs, 2)
    val = attrs.get("value", 0.0) if val is None else np.asarray(val).reshape(-1)[0]
    mode = attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    n = x.ndim
    widths = [(pads[i], pads[i + n]) for i in range(n)]
    if min(pads) < 0:
        raise RefError("negative pads %s (cropping) are not supported" % list(pads))
    if mode in ("reflect", "edge", "wrap"):     # evaluated, so that onnx2mm can refuse them
        return [np.pad(x, widths, mode=mode)]
    if mode != "constant":
        raise RefError("Pad mode %s" % mode)
    return [np.pad(x, widths, constant_values=val)]


def op_identity(inputs, attrs):
    return [inputs[0]]


def op_dropout(inputs, attrs):
    return [inputs[0], np.ones(inputs[0].shape, bool)]


OPS = {
    "Conv": op_conv,
    "Gemm": op_gemm,
    "MatMul": op_matmul,
    "BatchNormalization": op_batchnormalization,
    "InstanceNormalization": op_instancenormalization,
    "LayerNormalization": op_layernormalization,
    "Relu": lambda i, a: [np.maximum(i[0], np.asarray(0, i[0].dtype))],
    "LeakyRelu": _f(lambda x, a: np.where(x >= 0, x, x * float(a.get("alpha", 0.01)))),
    "Clip": op_clip,
    "Sigmoid": _f(lambda x, a: 1 / (1 + np.exp(-x))),
    "HardSigmoid": _f(lambda x, a: np.clip(float(a.get("alpha", 0.2)) * x
                                           + float(a.get("beta", 0.5)), 0, 1)),
    "HardSwish": _f(lambda x, a: x * np.clip(x / 6 + 0.5, 0, 1)),
    "Tanh": _f(lambda x, a: np.tanh(x)),
    "Erf": _f(lambda x, a: _erf(x)),
    "Gelu": _f(_gelu),
    "Exp": _f(lambda x, a: np.exp(x)),
    "Sqrt": _f(lambda x, a: np.sqrt(x)),
    "Reciprocal": _f(lambda x, a: 1 / x),
    "Neg": lambda i, a: [-i[0]],
    "Pow": op_pow,
    "Softmax": op_softmax,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": op_div,
    "MaxPool": op_maxpool,
    "AveragePool": op_averagepool,
    "GlobalAveragePool": op_globalaveragepool,
    "GlobalMaxPool": op_globalmaxpool,
    "ReduceMean": op_reducemean,
    "Reshape": op_reshape,
    "Flatten": op_flatten,
    "Transpose": op_transpose,
    "Squeeze": op_squeeze,
    "Unsqueeze": op_unsqueeze,
    "Concat": op_concat,
    "Split": op_split,
    "Slice": op_slice,
    "Gather": op_gather,
    "Identity": op_identity,
    "Cast": op_cast,
    "Where": op_where,
    "Dropout": lambda i, a: [i[0]],
    "Abs": lambda i, a: [np.abs(i[0])],
    "Log": _f(lambda x, a: np.log(x)),
    "ReduceSum": _reduce(np.sum),
    "ReduceMax": _reduce(np.max),
    "Pad": op_pad,
}

# operators of the original ONNX graph that the converter only folds away
# (they must compute on constants and shapes)
FOLD_OPS = {
    "Shape": op_shape,
    "Size": lambda i, a: [np.array(i[0].size, np.int64)],
    "Constant": op_constant,
    "ConstantOfShape": op_constantofshape,
    "Expand": op_expand,
    "Range": op_range,
    "Tile": op_tile,
    "Pad": op_pad,
    "Equal": lambda i, a: [np.equal(i[0], i[1])],
    "Less": lambda i, a: [np.less(i[0], i[1])],
    "Greater": lambda i, a: [np.greater(i[0], i[1])],
    "LessOrEqual": lambda i, a: [np.less_equal(i[0], i[1])],
    "GreaterOrEqual": lambda i, a: [np.greater_equal(i[0], i[1])],
    "Not": lambda i, a: [np.logical_not(i[0])],
    "And": lambda i, a: [np.logical_and(i[0], i[1])],
    "Or": lambda i, a: [np.logical_or(i[0], i[1])],
    "Floor": lambda i, a: [np.floor(i[0])],
    "Ceil": lambda i, a: [np.ceil(i[0])],
    "Min": lambda i, a: [np.minimum.reduce([t for t in i if t is not None])],
    "Max": lambda i, a: [np.maximum.reduce([t for t in i if t is not None])],
    "Mod": lambda i, a: [np.fmod(i[0], i[1]) if a.get("fmod") else np.mod(i[0], i[1])],
    "ReduceProd": _reduce(np.prod),
    "ReduceMin": _reduce(np.min),
    "Sin": _f(lambda x, a: np.sin(x)),
    "Cos": _f(lambda x, a: np.cos(x)),
}

ALL_OPS = dict(FOLD_OPS)
ALL_OPS.update(OPS)


def run_node(op, inputs, attrs, n_outputs=1, ops=ALL_OPS):
    fn = ops.get(op)
    if fn is None:
        raise RefError("no reference for operator %s" % op)
    if op == "Split":
        attrs = dict(attrs, _n_outputs=n_outputs)
    outs = fn(inputs, attrs)
    return outs[:n_outputs]


def run_nodes(nodes, values, ops=ALL_OPS, keep=None, stop_after=None):
    """nodes: [{"name", "op", "inputs", "outputs", "attrs"}]; values: dict of
    name -> numpy array (graph inputs and weights), extended in place with
    every node output.  Returns values.  keep/stop_after are unused hooks for
    callers that want only a prefix of the graph (stop_after: a node index)."""
    for k, n in enumerate(nodes):
        ins = []
        for name in n["inputs"]:
            if name == "":
                ins.append(None)
            elif name in values:
                ins.append(values[name])
            else:
                raise RefError("node %s (%s): input '%s' is not defined"
                               % (n.get("name", k), n["op"], name))
        try:
            outs = run_node(n["op"], ins, n.get("attrs", {}), len(n["outputs"]), ops)
        except RefError as e:
            raise RefError("node %s (%s): %s" % (n.get("name", k), n["op"], e))
        for name, v in zip(n["outputs"], outs):
            if name:
                values[name] = np.asarray(v)
        if stop_after is not None and k >= stop_after:
            break
    return values


def pool_output(y, pool, mask=None):
    """The component's output vector from the output tensor, as FORMAT.md's
    `pool` says."""
    y = np.asarray(y, dtype=np.float64)
    if pool == "flatten":
        return y.reshape(-1)
    if pool == "channel_mean":
        return y.reshape(y.shape[0], y.shape[1], -1).mean(axis=2)[0]
    if pool == "first_token":
        return y[0, 0]
    if pool == "masked_mean":
        m = np.asarray(mask).reshape(-1) != 0
        return y[0][m].mean(axis=0)
    raise RefError("unknown pool '%s'" % pool)

"""Write and read libmm model files (safetensors + "mm" metadata), numpy only.

    from mmfile import save
    save("model.safetensors", {"text.embeddings.weight": array, ...}, mm_document)

See models/FORMAT.md for the metadata schema.  Tensors are written in the
order given, 8-byte aligned, as F32 (or F16 when fp16=True).
"""
import json
import struct

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}


def save(path, tensors, mm, fp16=False, extra_metadata=None):
    header = {}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        a = np.asarray(arr, dtype=np.float16 if fp16 and fp16 != "auto" else np.float32)
        if fp16 == "auto":      # F16 for the tensors whose values F16 holds exactly
            h = a.astype(np.float16)
            if np.array_equal(h.astype(np.float32), a):
                a = h
        # ascontiguousarray makes a 0-d array 1-d: keep scalars' shape []
        a = np.ascontiguousarray(a).reshape(a.shape)
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        pad = (-len(data)) % 8
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    # strict JSON only (libmm refuses the rest): a NaN or Inf in the
    # document is an error here, not the non-standard token NaN in the file
    try:
        meta = {"mm": json.dumps(mm, allow_nan=False)}
    except ValueError as e:
        raise ValueError("%s: the mm document holds NaN or Infinity, which JSON cannot "
                         "represent (%s)" % (path, e)) from None
    if extra_metadata:
        meta.update(extra_metadata)
    header["__metadata__"] = meta
    hbytes = json.dumps(header, allow_nan=False).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (tensors as float32 numpy arrays, mm document)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        dt = {"F32": "<f4", "F16": "<f2"}[t["dtype"]]
        out[name] = np.frombuffer(raw[base + b:base + e], dtype=dt).reshape(t["shape"]).astype(np.float32)
    return out, json.loads(meta["mm"])

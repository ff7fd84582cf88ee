#!/usr/bin/python3
"""libmm's graph component vs PyTorch at its best, and vs the resnet family path.

    /usr/bin/python3 tests/bench/bench_graph.py [--build DIR] [--rounds R] [--repeats N]
        [--models resnet18,resnet50,mobilenet_v2,efficientnet_b0] [--coretype unset|NAME]
        [--bf16]

In one run, one thread, 224x224, random weights with randomised batch-norm
statistics, eval():
- each torchvision model is exported to ONNX and converted with
  models/onnx2mm.py (--component image --size 224x224), then timed as libmm's
  image encoder (DIR/tests/bench/mm-bench model FILE N, MM_BENCH_ONLY=image:
  the encoder made once, N encodes, the median; it includes libmm's own pixel
  normalisation, PyTorch starts from the normalised tensor);
- PyTorch on the same module: eager, and at its best: jit.trace + freeze +
  optimize_for_inference, each in NCHW and channels_last; the fastest of the
  four is "best";
- resnet18 also through the resnet family path (models/export.py on the same
  module) next to its graph;
- with --bf16, on a CPU with AVX512_BF16: libmm's graph with precision bf16
  (MM_BENCH_PRECISION=bf16: the convs without groups in bf16) next to
  PyTorch bf16 (the module in bfloat16, eager and traced + frozen, NCHW or
  channels_last, and fp32 under autocast; the fastest is "bf16 best").
libmm and PyTorch alternate in R rounds of N calls (the machine is shared);
the tables give the median of the per-round medians and of the per-round
ratios.  OPENBLAS_NUM_THREADS/OMP_NUM_THREADS are 1 before torch loads, and
OPENBLAS_CORETYPE (with OPENBLAS_L2_SIZE) is the same for every side: unset
by default (--coretype NAME sets it for all).  The OpenBLAS kernel each side
runs and the CPU are printed.  Writes its files to /tmp/mm-bench-graph/.
See tests/bench/README.md.
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time


def _arg(name, default):
    for i, a in enumerate(sys.argv):
        if a == name and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


# Before torch (and its OpenBLAS) loads: one thread everywhere, and the same
# OpenBLAS kernel choice for this process and for mm-bench.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
CORETYPE = _arg("--coretype", "unset")
if CORETYPE == "unset":
    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ.pop("OPENBLAS_L2_SIZE", None)
else:
    os.environ["OPENBLAS_CORETYPE"] = CORETYPE

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models"))
WORK = "/tmp/mm-bench-graph"
MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0"]
TARGET_SPEEDUP = 1.3          # resnet50, mobilenet_v2, efficientnet_b0 vs PyTorch at its best
TARGET_GRAPH_VS_FAMILY = 1.10  # resnet18: graph within 10 % of the family path


def cpu_info():
    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    except OSError:
        pass
    flags = set(info.get("Flags", "").split())
    used = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                        "avx512cd", "avx512_bf16", "avx512_vnni") if f in flags]
    return "%s (family %s, model %s), %s cores; flags: %s" % (
        info.get("Model name", "?"), info.get("CPU family", "?"), info.get("Model", "?"),
        os.cpu_count(), " ".join(used) or "none of avx2/avx512")


def torch_openblas_core():
    """OpenBLAS kernel of the OpenBLAS loaded into this (PyTorch's) process."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "openblas" in line and ".so" in line}
    for lib in sorted(libs):
        try:
            fn = ctypes.CDLL(lib).openblas_get_corename
            fn.restype = ctypes.c_char_p
            return "%s (%s)" % (fn().decode(), os.path.basename(lib))
        except (OSError, AttributeError):
            continue
    return "no OpenBLAS loaded"


def torch_capability():
    for line in torch.__config__.show().splitlines():
        if "CPU capability" in line:
            return line.split(":", 1)[1].strip()
    return "?"


def make_module(name):
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(weights=None)
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5, generator=g)
            mod.bias.data.uniform_(-0.1, 0.1, generator=g)
            mod.running_mean.uniform_(-0.1, 0.1, generator=g)
            mod.running_var.uniform_(0.5, 1.5, generator=g)
    return m.eval()


def torch_median_ms(fn, x, repeats):
    with torch.no_grad():
        for _ in range(3):
            fn(x)
        t = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            t.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t)


def torch_variants(m, x):
    """name -> (callable, input): eager and optimised, NCHW and channels_last"""
    out = {"eager": (m, x)}
    xc = x.contiguous(memory_format=torch.channels_last)
    mc = __import__("copy").deepcopy(m).to(memory_format=torch.channels_last)
    out["eager cl"] = (mc, xc)
    with torch.no_grad():
        for tag, mod, inp in (("jit", m, x), ("jit cl", mc, xc)):
            t = torch.jit.freeze(torch.jit.trace(mod, inp).eval())
            out[tag] = (torch.jit.optimize_for_inference(t), inp)
    return out


def cpu_flags():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return {}, set()
    info = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    return info, set(info.get("Flags", "").split())


def has_bf16():
    return "avx512_bf16" in cpu_flags()[1]


def torch_optimized(mod, inp):
    with torch.no_grad():
        t = torch.jit.freeze(torch.jit.trace(mod.eval(), inp).eval())
        return torch.jit.optimize_for_inference(t)


def torch_bf16_variants(m, inp, cl):
    """bf16: the module in bfloat16 (traced and frozen, else eager) and fp32
    under autocast; name -> callable"""
    import copy
    out = {}
    mb = copy.deepcopy(m).to(torch.bfloat16)
    xb = tuple(t.to(torch.bfloat16) if t.is_floating_point() else t for t in inp)
    if cl:
        mb = mb.to(memory_format=torch.channels_last)
        xb = tuple(t.contiguous(memory_format=torch.channels_last) for t in xb)
    out["bf16 eager"] = lambda: mb(*xb)
    try:
        tb = torch_optimized(mb, xb)
        out["bf16 jit"] = lambda: tb(*xb)
    except Exception as e:  # noqa: BLE001 -- reported, the others still run
        print("  bf16 jit failed: %s" % str(e).splitlines()[0], file=sys.stderr)

    def autocast(m=m, inp=inp):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return m(*inp)
    out["bf16 autocast"] = autocast
    return out


def find_tool(build, rel):
    for d in ([build] if build else []) + ["build-perf", "build"]:
        p = os.path.join(ROOT, d, rel) if not os.path.isabs(d) else os.path.join(d, rel)
        if os.path.exists(p):
            return p
    sys.exit("bench_graph: %s not found; build first (meson setup build-perf "
             "--buildtype=debugoptimized && ninja -C build-perf) or pass --build DIR" % rel)


def run(cmd, env=None, timeout=1800):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s%s" % (" ".join(cmd), r.returncode,
                                                     r.stdout[-3000:], r.stderr[-3000:]))
    return r.stdout


def prepare(name, m, size, mm_embed, env):
    """Writes NAME.onnx and NAME.graph.safetensors (and resnet18.family.safetensors)."""
    os.makedirs(WORK, exist_ok=True)
    onnx_path = os.path.join(WORK, "%s.onnx" % name)
    graph = os.path.join(WORK, "%s.graph.safetensors" % name)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(m, x, onnx_path, opset_version=13, input_names=["pixels"],
                          output_names=["logits"])
    t0 = time.time()
    run([sys.executable, os.path.join(ROOT, "models", "onnx2mm.py"), onnx_path, graph,
         "--component", "image", "--size", "%dx%d" % (size, size), "--mm-embed", mm_embed],
        env=env)
    print("  %s: ONNX -> %s in %.1f s" % (name, os.path.basename(graph), time.time() - t0),
          file=sys.stderr)
    files = {"graph": graph}
    if name == "resnet18":
        import export
        fam = os.path.join(WORK, "resnet18.family.safetensors")
        export.export(fam, {"image": (m, {"width": size, "height": size})}, name="resnet18")
        files["family"] = fam
    return files


def med(v):
    return statistics.median(v) if v else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="build dir with tests/bench/mm-bench and tools/mm-embed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--coretype", default="unset",
                    help="OPENBLAS_CORETYPE for every side (default: unset for all)")
    ap.add_argument("--bf16", action="store_true",
                    help="also libmm bf16 against PyTorch bf16 (CPUs with AVX512_BF16)")
    args = ap.parse_args()
    if args.bf16 and not has_bf16():
        print("--bf16: this CPU has no AVX512_BF16 (lscpu); bf16 rows left out", file=sys.stderr)
        args.bf16 = False
    torch.set_num_threads(1)
    bench = find_tool(args.build, "tests/bench/mm-bench")
    mm_embed = find_tool(args.build, "tools/mm-embed")
    env = dict(os.environ, MM_THREADS="1", MM_BENCH_ONLY="image")

    names = [n for n in args.models.split(",") if n]
    mods, files, failed = {}, {}, {}
    for n in names:
        mods[n] = make_module(n)
        try:
            files[n] = prepare(n, mods[n], args.size, mm_embed, env)
        except RuntimeError as e:  # reported in the table, the others still run
            failed[n] = str(e).strip().splitlines()[-1]
            print("  %s: %s" % (n, e), file=sys.stderr)
    names = [n for n in names if n not in failed]
    x = torch.randn(1, 3, args.size, args.size)
    variants = {n: torch_variants(mods[n], x) for n in names}
    bf16_sides = {}
    if args.bf16:
        for n in names:
            bf16_sides[n] = dict(torch_bf16_variants(mods[n], (x,), False))
            bf16_sides[n].update({k + " cl": f for k, f in torch_bf16_variants(
                mods[n], (x,), True).items() if k != "bf16 autocast"})
    lib16, t16, ratio16, ratio16_fp32 = {}, {}, {}, {}

    lib_ms, t_ms, ratio, fam_ms, fam_ratio, core = {}, {}, {}, [], [], None
    for _ in range(args.rounds):
        for n in names:
            for kind, path in files[n].items():
                out = json.loads(run([bench, "model", path, str(args.repeats)], env))
                core = out["core"]
                ms = out["components"]["image"]["ms"]
                if kind == "family":
                    fam_ms.append(ms)
                    continue
                lib_ms.setdefault(n, []).append(ms)
            best = None
            for v, (fn, inp) in variants[n].items():
                t = torch_median_ms(fn, inp, args.repeats)
                t_ms.setdefault(n, {}).setdefault(v, []).append(t)
                best = t if best is None else min(best, t)
            ratio.setdefault(n, []).append(best / lib_ms[n][-1])
            if args.bf16:
                out = json.loads(run([bench, "model", files[n]["graph"], str(args.repeats)],
                                     dict(env, MM_BENCH_PRECISION="bf16")))
                lib16.setdefault(n, []).append(out["components"]["image"]["ms"])
                b16 = None
                for v, fn in bf16_sides[n].items():
                    t = torch_median_ms(lambda _x, fn=fn: fn(), None, args.repeats)
                    t16.setdefault(n, {}).setdefault(v, []).append(t)
                    b16 = t if b16 is None else min(b16, t)
                ratio16.setdefault(n, []).append(b16 / lib16[n][-1])
                ratio16_fp32.setdefault(n, []).append(best / lib16[n][-1])
            if n == "resnet18" and "family" in files[n]:
                fam_ratio.append(lib_ms[n][-1] / fam_ms[-1])

    print("CPU: %s" % cpu_info())
    print("OpenBLAS kernel: libmm %s; PyTorch %s (PyTorch %s, CPU capability %s, oneDNN %s)"
          % (core, torch_openblas_core(), torch.__version__, torch_capability(),
             "on" if torch.backends.mkldnn.is_available() else "off"))
    print("OPENBLAS_CORETYPE %s for both sides; 1 thread (MM_THREADS=1, torch threads %d, "
          "OPENBLAS_NUM_THREADS=%s, OMP_NUM_THREADS=%s); %dx%d; %d rounds x %d calls"
          % (os.environ.get("OPENBLAS_CORETYPE", "unset"), torch.get_num_threads(),
             os.environ["OPENBLAS_NUM_THREADS"], os.environ["OMP_NUM_THREADS"], args.size,
             args.size, args.rounds, args.repeats))
    print()
    print("| model | libmm graph ms | PyTorch eager ms | eager cl ms | jit ms | jit cl ms |"
          " best | speed-up vs best | target |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---|")
    for n, why in failed.items():
        print("| %s | failed: %s | | | | | | | |" % (n, why))
    for n in names:
        tv = {v: med(t) for v, t in t_ms[n].items()}
        best = min(tv, key=tv.get)
        sp = med(ratio[n])
        tgt = ("-" if n == "resnet18" else
               ("met" if sp >= TARGET_SPEEDUP else "missed") + " (>= %.1fx)" % TARGET_SPEEDUP)
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %.2fx | %s |"
              % (n, med(lib_ms[n]), tv["eager"], tv["eager cl"], tv["jit"], tv["jit cl"],
                 best, sp, tgt))
    if lib16:
        print()
        print("| model | libmm graph bf16 ms | libmm fp32 ms | PyTorch bf16 best ms (which) |"
              " vs PyTorch bf16 best | vs PyTorch fp32 best |")
        print("|---|---:|---:|---:|---:|---:|")
        for n in names:
            tv = {v: med(t) for v, t in t16[n].items()}
            which = min(tv, key=tv.get)
            print("| %s | %.2f | %.2f | %.2f (%s) | %.2fx | %.2fx |"
                  % (n, med(lib16[n]), med(lib_ms[n]), tv[which], which, med(ratio16[n]),
                     med(ratio16_fp32[n])))
    if fam_ms:
        r = med(fam_ratio)
        print()
        print("| resnet18 | family path ms | graph ms | graph / family | target |")
        print("|---|---:|---:|---:|---|")
        print("| libmm | %.2f | %.2f | %.3f | %s (<= %.2f) |"
              % (med(fam_ms), med(lib_ms["resnet18"]), r,
                 "met" if r <= TARGET_GRAPH_VS_FAMILY else "missed", TARGET_GRAPH_VS_FAMILY))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""libmm vs PyTorch, side by side on the same weights, in one run.

    /usr/bin/python3 tests/bench/bench.py [--rounds R] [--repeats N] [--threads T]
                                          [--build DIR] [--sample MKV] [--quick]
                                          [--targets] [--coretype unset|NAME]

Builds (once, under /tmp/mm-bench) a 4-layer hidden-256 BERT (64 tokens) and
a resnet18-layout model (224x224) with random weights.  For those and the
bundled model it times every component at batch 1: libmm through
DIR/tests/bench/mm-bench and PyTorch eager on the very same tensors
(models/mmtorch.py; BERT from tests/lib/ref_text.py), both with T threads.
The machine is shared and noisy, so libmm and PyTorch alternate in R rounds
of N calls each; the table gives the median over rounds of each round's
median, and the median of the per-round speed-ups.

Then: libmm's heavy layers in GFLOP/s next to one sgemm of the same shape
and next to sgemm 1024^3 (this machine's practical limit); the OpenBLAS
kernel chosen automatically vs OpenBLAS's generic Prescott fallback;
threading (one stream vs several concurrent encoders); memory (one mapping
per model however many users, RSS over many calls); and the whole demo
pipeline over the sample media (real-time factor, decisions/s, peak RSS,
RSS over looped runs) and a live pipeline's reported latency.

The anchor (also alone with --targets, a few minutes): bert4 and resnet18,
libmm next to PyTorch eager, PyTorch at its best (jit.trace + freeze +
optimize_for_inference, NCHW and channels_last for the CNN), PyTorch bf16
where the CPU has AVX512_BF16 and OpenCV DNN (same weights through ONNX,
one thread) for resnet18, and there libmm with MmContextParams.precision
bf16 too (mm-bench, MM_BENCH_PRECISION=bf16), all alternating in the same
rounds; then the
targets table of issue 15 (resnet18 fp32 vs best, BERT-4, the demo
pipeline in process, two streams on two cores, the demo line as one
gst-launch-1.0 process).  OPENBLAS_CORETYPE is unset for every side
(--coretype NAME sets the same value for all); the CPU (lscpu), the
measured FMA peak, the OpenBLAS kernel of each side and the load average
before and after are printed.
See tests/bench/README.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# torch.set_num_threads() does not reach the OpenBLAS that Debian's PyTorch
# calls for Linear/matmul: that OpenBLAS starts one thread per core unless
# told before it loads.  Measured here: BERT-4 at "1 thread" ran at 2.0 CPU
# seconds per wall second and 4.3 ms; pinned, 1.0 and 7.3 ms.  Pin it (and
# OpenMP) to --threads before numpy/torch load, and report PyTorch's CPU/wall
# ratio so the table shows the thread counts really are equal.
os.environ["OPENBLAS_NUM_THREADS"] = _threads_from_argv(sys.argv)
os.environ["OMP_NUM_THREADS"] = _threads_from_argv(sys.argv)
# The same OpenBLAS kernel choice for PyTorch and libmm: a shell here sets
# OPENBLAS_CORETYPE=Haswell, which changed PyTorch's BERT time by 30 %.
# Unset for every side unless --coretype NAME (as bench_graph.py does).
CORETYPE = "unset"
for _i, _a in enumerate(sys.argv):
    if _a == "--coretype" and _i + 1 < len(sys.argv):
        CORETYPE = sys.argv[_i + 1]
    elif _a.startswith("--coretype="):
        CORETYPE = _a.split("=", 1)[1]
if CORETYPE == "unset":
    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ.pop("OPENBLAS_L2_SIZE", None)
else:
    os.environ["OPENBLAS_CORETYPE"] = CORETYPE
LOAD_START = os.getloadavg()
_PINNED = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import mmfile  # noqa: E402
import mmtorch  # noqa: E402
import ref_text  # noqa: E402  (PyTorch BERT with Hugging Face names)
sys.path.insert(0, HERE)
import bench_graph  # noqa: E402  (cpu_info, torch_openblas_core, torch_variants)
os.environ.update(_PINNED)  # bench_graph pins 1 thread at import; keep --threads

WORK = "/tmp/mm-bench"
BERT4 = dict(hidden=256, layers=4, heads=4, intermediate=1024, max_len=64)


# --------------------------------------------------------------------------
# benchmark models (random weights, same file for both sides)

def bench_vocab():
    words = ("the quick brown fox jumps over lazy dog while news anchor reads weather report "
             "about rain snow and wind mountains sea then sports results follow with football "
             "tennis cycling scores from weekend a long interview music art science in city "
             "today , .").split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words))
    return vocab + ["w%d" % i for i in range(1000 - len(vocab))]


def make_bert(path, hidden, layers, heads, intermediate, max_len):
    vocab = bench_vocab()
    torch.manual_seed(0)
    m = ref_text.BertModel(len(vocab), hidden, layers, heads, intermediate, 512)
    for p in m.parameters():
        nn.init.normal_(p, 0, 0.05)
    cfg = {"type": "bert", "vocab": vocab, "hidden": hidden, "layers": layers, "heads": heads,
           "intermediate": intermediate, "max_len": max_len, "lowercase": True,
           "pooling": "mean", "layer_norm_eps": 1e-12, "dim": hidden}
    sd = {"text." + k: v.detach().numpy() for k, v in m.state_dict().items()}
    name = os.path.basename(path).split(".")[0]
    mmfile.save(path, sd, {"version": 1, "name": name, "components": {"text": cfg}})


def make_resnet18(path):
    torch.manual_seed(0)
    m = mmtorch.ResNet(224, 224, (64, 128, 256, 512), (2, 2, 2, 2), 512)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.1)
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    mmtorch.save_model(path, "resnet18", {"image": m}, fp16=False)


def load_torch(path):
    """{component: (callable, flop-counted module, args)} on the file's weights."""
    tensors, doc = mmfile.load(path)
    comps = doc["components"]
    out = {}
    if comps.get("text", {}).get("type") == "bert":
        c = comps["text"]
        m = ref_text.BertModel(len(c["vocab"]), c["hidden"], c["layers"], c["heads"],
                               c["intermediate"],
                               tensors["text.embeddings.position_embeddings.weight"].shape[0])
        m.load_state_dict({k[5:]: torch.from_numpy(v) for k, v in tensors.items()
                           if k.startswith("text.")})
        m.eval()
        ids = torch.randint(5, len(c["vocab"]), (c["max_len"],))
        out["text"] = (lambda m=m, ids=ids, c=c: m(ids, c["pooling"]), m, (ids, c["pooling"]))
        return out, doc
    doc, mods = mmtorch.load_model(path)
    if "text" in mods:
        m = mods["text"]
        ids = torch.randint(0, len(m.vocab), (40,))
        offs = torch.tensor([0])
        out["text"] = (lambda m=m, ids=ids, offs=offs: m(ids, offs), m, (ids, offs))
    if "image" in mods:
        m, c = mods["image"], comps["image"]
        x = torch.randn(1, 3, c["height"], c["width"])
        out["image"] = (lambda m=m, x=x: m(x), m, (x,))
    if "audio" in mods:
        m, c = mods["audio"], comps["audio"]
        s = torch.randn(1, c["window"]) * 0.3
        out["audio"] = (lambda m=m, s=s: m(m.logmel(s)), m, (m.logmel(s),))
    if "fusion" in mods:
        m = mods["fusion"]
        zs = [torch.randn(1, i["dim"]) for i in comps["fusion"]["inputs"]]
        mask = torch.ones(1, len(zs))
        out["fusion"] = (lambda m=m, zs=zs, mask=mask: m(zs, mask), m, (zs, mask))
    if "head" in mods:
        m = mods["head"]
        x = torch.randn(1, comps["fusion"]["dim"] if "fusion" in comps
                        else m.layers[0].in_features)
        out["head"] = (lambda m=m, x=x: m(x), m, (x,))
    return out, doc


def count_flops(module, args):
    """2 x multiply-adds of the Linear/Conv layers and attention matmuls."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Linear):
            total[0] += 2 * out.numel() * mod.in_features
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            k = int(np.prod(mod.kernel_size)) * mod.in_channels // mod.groups
            total[0] += 2 * out.numel() * k
    hs = [m.register_forward_hook(hook) for m in module.modules()
          if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    with torch.no_grad():
        module(*args)
    for h in hs:
        h.remove()
    return total[0]


PEAK = []                 # fp32 FMA peak of one core, registers only (mm-bench)
TORCH_CPU = [0.0, 0.0]   # PyTorch's process CPU seconds, wall seconds timed


def torch_median_ms(fn, repeats):
    """Median ms per call; tiny calls are timed in batches like mm-bench."""
    c0, w0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        once = (time.perf_counter() - t0) / 3 * 1000
        inner = 1 if once > 0.2 else int(min(1000, 0.2 / max(once, 1e-4))) + 1
        t = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            t.append((time.perf_counter() - t0) * 1000 / inner)
    TORCH_CPU[0] += time.process_time() - c0
    TORCH_CPU[1] += time.perf_counter() - w0
    return statistics.median(t)


def run_json(cmd, env=None, timeout=600):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env,
                         timeout=timeout)
    return json.loads(out.stdout)


def med(v):
    return statistics.median(v) if v else float("nan")


# --------------------------------------------------------------------------
# sections

def components(bench, models, args, env):
    """Interleaved rounds of libmm and PyTorch; returns table rows and the
    sgemm 1024^3 GFLOP/s seen in those runs."""
    rows, sgemm, core = [], [], None
    for path in models:
        fns, doc = load_torch(path)
        c_ms, t_ms, ratio = {}, {}, {}
        info = None
        for _ in range(args.rounds):
            c = run_json([bench, "model", path, str(args.repeats)], env)
            info, core = c, c["core"]
            sgemm.append(c["sgemm"]["gflops"])
            PEAK.append(c.get("fma_peak_gflops", 0.0))
            for comp, cres in c["components"].items():
                t = torch_median_ms(fns[comp][0], args.repeats)
                c_ms.setdefault(comp, []).append(cres["ms"])
                t_ms.setdefault(comp, []).append(t)
                ratio.setdefault(comp, []).append(t / max(cres["ms"], 1e-9))
        for comp in info["components"]:
            fn, mod, a = fns[comp]
            flops = count_flops(mod, a)
            rows.append(dict(model=info["model"], comp=comp,
                             type=doc["components"][comp]["type"], c_ms=med(c_ms[comp]),
                             t_ms=med(t_ms[comp]), ratio=med(ratio[comp]), flops=flops,
                             tokens=info["components"][comp].get("tokens")))
    return rows, med(sgemm), core


def print_components(rows, sg):
    print("| model | component | type | libmm ms | PyTorch ms | speed-up | libmm GFLOP/s |"
          " % of sgemm |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        g = r["flops"] / (r["c_ms"] * 1e6) if r["flops"] > 1e6 else None
        gf = "%.1f" % g if g else "-"
        pct = "%.0f %%" % (100 * g / sg) if g else "-"
        extra = " (%d tok)" % (r["tokens"] + 2) if r["type"] == "bert" and r["tokens"] else ""
        print("| %s | %s | %s%s | %.4g | %.4g | %.2fx | %s | %s |"
              % (r["model"], r["comp"], r["type"], extra, r["c_ms"], r["t_ms"], r["ratio"],
                 gf, pct))


def layers(bench, env, repeats):
    res = run_json([bench, "layers", str(repeats)], env)
    sg = res["sgemm"]["gflops"]
    print("libmm's op as the encoders run it (3x3 stride-1 convs: Winograd where the image "
          "encoder picks it; resnet18's stem and layer4: channel-last over weights packed at load; "
          "convs of Winograd blocks: im2col + GEMM; BERT linears: blas.c packed-linear kernel over "
          "weights packed at load) "
          "next to the plain op (im2col + sgemm / mm_linear on OpenBLAS), one plain sgemm of the "
          "same M,N,K and sgemm 1024^3, the references measured right after the layer (the load "
          "of this shared machine changes; sgemm 1024^3 at the start: %.1f GFLOP/s). GFLOP/s "
          "count the direct convolution's 2 M N K (Winograd does fewer multiplications, so it "
          "can exceed sgemm)." % sg)
    print()
    print("| layer | M x N x K | how | libmm ms | libmm GFLOP/s | plain op ms | "
          "sgemm same shape GFLOP/s | sgemm 1024^3 GFLOP/s | libmm % of 1024^3 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for ly in res["layers"]:
        plain = "%.3f" % ly["unpacked_ms"] if ly["unpacked_ms"] else "(same)"
        print("| %s | %dx%dx%d | %s | %.3f | %.1f | %s | %.1f | %.1f | %.0f %% |"
              % (ly["name"], ly["m"], ly["n"], ly["k"], ly["how"], ly["ms"], ly["gflops"], plain,
                 ly["sgemm_gflops"], ly["sgemm1024_gflops"],
                 100 * ly["gflops"] / ly["sgemm1024_gflops"]))
    return res


def kernels(bench, env, models, repeats):
    """The same binary under the automatic choice, OpenBLAS's own choice, and
    its generic Prescott kernel."""
    print("| OpenBLAS kernel | how | sgemm 1024^3 GFLOP/s | " +
          " | ".join("%s ms" % os.path.basename(m).split(".")[0] for m in models) + " |")
    print("|---|---|---:|" + "---:|" * len(models))
    base = {k: v for k, v in env.items() if k not in ("OPENBLAS_CORETYPE", "MM_BLAS_CORETYPE")}
    out = {}
    for how, extra in (("libmm auto (MM_BLAS_CORETYPE unset)", {}),
                       ("OpenBLAS's own (MM_BLAS_CORETYPE=none)", {"MM_BLAS_CORETYPE": "none"}),
                       ("forced OPENBLAS_CORETYPE=PRESCOTT", {"OPENBLAS_CORETYPE": "PRESCOTT"})):
        e = dict(base, **extra)
        ms, core, sgs = [], None, []
        for path in models:
            c = run_json([bench, "model", path, str(repeats)], e)
            core = c["core"]
            sgs.append(c["sgemm"]["gflops"])
            ms.append(sum(v["ms"] for v in c["components"].values()))
        out[how] = (core, med(sgs), ms)
        print("| %s | %s | %.1f | %s |" % (core, how, med(sgs),
                                           " | ".join("%.2f" % v for v in ms)))
    return out


PRELOAD = """
import ctypes, os, sys
os.environ["OPENBLAS_CORETYPE"] = "PRESCOTT"   # what an unknown CPU gets
import numpy                                    # loads OpenBLAS before libmm
del os.environ["OPENBLAS_CORETYPE"]             # the user's environment
mm = ctypes.CDLL(sys.argv[1])
mm.mm_blas_core_name.restype = ctypes.c_char_p
print(mm.mm_blas_core_name().decode(), mm.mm_blas_core_name().decode())
"""


def preload_warning(build):
    """OpenBLAS already loaded (numpy first) with the generic kernel: libmm
    cannot pick the kernel any more and must warn once with the fix."""
    lib = os.path.join(build, "lib", "libmm.so")
    r = subprocess.run([sys.executable, "-c", PRELOAD, lib], capture_output=True, text=True,
                       timeout=60)
    warnings = [line for line in r.stderr.splitlines() if "WARNING" in line]
    print("- numpy imported first (its OpenBLAS on Prescott), then libmm: core in use %s; "
          "%d warning(s): %s" % (r.stdout.split()[0] if r.stdout else "?", len(warnings),
                                 warnings[0].split("libmm: ", 2)[-1] if warnings else "none"))


def streams(bench, env, bundled, bert, seconds):
    print("| workload | streams (threads) | calls/s total | per stream calls/s | "
          "median ms per call | p90 ms |")
    print("|---|---|---:|---:|---:|---:|")
    cases = []
    if bundled:
        name = os.path.basename(bundled).split(".")[0]
        cases += [(bundled, name + " image", ["image"] * n) for n in (1, 2, 3)]
        cases += [(bundled, name + " audio", ["audio"] * n) for n in (1, 2, 3)]
        cases.append((bundled, name + " image+audio+text (demo)", ["image", "audio", "text"]))
    if bert:
        cases += [(bert, "bert4 text", ["text"] * n) for n in (1, 2, 3)]
    for path, label, comps in cases:
        r = run_json([bench, "streams", path, str(seconds)] + comps, env)
        tot = sum(s["per_s"] for s in r["streams"])
        per = " / ".join("%.0f" % s["per_s"] for s in r["streams"])
        medms = " / ".join("%.3f" % s["median_ms"] for s in r["streams"])
        p90 = " / ".join("%.3f" % s["p90_ms"] for s in r["streams"])
        print("| %s | %d | %.0f | %s | %s | %s |" % (label, len(comps), tot, per, medms, p90))


def memory(bench, env, models):
    print("| model | opens | contexts | mappings of the file | RSS after 1 set kB | "
          "after all kB | RSS over 10 x (calls) kB |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for path, calls in models:
        r = run_json([bench, "memory", path, "4", str(calls)], env)
        loop = r["rss_kb_loop"]
        print("| %s | %d | %d | %d | %d | %d | %d .. %d (%d calls each) |"
              % (os.path.basename(path), r["opens"], r["contexts"], r["file_mappings"],
                 r["rss_kb_one"], r["rss_kb_all"], loop[0], loop[-1], calls))


def pipeline(sample, model, env, runs, loops):
    script = os.path.join(HERE, "pipeline.py")
    for interval, what in ((15, "the demo's settings: imageenc interval=15 (one frame a "
                                "second), max-age=0"),
                           (1, "every frame encoded: imageenc interval=1")):
        res = [run_json([sys.executable, script, "file", sample, model, "1", str(interval)],
                        env, timeout=300) for _ in range(runs)]
        media = res[0]["media_s"]
        w = med([r["wall_s"][0] for r in res])
        decisions = res[0]["decisions"][0]
        hwm = med([max(r["hwm_kb"], max(r["rss_kb"])) for r in res])
        print("- demo pipeline over %s (%.1f s of media, fakesink, no video encoding), %s; "
              "median of %d runs: wall %.3f s -> real-time factor %.0fx; %d decisions -> "
              "%.0f decisions/s; peak RSS %.1f MB; mappings of the model file in the "
              "process: %d (5 elements use it)"
              % (os.path.basename(sample), media, what, runs, w, media / w, decisions,
                 decisions / w, hwm / 1024, res[0]["model_mappings"]))
    lp = run_json([sys.executable, script, "file", sample, model, str(loops), "1"], env,
                  timeout=600)
    rss = lp["rss_kb"]
    print("- every frame, looped %d times in one process (flushing seek to 0 after EOS): "
          "RSS after "
          "each loop (MB) %s; decisions per loop %s"
          % (loops, " ".join("%.1f" % (r / 1024) for r in rss[:3]) + " ... " +
             " ".join("%.1f" % (r / 1024) for r in rss[-3:]),
             "all %d" % lp["decisions"][0] if len(set(lp["decisions"])) == 1
             else lp["decisions"]))
    live = run_json([sys.executable, script, "live", model, "4"], env, timeout=120)
    print("- live pipeline (videotestsrc + audiotestsrc is-live, imageenc, audioenc, mmfuse, "
          "mmdecode): latency query live=%s min %.0f ms max %s; measured decision delay "
          "median %.0f ms, max %.0f ms over %d decisions"
          % (live["live"], live["min_ms"],
             "none" if live["max_ms"] is None else "%.0f ms" % live["max_ms"],
             live["delay_median_ms"] or 0, live["delay_max_ms"] or 0, live["decisions"]))


# --------------------------------------------------------------------------
# the anchor: PyTorch eager / at its best / bf16 and OpenCV DNN, same run

class _Pooled(nn.Module):
    """BertModel with its pooling fixed, so jit.trace sees tensors only."""

    def __init__(self, m, pooling):
        super().__init__()
        self.m, self.pooling = m, pooling

    def forward(self, ids):
        return self.m(ids, self.pooling)


cpu_flags = bench_graph.cpu_flags
has_bf16 = bench_graph.has_bf16
_optimized = bench_graph.torch_optimized
_bf16_variants = bench_graph.torch_bf16_variants


def opencv_net(m, x, path):
    """OpenCV DNN on the same weights through ONNX, one thread; a callable
    and the max difference from PyTorch, or (None, why)."""
    try:
        import cv2
    except ImportError:
        return None, "python3-opencv not installed"
    cv2.setNumThreads(1)
    with torch.no_grad():
        torch.onnx.export(m, x, path, opset_version=13, input_names=["x"],
                          output_names=["y"])
        ref = m(x).numpy()
    net = cv2.dnn.readNetFromONNX(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    blob = np.ascontiguousarray(x.numpy())

    def run():
        net.setInput(blob)
        return net.forward()
    diff = float(np.abs(run().reshape(ref.shape) - ref).max())
    return run, "OpenCV %s, max |diff| vs PyTorch %.2g" % (cv2.__version__, diff)


def anchor_sides(path):
    """name -> {side: callable}, side kinds: eager, best candidates (jit...),
    bf16 ..., opencv; and notes"""
    fns, doc = load_torch(path)
    comp = "text" if "text" in fns else "image"
    fn, m, args = fns[comp]
    sides, notes = {}, []
    if comp == "text":
        wrapped = _Pooled(m, args[1]).eval()
        inp = (args[0],)
        sides["eager"] = fn
        jit = _optimized(wrapped, inp)
        sides["jit"] = lambda: jit(*inp)
        if has_bf16():
            sides.update(_bf16_variants(wrapped, inp, False))
    else:
        x = args[0]
        for v, (mod, inp) in bench_graph.torch_variants(m, x).items():
            sides[v] = (lambda mod=mod, inp=inp: mod(inp))
        if has_bf16():
            sides.update(_bf16_variants(m, (x,), True))
        run, why = opencv_net(m, x, os.path.join(WORK, "%s.onnx" % os.path.basename(path)
                                                  .split(".")[0]))
        if run:
            sides["opencv"] = run
        notes.append(why)
    return comp, sides, notes


def anchor(bench, paths, args, env):
    """Rounds of libmm then every PyTorch/OpenCV side; medians of per-round
    medians and of per-round ratios (best = fastest fp32 PyTorch side)."""
    res = {}
    for path in paths:
        comp, sides, notes = anchor_sides(path)
        lib, t, r_eager, r_best, r_bf16, r_cv, peaks, core = [], {}, [], [], [], [], [], None
        lib16, r16_best, r16_bf16 = [], [], []  # libmm with precision bf16
        for _ in range(args.rounds):
            c = run_json([bench, "model", path, str(args.repeats)], dict(env, MM_BENCH_ONLY=comp))
            core = c["core"]
            peaks.append(c.get("fma_peak_gflops", 0.0))
            PEAK.append(peaks[-1])
            ms = c["components"][comp]["ms"]
            lib.append(ms)
            if has_bf16():
                lib16.append(run_json([bench, "model", path, str(args.repeats)],
                                      dict(env, MM_BENCH_ONLY=comp, MM_BENCH_PRECISION="bf16"))
                             ["components"][comp]["ms"])
            for name, fn in sides.items():
                t.setdefault(name, []).append(torch_median_ms(fn, args.repeats))
            fp32 = [t[n][-1] for n in t if not n.startswith("bf16") and n != "opencv"]
            bf = [t[n][-1] for n in t if n.startswith("bf16")]
            r_eager.append(t["eager"][-1] / ms)
            r_best.append(min(fp32) / ms)
            if bf:
                r_bf16.append(min(bf) / ms)
            if "opencv" in t:
                r_cv.append(t["opencv"][-1] / ms)
            if lib16:
                r16_best.append(min(fp32) / lib16[-1])
                if bf:
                    r16_bf16.append(min(bf) / lib16[-1])
        tm = {n: med(v) for n, v in t.items()}
        fp32 = {n: v for n, v in tm.items() if not n.startswith("bf16") and n != "opencv"}
        bf = {n: v for n, v in tm.items() if n.startswith("bf16")}
        name = os.path.basename(path).split(".")[0]
        res[name] = dict(comp=comp, lib=med(lib), times=tm, best=min(fp32, key=fp32.get),
                         best_bf16=min(bf, key=bf.get) if bf else None, r_eager=med(r_eager),
                         r_best=med(r_best), r_bf16=med(r_bf16) if r_bf16 else None,
                         r_cv=med(r_cv) if r_cv else None, core=core, notes=notes,
                         peak=med(peaks), lib16=med(lib16) if lib16 else None,
                         r16_best=med(r16_best) if r16_best else None,
                         r16_bf16=med(r16_bf16) if r16_bf16 else None)
    return res


def print_machine(args):
    info, flags = cpu_flags()
    print("CPU (lscpu): %s %s, family %s, model %s, stepping %s; %d logical CPUs, %s "
          "thread(s) per core; flags used: %s"
          % (info.get("Vendor ID", "?"), info.get("Model name", "?"),
             info.get("CPU family", "?"), info.get("Model", "?"), info.get("Stepping", "?"),
             os.cpu_count(), info.get("Thread(s) per core", "?"),
             " ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                                  "avx512_bf16", "avx512_vnni") if f in flags) or "none"))
    print("PyTorch %s (CPU capability %s, oneDNN %s); OpenBLAS kernel of PyTorch's process: %s; "
          "OPENBLAS_CORETYPE %s for every side"
          % (torch.__version__, bench_graph.torch_capability(),
             "on" if torch.backends.mkldnn.is_available() else "off",
             bench_graph.torch_openblas_core(), os.environ.get("OPENBLAS_CORETYPE", "unset")))


def print_anchor(res):
    print("| model | libmm ms | PyTorch eager ms | PyTorch best ms (which) | PyTorch bf16 ms "
          "(which) | OpenCV DNN ms | vs eager | vs best | vs bf16 | vs OpenCV |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in res.items():
        tm = r["times"]
        bf = ("%.2f (%s)" % (tm[r["best_bf16"]], r["best_bf16"][5:]) if r["best_bf16"]
              else "no AVX512_BF16")
        cv = "%.2f" % tm["opencv"] if "opencv" in tm else "-"
        print("| %s | %.3f | %.3f | %.3f (%s) | %s | %s | %.2fx | %.2fx | %s | %s |"
              % (name, r["lib"], tm["eager"], tm[r["best"]], r["best"], bf, cv, r["r_eager"],
                 r["r_best"], "%.2fx" % r["r_bf16"] if r["r_bf16"] else "-",
                 "%.2fx" % r["r_cv"] if r["r_cv"] else "-"))
    for name, r in res.items():
        if r.get("lib16"):
            print("| %s, libmm bf16 | %.3f | | | | | %.2fx | %.2fx | %s | |"
                  % (name, r["lib16"], r["times"]["eager"] / r["lib16"], r["r16_best"],
                     "%.2fx" % r["r16_bf16"] if r["r16_bf16"] else "-"))
    for name, r in res.items():
        others = ", ".join("%s %.3f" % (n, v) for n, v in sorted(r["times"].items()))
        print("- %s: libmm OpenBLAS kernel %s; every side (ms): %s%s"
              % (name, r["core"], others, "; " + "; ".join(r["notes"]) if r["notes"] else ""))


def targets(bench, args, env, res, bundled, bert4):
    """Issue 15's targets table: one row each, measured now."""
    rows = []
    if "resnet18" in res:
        r = res["resnet18"]
        rows.append(("resnet18 224, fp32", ">= 1.3x PyTorch at its best",
                     "%.2fx (%.2f vs %.2f ms, best = %s)"
                     % (r["r_best"], r["lib"], r["times"][r["best"]], r["best"]),
                     r["r_best"] >= 1.3))
        if r.get("lib16") and r["r16_bf16"]:
            rows.append(("resnet18 224, bf16", ">= 2x PyTorch best fp32, >= 1.2x PyTorch bf16",
                         "%.2fx best fp32, %.2fx PyTorch bf16 (libmm bf16 %.2f ms vs %.2f ms "
                         "%s, %.2f ms %s)"
                         % (r["r16_best"], r["r16_bf16"], r["lib16"], r["times"][r["best"]],
                            r["best"], r["times"][r["best_bf16"]], r["best_bf16"]),
                         r["r16_best"] >= 2.0 and r["r16_bf16"] >= 1.2))
        else:
            rows.append(("resnet18 224, bf16", ">= 2x PyTorch best fp32, >= 1.2x PyTorch bf16",
                         "no AVX512_BF16 here: libmm's bf16 runs fp32", None))
    if "bert4" in res:
        r = res["bert4"]
        rows.append(("BERT-4, 64 tokens", ">= 2x eager, >= 1.5x best",
                     "%.2fx eager, %.2fx best (%.3f vs %.3f / %.3f ms)"
                     % (r["r_eager"], r["r_best"], r["lib"], r["times"]["eager"],
                        r["times"][r["best"]]), r["r_eager"] >= 2.0 and r["r_best"] >= 1.5))
        if r.get("lib16"):
            rows.append(("BERT-4, 64 tokens, libmm bf16 (no target)", "-",
                         "%.2fx eager, %.2fx best fp32, %s PyTorch bf16 (%.3f ms)"
                         % (r["times"]["eager"] / r["lib16"], r["r16_best"],
                            "%.2fx" % r["r16_bf16"] if r["r16_bf16"] else "-", r["lib16"]),
                         None))
    script = os.path.join(HERE, "pipeline.py")
    if bundled and os.path.exists(args.sample):
        for convert in (1, 0):
            res_p = [run_json([sys.executable, script, "file", args.sample, bundled, "1", "15",
                               str(convert)], env, timeout=300) for _ in range(3)]
            walls = sorted(p["wall_s"][0] for p in res_p)
            media = res_p[0]["media_s"]
            rtf = media / walls[1]
            rows.append(("demo pipeline in process, demo settings%s"
                         % ("" if convert else ", no videoconvert (imageenc takes I420)"),
                         ">= 250x real time",
                         "%.0fx (median of 3: %.3f s for %.0f s; runs %s x)"
                         % (rtf, walls[1], media, "/".join("%.0f" % (media / w) for w in walls)),
                         rtf >= 250))
        for convert in (1, 0):
            walls = sorted(run_json([sys.executable, script, "launch", args.sample, bundled,
                                     "15", str(convert)], env, timeout=300)["wall_s"]
                           for _ in range(3))
            rtf = 30.0 / walls[1]
            rows.append(("whole-process gst-launch-1.0 of the demo line, start to EOS%s"
                         % ("" if convert else ", no videoconvert"), ">= 60x real time",
                         "%.0fx (median of 3: %.3f s; runs %s x)"
                         % (rtf, walls[1], "/".join("%.0f" % (30.0 / w) for w in walls)),
                         rtf >= 60))
    for path, comp, label in ((bundled, "image", "scenes image"), (bert4, "text", "bert4 text")):
        if not path or not os.path.exists(path):
            continue
        one = run_json([bench, "streams", path, "2.0", comp], env)
        two = run_json([bench, "streams", path, "2.0", comp, comp], env)
        t1 = sum(x["per_s"] for x in one["streams"])
        t2 = sum(x["per_s"] for x in two["streams"])
        rows.append(("two streams on 2 cores (%s)" % label, ">= 1.8x one stream's throughput",
                     "%.2fx (%.0f vs %.0f calls/s; load %.1f)" % (t2 / t1, t2, t1,
                                                                  os.getloadavg()[0]),
                     t2 / t1 >= 1.8))
    print("| measure | target | measured | met |")
    print("|---|---|---|---|")
    for what, tgt, got, ok in rows:
        print("| %s | %s | %s | %s |" % (what, tgt, got,
                                         "-" if ok is None else ("yes" if ok else "**no**")))


def anchor_and_targets(bench, args, env, bert4, resnet18, bundled):
    t_start = time.monotonic()
    TORCH_CPU[:] = [0.0, 0.0]
    del PEAK[:]
    print("## The anchor: libmm vs PyTorch eager, at its best, bf16, and OpenCV DNN")
    print()
    print_machine(args)
    print("Load average (1, 5, 15 min) at start: %.2f %.2f %.2f" % LOAD_START)
    print()
    res = anchor(bench, [bert4, resnet18], args, env)
    print("%d rounds x %d calls, medians; one thread everywhere (MM_THREADS=%d, torch "
          "threads %d, OPENBLAS_NUM_THREADS=%s, OpenCV setNumThreads(1)); PyTorch used "
          "%.2f CPU s per wall s while timed; one core's fp32 FMA peak (mm-bench, "
          "registers only): %.1f GFLOP/s (%.1f-%.1f over the rounds)"
          % (args.rounds, args.repeats, args.threads, torch.get_num_threads(),
             os.environ["OPENBLAS_NUM_THREADS"], TORCH_CPU[0] / max(TORCH_CPU[1], 1e-9),
             med(PEAK), min(PEAK), max(PEAK)))
    print()
    print_anchor(res)
    print()
    print("## Targets (issue 15)")
    print()
    targets(bench, args, env, res, bundled, bert4)
    print()
    print("Load average (1, 5, 15 min): start %.2f %.2f %.2f, end %.2f %.2f %.2f "
          "(%d logical CPUs: above ~1 other jobs shared the cores); %.0f s"
          % (LOAD_START + os.getloadavg() + (os.cpu_count(), time.monotonic() - t_start)))


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating libmm/PyTorch rounds")
    ap.add_argument("--repeats", type=int, default=15, help="calls per round")
    ap.add_argument("--threads", type=int, default=1)
    default_build = os.path.join(ROOT, "build-perf")
    if not os.path.exists(os.path.join(default_build, "tests", "bench", "mm-bench")):
        default_build = os.path.join(ROOT, "build")
    ap.add_argument("--build", default=default_build)
    ap.add_argument("--sample", default=os.path.join(ROOT, "build", "sample", "news.mkv"))
    ap.add_argument("--bert-base", action="store_true",
                    help="also a 12-layer hidden-768 BERT at 126 tokens (slow)")
    ap.add_argument("--quick", action="store_true", help="bundled model only, fewer repeats")
    ap.add_argument("--targets", action="store_true",
                    help="only the anchor (bert4, resnet18 vs PyTorch eager/best/bf16, "
                    "OpenCV) and the issue-15 targets table")
    ap.add_argument("--coretype", default="unset",
                    help="OPENBLAS_CORETYPE for every side (default: unset for all)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.repeats = 2, 5
    bench = os.path.join(args.build, "tests", "bench", "mm-bench")
    if not os.path.exists(bench):
        sys.exit("bench.py: %s missing: build first (meson setup build && ninja -C build)"
                 % bench)
    torch.set_num_threads(args.threads)
    env = dict(os.environ, MM_THREADS=str(args.threads))
    env["GST_PLUGIN_PATH"] = os.path.join(args.build, "plugins")
    os.makedirs(WORK, exist_ok=True)

    bundled = os.path.join(ROOT, "models", "scenes.safetensors")
    models = [bundled] if os.path.exists(bundled) else []
    bert4 = os.path.join(WORK, "bert4.safetensors")
    resnet18 = os.path.join(WORK, "resnet18.safetensors")
    if args.sample == ap.get_default("sample") and not os.path.exists(args.sample):
        mine = os.path.join(args.build, "sample", "news.mkv")
        args.sample = mine if os.path.exists(mine) else args.sample
    if args.targets:
        for p, make in ((bert4, lambda: make_bert(bert4, **BERT4)),
                        (resnet18, lambda: make_resnet18(resnet18))):
            if not os.path.exists(p):
                make()
        anchor_and_targets(bench, args, env, bert4, resnet18,
                           bundled if bundled in models else None)
        return
    if not args.quick:
        if not os.path.exists(bert4):
            make_bert(bert4, **BERT4)
        if not os.path.exists(resnet18):
            make_resnet18(resnet18)
        models += [bert4, resnet18]
        if args.bert_base:
            base = os.path.join(WORK, "bert-base.safetensors")
            if not os.path.exists(base):
                make_bert(base, 768, 12, 12, 3072, 128)
            models.append(base)

    t_start = time.monotonic()
    rows, sg, core = components(bench, models, args, env)
    print("## libmm vs PyTorch eager, batch 1, same weights")
    print()
    print("OpenBLAS core: %s; threads: libmm %d (MM_THREADS), PyTorch %d "
          "(torch.set_num_threads, OPENBLAS_NUM_THREADS=%s; PyTorch used %.2f CPU s per wall s "
          "while timed); %d rounds x %d calls, medians; sgemm 1024^3 in these runs: "
          "%.1f GFLOP/s; one core's fp32 FMA peak (registers only, no memory): %.1f GFLOP/s"
          % (core, args.threads, torch.get_num_threads(), os.environ["OPENBLAS_NUM_THREADS"],
             TORCH_CPU[0] / max(TORCH_CPU[1], 1e-9), args.rounds, args.repeats, sg, med(PEAK)))
    print()
    print_components(rows, sg)
    print()
    print("libmm times include its preprocessing (tokenizer, pixel normalisation, log-mel); "
          "PyTorch times include log-mel but start from token ids / a normalised tensor.")
    if args.quick:
        return
    print()
    print("## Heavy layers")
    print()
    layers(bench, env, args.repeats)
    print()
    print("## OpenBLAS kernel")
    print()
    kernels(bench, env, [m for m in models if m != bundled], 5)
    print()
    preload_warning(args.build)
    print()
    print("## Threading (MM_THREADS=%d: each stream's BLAS calls single-threaded; 2 cores)"
          % args.threads)
    print()
    streams(bench, env, bundled if bundled in models else None, bert4, 2.0)
    print()
    print("## Memory")
    print()
    memory(bench, env, [(m, 200 if m == bundled else 20) for m in models])
    print()
    print("## Demo pipeline")
    print()
    if bundled in models and os.path.exists(args.sample):
        pipeline(args.sample, bundled, env, 3, 20)
    else:
        print("(skipped: %s or the bundled model missing; run sh pipelines/make-sample.sh, "
              "or pass --sample)" % args.sample)
    print()
    anchor_and_targets(bench, args, env, bert4, resnet18, bundled if bundled in models else None)
    print()
    print("(bench.py took %.0f s)" % (time.monotonic() - t_start))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A transformer brought as a graph against libmm's BERT family path, same shapes.

    /usr/bin/python3 tests/bench/bench_text_graph.py [--build DIR] [--rounds R] [--repeats N]

BERT-4 (hidden 256, 4 layers, 4 heads, intermediate 1024, 64 tokens), random
weights, twice:
- the BERT family file bench.py times (bench.make_bert, Hugging Face names,
  mean pooling): /tmp/mm-bench/bert4.safetensors;
- a graph component of the same size: the TinyBert of
  tests/fixtures/graph/make_graph_fixtures.py (nn.TransformerEncoderLayer,
  GELU, attention mask, [CLS] output) through models/export_graph.py:
  /tmp/mm-bench/bert4-graph.safetensors.
Both timed as libmm's text encoder (mm-bench model FILE N, MM_BENCH_ONLY=text,
one thread), fp32 and, on CPUs with AVX512_BF16, bf16 (MM_BENCH_PRECISION),
alternating in R rounds; medians of the per-round medians and of the
per-round graph/family ratios.  The family path is the target: a user's
ONNX transformer should not pay for being a graph.  See tests/bench/README.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "graph"))
import bench  # noqa: E402  (make_bert, has_bf16; pins one thread before torch loads)
import export_graph  # noqa: E402
import make_graph_fixtures as fixtures  # noqa: E402
import mmfile  # noqa: E402
import torch  # noqa: E402


def make_graph(path):
    torch.manual_seed(0)
    net = fixtures.TinyBert(len(fixtures.VOCAB), h=256, layers=4, heads=4, inter=1024,
                            positions=64).eval()
    doc, tensors, _ = export_graph.module_to_component(
        net, "text", {"vocab": fixtures.VOCAB, "max_len": 64,
                      "inputs": ["token_ids", "attention_mask"], "pool": "first_token"})
    mmfile.save(path, tensors, {"version": 1, "name": "bert4-graph", "components": {"text": doc}})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=100)
    args = ap.parse_args()
    mmb = os.path.join(args.build, "tests", "bench", "mm-bench")
    os.makedirs(bench.WORK, exist_ok=True)
    family = os.path.join(bench.WORK, "bert4.safetensors")
    graph = os.path.join(bench.WORK, "bert4-graph.safetensors")
    if not os.path.exists(family):
        bench.make_bert(family, **bench.BERT4)
    make_graph(graph)
    precisions = ["fp32"] + (["bf16"] if bench.has_bf16() else [])
    env = dict(os.environ, MM_THREADS="1", MM_BENCH_ONLY="text")
    ms = {}
    for _ in range(args.rounds):
        for pr in precisions:
            for name, path in (("family", family), ("graph", graph)):
                out = subprocess.run([mmb, "model", path, str(args.repeats)], capture_output=True,
                                     text=True, check=True,
                                     env=dict(env, MM_BENCH_PRECISION=pr)).stdout
                ms.setdefault((pr, name), []).append(json.loads(out)["components"]["text"]["ms"])
    print("load average %.2f %.2f %.2f; %d rounds x %d calls; CPU: %s"
          % (os.getloadavg() + (args.rounds, args.repeats, bench.bench_graph.cpu_info())))
    print()
    print("| precision | BERT family ms | graph ms | graph / family |")
    print("|---|---:|---:|---:|")
    for pr in precisions:
        f, g = ms[(pr, "family")], ms[(pr, "graph")]
        print("| %s | %.3f | %.3f | %.2f |" % (pr, statistics.median(f), statistics.median(g),
                                              statistics.median([b / a for a, b in zip(f, g)])))


if __name__ == "__main__":
    main()

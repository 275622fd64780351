"""Discovery time: ACDC and exact edge scores against EAP-IG on the GPT-2-small shape.

    .venv/bin/python bench/bench_discovery.py [--prompts 16] [--tokens 32] [--steps 5] [--exact-edges 24]

Builds the GPT-2-small-shaped model of bench_patching.py (12 layers, 12 heads,
d_model 768, random weights from a config in memory) and its random-word prompts
with corrupted copies. All in this one process, one after the other:

1. EAP-IG (`steps` points) over every edge of the model: EMBED, 144 heads and 12 MLPs
   into every later head's q, k and v, every later MLP and LOGITS (32,491 edges).
   Measured.
2. ACDC on a subgraph (EMBED, the heads of the last `--acdc-layers` layers and the last
   MLP), pruned at a threshold, measured; its time per edge tried gives one pass.
   Also measured: evaluator passes on the whole graph with half its edges removed
   (what a pass costs midway through ACDC on the whole model). ACDC on every edge is
   extrapolated: at most one pass per edge, 32,491 passes.
3. Exact edge scores (one pass per edge) on `--exact-edges` edges spread over the
   graph, measured; every edge extrapolated. Spearman correlation of EAP-IG with them
   on those edges.

Every line says what was measured and what was extrapolated; ratios are of wall and
CPU seconds.
"""
from __future__ import annotations

import argparse
import os
import random
import sys

from bench_patching import gpt2_small, timed, word_prompts

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--acdc-layers", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--exact-edges", type=int, default=24)
    parser.add_argument("--midway-passes", type=int, default=4)
    args = parser.parse_args(argv)
    import torch
    from circ.compiler import ir
    from circ.runtime.analyses.acdc import acdc
    from circ.runtime.analyses.edge_attribution import edge_attribution
    from circ.runtime.analyses.edge_circuit import EdgeCircuit, graph_edges
    from circ.runtime.analyses.exact_edges import exact_edge_scores
    from circ.runtime.analyses.patch_sources import make_source

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    loaded = gpt2_small()
    shape = loaded.shape
    clean, corrupted = word_prompts(loaded, args.prompts, args.tokens)
    source = make_source(loaded, clean, ir.PatchSource("dataset", "corrupted"), {"corrupted": corrupted})
    metric = ir.Metric("ld", "logit_diff")
    nodes = ([ir.Node(0, "embed")] + [ir.Node(layer, "head", head) for layer in range(shape.n_layers)
                                      for head in range(shape.n_heads)]
             + [ir.Node(layer, "mlp") for layer in range(shape.n_layers)])
    edges = graph_edges(loaded, nodes)
    print(f"model: {loaded.name}, {shape.n_layers} layers x {shape.n_heads} heads, d_model {shape.d_model}; "
          f"prompts: {len(clean)} x {clean.tokens.shape[1]} tokens; corrupted source; {len(edges)} edges", flush=True)

    receivers = [n for n in nodes if n.kind != "embed"]
    ig, ig_time = timed(lambda: edge_attribution(loaded, clean, nodes, receivers, metric, source, steps=args.steps,
                                                 to_logits=True, show_progress=False)["values"])
    assert len(ig) == len(edges)
    print(f"EAP-IG (steps={args.steps}), all {len(ig)} edges, measured: {ig_time}", flush=True)

    last = shape.n_layers - args.acdc_layers
    sub_nodes = ([ir.Node(0, "embed")] + [n for n in nodes if n.kind == "head" and n.layer >= last]
                 + [ir.Node(shape.n_layers - 1, "mlp")])
    sub_edges = graph_edges(loaded, sub_nodes)
    pruned, acdc_time = timed(lambda: acdc(loaded, clean, sub_edges, metric, source, args.threshold,
                                           show_progress=False))
    tried = len(pruned["values"])
    per_edge = acdc_time.per(max(tried, 1))
    print(f"ACDC on a subgraph (EMBED, {len(sub_nodes) - 2} heads of layers {last}-{shape.n_layers - 1}, "
          f"L{shape.n_layers - 1}.MLP): {len(sub_edges)} edges, {tried} tried, {len(pruned['kept'])} kept at "
          f"threshold {args.threshold}, measured: {acdc_time}; per edge tried: {per_edge}", flush=True)

    half = random.Random(0).sample(edges, len(edges) // 2)
    circuits = [EdgeCircuit(loaded, batch, edges, metric, source) for batch in clean.batches(32)]

    def midway():
        for _ in range(args.midway_passes):
            for circuit in circuits:
                circuit.metric(half)

    _, midway_time = timed(midway)
    per_pass = midway_time.per(args.midway_passes)
    print(f"evaluator pass on the whole graph with {len(half)} edges removed, measured ({args.midway_passes} "
          f"passes): {per_pass} per pass", flush=True)
    acdc_all = per_pass.times(len(edges))
    print(f"ACDC on all {len(edges)} edges, extrapolated (every edge tried once, at the measured whole-graph pass): "
          f"{acdc_all} ({acdc_all.wall / 3600:.1f} h wall)", flush=True)

    sample = edges[::max(1, len(edges) // args.exact_edges)][:args.exact_edges]
    exact, exact_time = timed(lambda: exact_edge_scores(loaded, clean, sample, metric, source,
                                                        show_progress=False)["values"])
    exact_all = exact_time.per(len(sample)).times(len(edges))
    print(f"exact edge scores on {len(sample)} edges, measured: {exact_time}; all {len(edges)} edges, "
          f"extrapolated: {exact_all} ({exact_all.wall / 3600:.1f} h wall)", flush=True)
    keys = sorted(exact)
    print(f"Spearman(EAP-IG, exact) on those {len(keys)} edges: "
          f"{spearman([ig[k] for k in keys], [exact[k] for k in keys]):.3f}")

    print(f"ratios: ACDC (extrapolated) / EAP-IG (measured): {acdc_all.ratio(ig_time)}; "
          f"exact (extrapolated) / EAP-IG: {exact_all.ratio(ig_time)}; "
          f"ACDC per edge, subgraph / whole graph pass: {per_edge.ratio(per_pass)}")
    return 0


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values):
        out = [0] * len(values)
        for rank, index in enumerate(sorted(range(len(values)), key=values.__getitem__)):
            out[index] = rank
        return out

    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ranks(a), ranks(b))) / (n * (n * n - 1))


if __name__ == "__main__":
    sys.exit(main())

"""Edge scores against exact path patching.

    .venv/bin/python bench/bench_edges.py [--skip demo gpt2] [--prompts 16] [--tokens 32] [--sample 16]

1. demo: on the demo model, EAP and EAP-IG (steps=5) against path patching: sign
   agreement and Spearman rank correlation on the exact edges with the largest
   |effect| (q, k and v scores of a head summed to compare with path patching's
   whole-head receivers; edges into LOGITS have no exact counterpart here).
2. gpt2: on the GPT-2-small-shaped random-weight model of bench_patching.py (its
   builder and prompts), EAP-IG (steps=5) over every head/MLP/EMBED -> head q/k/v
   and MLP edge, timed; exact path patching of a sample of those edges (the
   strongest by |EAP-IG| and as many drawn at random, seeded), timed and
   extrapolated to every edge two ways: at the sample's cost per edge (one call per
   sender, so each call's clean and source runs are counted), and as a lower bound,
   one forward pass over the prompts (timed, the best of three) per edge, which any
   exact method needs; the ratio of EAP-IG's time to each, and the Spearman
   correlation of EAP-IG with exact on the sampled edges.
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from circ import api

SPEC = '''spec "edges-vs-exact"
model demo
data clean = mcq(n=16, seed=0)
data moved = clean.move_answer(seed=3)
metric ld = logit_diff(answer, wrong) at last
analysis eap   = edges(heads + mlps + embed, source=moved, target=clean, metric=ld)
analysis ig    = edges(heads + mlps + embed, source=moved, target=clean, metric=ld, method=eap_ig, steps=5)
analysis exact = path_patch(heads + mlps + embed, to=heads + mlps, source=moved, target=clean, metric=ld)
'''


def ranks(values: list[float]) -> list[int]:
    out = [0] * len(values)
    for rank, index in enumerate(sorted(range(len(values)), key=values.__getitem__)):
        out[index] = rank
    return out


def spearman(a: list[float], b: list[float]) -> float:
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ranks(a), ranks(b))) / (n * (n * n - 1))


def whole_heads(values: dict) -> dict:
    out: dict[str, float] = {}
    for key, value in values.items():
        src, dst = key.split("->")
        if dst != "LOGITS":
            key = f"{src}->{dst.rsplit('.', 1)[0] if dst.count('.') == 2 else dst}"
            out[key] = out.get(key, 0.0) + value
    return out


def demo() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "edges.circ"
        path.write_text(SPEC)
        analyses = api.run(path, progress=False).data["analyses"]
    exact = analyses["exact"]["values"]
    order = sorted(exact, key=lambda k: -abs(exact[k]))
    for name in ("eap", "ig"):
        estimate = whole_heads(analyses[name]["values"])
        for top in (10, 20, len(order)):
            keys = order[:top]
            agree = sum(estimate[k] * exact[k] > 0 for k in keys)
            rho = spearman([estimate[k] for k in keys], [exact[k] for k in keys])
            print(f"{name}: strongest {top} of {len(order)} exact edges: sign agreement {agree}/{top}, "
                  f"Spearman {rho:.3f}")


def gpt2(prompts: int, tokens: int, sample: int, steps: int = 5) -> None:
    import torch
    from bench_patching import gpt2_small, timed, word_prompts
    from circ.compiler import ir
    from circ.runtime.analyses.edge_attribution import edge_attribution
    from circ.runtime.analyses.patch_sources import make_source
    from circ.runtime.analyses.path_patching import path_patch
    from circ.runtime.execute.circuits import node_from_id

    loaded = gpt2_small()
    clean, corrupted = word_prompts(loaded, prompts, tokens)
    source = make_source(loaded, corrupted, ir.PatchSource("dataset", "clean"), {"clean": clean})
    shape, metric = loaded.shape, ir.Metric("ld", "logit_diff")
    nodes = [ir.Node(layer, "head", head) for layer in range(shape.n_layers) for head in range(shape.n_heads)]
    nodes += [ir.Node(layer, "mlp") for layer in range(shape.n_layers)]
    senders = [ir.Node(0, "embed")] + nodes
    print(f"\n[gpt2] {loaded.name}: {shape.n_layers} layers x {shape.n_heads} heads, d_model {shape.d_model}; "
          f"{len(clean)} prompts x {clean.tokens.shape[1]} tokens, clean activations patched into the corrupted run; "
          f"torch {torch.get_num_threads()} threads", flush=True)
    ig, ig_time = timed(lambda: edge_attribution(loaded, corrupted, senders, nodes, metric, source, steps=steps,
                                                 show_progress=False))
    scores = ig["values"]
    print(f"  EAP-IG (steps={steps}), {len(scores)} edges: {ig_time}", flush=True)
    ranked = sorted(scores, key=lambda k: -abs(scores[k]))
    strongest = ranked[:sample // 2]
    picked = strongest + random.Random(0).sample(ranked[sample // 2:], sample - len(strongest))
    by_sender: dict[str, list[str]] = {}
    for key in picked:
        by_sender.setdefault(key.split("->")[0], []).append(key)
    exact: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for sender, keys in by_sender.items():
        receivers = [node_from_id(key.split("->")[1]) for key in keys]
        measured = path_patch(loaded, corrupted, [node_from_id(sender)], receivers, metric, source,
                              show_progress=False)["values"]
        exact.update({key: measured[key] for key in keys})
    exact_wall, exact_cpu = time.perf_counter() - wall, time.process_time() - cpu
    forward = []
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            loaded.bridge(corrupted.tokens)
            forward.append(time.perf_counter() - start)
    per_edge = exact_wall / len(picked) * len(scores)
    lower = min(forward) * len(scores)
    print(f"  path patching, {len(picked)} edges from {len(by_sender)} senders, one call per sender: "
          f"{exact_wall:.2f} s wall, {exact_cpu:.2f} s CPU; every edge at that cost: {per_edge / 3600:.1f} h wall",
          flush=True)
    print(f"  one forward pass over the prompts: {min(forward):.3f} s; every edge at one pass each (lower bound): "
          f"{lower / 3600:.2f} h wall")
    print(f"  EAP-IG is {per_edge / ig_time.wall:.0f}x faster than path patching of every edge at the sample's "
          f"cost, {lower / ig_time.wall:.0f}x at the lower bound (wall; target >= 100x)")
    for name, keys in (("strongest", strongest), ("random", picked[len(strongest):]), ("all sampled", picked)):
        rho = spearman([scores[k] for k in keys], [exact[k] for k in keys])
        agree = sum(scores[k] * exact[k] > 0 for k in keys)
        print(f"  {name} {len(keys)} edges: Spearman(EAP-IG, exact) {rho:.3f} (target >= 0.9), "
              f"sign agreement {agree}/{len(keys)}")
    for key in picked:
        print(f"    {key}: exact {exact[key]:+.3e}, EAP-IG {scores[key]:+.3e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=["demo", "gpt2"])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--sample", type=int, default=16, help="edges measured exactly on the GPT-2 shape")
    args = parser.parse_args(argv)
    if "demo" not in args.skip:
        demo()
    if "gpt2" not in args.skip:
        gpt2(args.prompts, args.tokens, args.sample)


if __name__ == "__main__":
    main()

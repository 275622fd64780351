"""Faithfulness of growing prefixes of a ranking: the curve of `curve(A, ...)` and the
greedy growth of `discover(A, faithfulness=F)`, over nodes or over edges.

Nodes (A scores nodes): a prefix keeps the first k heads and MLPs and replaces every
other head and MLP from the ablation source exactly as faithfulness.py does, so each
point is what faithfulness() of that prefix gives. Edges (A is an edges analysis): a
prefix keeps the first k edges clean and ablates every other edge of A's graph, by the
edge-circuit evaluator (edge_circuit.py). Either way

    f(k) = (m(first k kept) - m(none kept)) / (m(clean) - m(none kept))

with m the raw metric's mean over the prompts. The curve also measures `random` seeded
random orders of the same items, averaged point by point (mean and standard error over
the orders); its areas are those of curve_areas.py.
"""
from __future__ import annotations

import random
from typing import Callable

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    check_nodes,
    mean_and_stderr,
    mlp_out_hook,
    node_site,
    progress,
    run_cached,
    run_hooked,
    z_hook,
)
from circ.runtime.analyses.curve_areas import areas, curve_sizes, listed_sizes, size_at
from circ.runtime.analyses.faithfulness import ablation_hooks
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.node_stats import ratio_of_means

RANKED_KINDS = ("head", "mlp")  # the embeddings are never ablated, so never ranked
Measure = Callable[[list[list]], dict]  # circuits (prefixes) -> {"faithfulness", "stderr", "clean", "all_ablated"}


def faithfulness_curve(ranking: list, measure: Measure, *, points: int | None, random_orders: int, seed: int,
                       target: float, sizes: tuple = ()) -> dict:
    """The ranking's curve and the random baseline's, their areas and sizes at target:
    measured at `points` evenly spaced sizes, or at the listed `sizes`."""
    sizes = listed_sizes(len(ranking), sizes) if sizes else curve_sizes(len(ranking), points)
    shuffler = random.Random(seed)
    orders = [list(ranking)] + [shuffler.sample(ranking, len(ranking)) for _ in range(random_orders)]
    measured = measure([order[:k] for order in orders for k in sizes])
    curves = [measured["faithfulness"][i * len(sizes):(i + 1) * len(sizes)] for i in range(len(orders))]
    own = _curve_entry(sizes, curves[0], measured["stderr"][:len(sizes)], target)
    baseline = _baseline(sizes, curves[1:], target)
    return {"ranked": len(ranking), "sizes": sizes,
            "fractions": [k / len(ranking) if ranking else 0.0 for k in sizes], "target": target,
            **own, "random": {**baseline, "orders": random_orders, "seed": seed},
            "clean": measured["clean"], "all_ablated": measured["all_ablated"]}


def _curve_entry(sizes, faithfulness, stderr, target) -> dict:
    cpr, cmd = areas(sizes, faithfulness)
    return {"faithfulness": faithfulness, "stderr": stderr, "cpr": cpr, "cmd": cmd,
            "size_at_target": size_at(sizes, faithfulness, target)}


def _baseline(sizes, curves: list[list], target: float) -> dict:
    """Point-wise mean and standard error over random orders, and each area's."""
    if not curves or any(f is None for curve in curves for f in curve):
        return {"faithfulness": [None] * len(sizes), "stderr": [None] * len(sizes), "cpr": None,
                "cpr_stderr": None, "cmd": None, "cmd_stderr": None, "size_at_target": None}
    points = [mean_and_stderr([curve[i] for curve in curves]) for i in range(len(sizes))]
    mean = [p[0] for p in points]
    cprs, cmds = zip(*(areas(sizes, curve) for curve in curves))
    cpr, cpr_stderr = mean_and_stderr(list(cprs))
    cmd, cmd_stderr = mean_and_stderr(list(cmds))
    return {"faithfulness": mean, "stderr": [p[1] for p in points], "cpr": cpr, "cpr_stderr": cpr_stderr,
            "cmd": cmd, "cmd_stderr": cmd_stderr, "size_at_target": size_at(sizes, mean, target)}


def grow(ranking: list, measure: Measure, target: float) -> dict:
    """The shortest prefix of `ranking` whose faithfulness reaches `target`, assuming
    faithfulness grows with the prefix: sizes 1, 2, 4, ... and the whole ranking are
    measured in one pass, then the gap between the last short one and the first that
    reaches is halved, one pass per step. The size returned is always measured to reach
    the target (or is the whole ranking, with `reached` false, when nothing does)."""
    measured: dict[int, float | None] = {}

    def measure_sizes(sizes: list[int]) -> None:
        measured.update(zip(sizes, measure([ranking[:k] for k in sizes])["faithfulness"]))

    whole = len(ranking)
    measure_sizes(sorted({min(2 ** i, whole) for i in range(whole.bit_length() + 1)} | {whole}))
    reaching = [k for k in sorted(measured) if measured[k] is not None and measured[k] >= target]
    if not reaching:
        return {"size": whole, "value": measured.get(whole), "reached": False, "target": target,
                "measured": _listed(measured)}
    high = reaching[0]
    low = max((k for k in measured if k < high), default=0)
    while high - low > 1:
        middle = (low + high) // 2
        measure_sizes([middle])
        reached = measured[middle] is not None and measured[middle] >= target
        low, high = (low, middle) if reached else (middle, high)
    return {"size": high, "value": measured[high], "reached": True, "target": target,
            "measured": _listed(measured)}


def _listed(measured: dict) -> list[dict]:
    return [{"size": k, "faithfulness": measured[k]} for k in sorted(measured)]


def node_measure(loaded, prompts, metric: ir.Metric, source, *, batch_size: int = 32,
                 show_progress: bool = True, description: str = "curve") -> Measure:
    """Faithfulness of node lists (heads and MLPs kept, every other one ablated)."""

    def measure(circuits: list[list[ir.Node]]) -> dict:
        check_nodes({node for circuit in circuits for node in circuit}, loaded.shape, RANKED_KINDS, description)
        return measure_circuits(loaded, prompts, circuits, metric, source, batch_size=batch_size,
                                show_progress=show_progress, description=description)

    return measure


def measure_circuits(loaded, prompts, circuits: list[list[ir.Node]], metric: ir.Metric, source, *,
                     batch_size: int = 32, show_progress: bool = True, description: str = "curve") -> dict:
    """Faithfulness of each node list, with its standard error over prompts (delta
    method); one clean and one all-ablated run per batch serve every circuit."""
    shape = loaded.shape
    hooks = ablated_hooks(shape, [], "nodes")
    raw = ir.Metric(metric.name, metric.kind, metric.position)
    clean, ablated, kept = [], [], [[] for _ in circuits]
    with progress((2 + len(circuits)) * len(prompts), description, show_progress) as bar:
        for batch in prompts.batches(batch_size):
            clean_logits, _ = run_cached(loaded.bridge, batch.tokens, [])
            replacement = source.fetch(batch, hooks).activations

            def score(heads: set, mlps: set) -> torch.Tensor:
                logits = run_hooked(loaded.bridge, batch.tokens, ablation_hooks(replacement, shape, heads, mlps))
                return metric_values(logits, batch, raw, clean_logits=clean_logits).double().cpu()

            clean.append(metric_values(clean_logits, batch, raw, clean_logits=clean_logits).double().cpu())
            ablated.append(score(set(), set()))
            for index, circuit in enumerate(circuits):
                if not circuit:
                    kept[index].append(ablated[-1])
                    continue
                kept[index].append(score({(n.layer, n.head) for n in circuit if n.kind == "head"},
                                         {n.layer for n in circuit if n.kind == "mlp"}))
            bar.update((2 + len(circuits)) * len(batch))
    return _normalised(clean, ablated, kept)


def ablated_hooks(shape: ir.Shape, ranking: list, level: str) -> list[str]:
    """The hooks whose ablated values measuring prefixes of `ranking` reads from the
    source: every head's and MLP's output for nodes, the edges' senders' for edges."""
    if level == "edges":
        return sorted({node_site(sender, shape).hook for sender, _ in ranking})
    hooks = [z_hook(layer) for layer in range(shape.n_layers)]
    return hooks + ([mlp_out_hook(layer) for layer in range(shape.n_layers)] if shape.has_mlp else [])


def edge_measure(loaded, prompts, edges: list, metric: ir.Metric, source, *, batch_size: int = 32,
                 show_progress: bool = True, description: str = "curve") -> Measure:
    """Faithfulness of edge lists: each kept clean, every other edge of `edges` ablated."""
    from circ.runtime.analyses.edge_circuit import EdgeCircuit

    raw = ir.Metric(metric.name, metric.kind, metric.position)

    def measure(circuits: list[list]) -> dict:
        clean, ablated, kept = [], [], [[] for _ in circuits]
        with progress((2 + len(circuits)) * len(prompts), description, show_progress) as bar:
            for batch in prompts.batches(batch_size):
                evaluator = EdgeCircuit(loaded, batch, edges, raw, source)
                clean.append(evaluator.clean.double().cpu())
                ablated.append(evaluator.metric(edges).double().cpu())
                for index, circuit in enumerate(circuits):
                    chosen = set(circuit)
                    kept[index].append(ablated[-1] if not chosen else
                                       evaluator.metric([e for e in edges if e not in chosen]).double().cpu())
                bar.update((2 + len(circuits)) * len(batch))
        return _normalised(clean, ablated, kept)

    return measure


def _normalised(clean: list, ablated: list, kept: list[list]) -> dict:
    """Per circuit: mean(kept - none kept) / mean(clean - none kept) and its standard error."""
    clean_all, ablated_all = torch.cat(clean), torch.cat(ablated)
    faithfulness, stderr = [], []
    for column in kept:
        value, error = ratio_of_means(torch.cat(column) - ablated_all, clean_all - ablated_all)
        faithfulness.append(value)
        stderr.append(error)
    return {"faithfulness": faithfulness, "stderr": stderr,
            "clean": float(clean_all.mean()), "all_ablated": float(ablated_all.mean())}

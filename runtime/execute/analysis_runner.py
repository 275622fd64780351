"""Run one analysis of a spec: resolve its nodes and datasets, call its kernel, and
shape the kernel's output into the results.json entry of docs/results.md."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from circ.compiler import ir


@dataclass
class AnalysisContext:
    """What an analysis may read: the model, tokenised datasets, shared patch
    sources, nodes chosen so far, and run settings."""

    loaded: object
    spec: ir.Spec
    datasets: dict            # name -> Prompts
    source_for: Callable      # (PatchSource, target Prompts) -> source object
    nodes_of: Callable        # NodeSet -> list[ir.Node]
    batch_size: int
    show_progress: bool
    recorded_attention: Callable = lambda dataset, query: None  # (dataset, Position) -> AttentionSums or None
    results: dict = field(default_factory=dict)  # the results entries of analyses run so far, by name
    ranking_measure: Callable | None = None  # stands in for ranking_measure() (the Ray executor spreads it)


def _source_entry(source: ir.PatchSource | None) -> dict | None:
    if source is None:
        return None
    return {"kind": source.kind, "dataset": source.dataset, "seed": source.seed}


def _common(analysis: ir.Analysis) -> dict:
    return {"kind": analysis.kind, "dataset": analysis.dataset, "metric": analysis.metric,
            "line": analysis.span.line}


def _attribute(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.dla import attribute

    out = attribute(ctx.loaded, ctx.datasets[a.dataset], ctx.nodes_of(a.nodes), ctx.spec.metric(a.metric),
                    position=a.option("position"), batch_size=ctx.batch_size, show_progress=ctx.show_progress)
    return {**out, "position": str(a.option("position"))} if a.option("position") else out


def _patch(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.patching import patch

    target = ctx.datasets[a.dataset]
    kwargs = {}
    if a.option("method", "exact") != "exact":
        kwargs = {"method": a.option("method"), "verify": a.option("verify", 0), "steps": a.option("steps", 1)}
    out = patch(ctx.loaded, target, ctx.nodes_of(a.nodes), ctx.spec.metric(a.metric),
                ctx.source_for(a.source, target), effect=a.option("effect", "total"),
                position=a.option("position", ir.ALL), batch_size=ctx.batch_size,
                show_progress=ctx.show_progress, **kwargs)
    return {**out, "effect": a.option("effect", "total"), "method": a.option("method", "exact"),
            "position": str(a.option("position", ir.ALL)), "source": _source_entry(a.source)}


def _path_patch(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.path_patching import path_patch

    target = ctx.datasets[a.dataset]
    receivers = ctx.nodes_of(a.receivers)
    out = path_patch(ctx.loaded, target, ctx.nodes_of(a.nodes), receivers, ctx.spec.metric(a.metric),
                     ctx.source_for(a.source, target), position=a.option("position", ir.ALL),
                     batch_size=ctx.batch_size, show_progress=ctx.show_progress)
    return {**out, "receivers": [n.id for n in receivers], "source": _source_entry(a.source)}


def _edges(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    method = a.option("method", "eap")
    if method in ("exact", "acdc"):
        return _removed_edges(a, ctx, method)
    from circ.runtime.analyses.edge_attribution import edge_attribution

    target = ctx.datasets[a.dataset]
    nodes = ctx.nodes_of(a.nodes)
    receivers = [n for n in nodes if n.kind in ("head", "mlp")]
    steps = a.option("steps", 1) if method == "eap_ig" else 1
    out = edge_attribution(ctx.loaded, target, nodes, receivers, ctx.spec.metric(a.metric),
                           ctx.source_for(a.source, target), position=a.option("position", ir.ALL),
                           batch_size=ctx.batch_size, show_progress=ctx.show_progress, steps=steps,
                           to_logits=True)
    return {**out, "method": method, "steps": steps,
            "position": str(a.option("position", ir.ALL)), "source": _source_entry(a.source)}


def _removed_edges(a: ir.Analysis, ctx: AnalysisContext, method: str) -> dict:
    """Edge scores measured by removing edges (`exact`) or ACDC's pruning (`acdc`). The
    graph is every edge among the nodes; with `receivers` set (the Ray executor's
    chunks), the nodes are the senders and the graph's nodes are the receivers."""
    from circ.runtime.analyses.acdc import acdc
    from circ.runtime.analyses.edge_circuit import graph_edges
    from circ.runtime.analyses.exact_edges import exact_edge_scores

    target = ctx.datasets[a.dataset]
    nodes = ctx.nodes_of(a.nodes)
    edges = graph_edges(ctx.loaded, ctx.nodes_of(a.receivers) if a.receivers is not None else nodes)
    if a.receivers is not None:
        edges = [e for e in edges if e[0] in set(nodes)]
    metric, source = ctx.spec.metric(a.metric), ctx.source_for(a.source, target)
    if method == "exact":
        out = exact_edge_scores(ctx.loaded, target, edges, metric, source, batch_size=ctx.batch_size,
                                show_progress=ctx.show_progress)
    else:
        out = acdc(ctx.loaded, target, edges, metric, source, a.option("threshold"), batch_size=ctx.batch_size,
                   show_progress=ctx.show_progress)
    return {**out, "method": method, "position": "all", "source": _source_entry(a.source)}


def _attention(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.attention import attention
    from circ.runtime.analyses.attention_scores import attention_scores

    heads = [n for n in ctx.nodes_of(a.nodes) if n.kind == "head"]
    if a.option("score") is not None:
        return attention_scores(ctx.loaded, ctx.datasets[a.dataset], heads, score=a.option("score"),
                                batch_size=ctx.batch_size, show_progress=ctx.show_progress)
    query = a.option("query", ir.LAST)
    return attention(ctx.loaded, ctx.datasets[a.dataset], heads, query=query, explore=a.option("explore", 8),
                     batch_size=ctx.batch_size, show_progress=ctx.show_progress,
                     recorded=ctx.recorded_attention(a.dataset, query))


def _faithfulness(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.faithfulness import faithfulness

    target = ctx.datasets[a.dataset]
    out = faithfulness(ctx.loaded, target, ctx.nodes_of(a.nodes), ctx.spec.metric(a.metric),
                       ctx.source_for(a.source, target), batch_size=ctx.batch_size,
                       show_progress=ctx.show_progress)
    circuit = a.nodes.analysis if isinstance(a.nodes, ir.Select) else None
    return {**out, "circuit": circuit, "source": _source_entry(a.source)}


def _curve(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.faithfulness_curve import faithfulness_curve

    target, ranked_by = ctx.datasets[a.dataset], a.nodes.analysis
    measure_along = ctx.ranking_measure or ranking_measure
    ranking, measure, ids, level = measure_along(ranked_by, ctx.results[ranked_by], ctx.loaded, target,
                                                 ctx.spec.metric(a.metric), ctx.source_for(a.source, target),
                                                 batch_size=ctx.batch_size, show_progress=ctx.show_progress)
    out = faithfulness_curve(ranking, measure, points=a.option("points"), sizes=a.option("sizes", ()),
                             random_orders=a.option("random", 5), seed=a.option("seed", 0),
                             target=a.option("target", 0.9))
    return {**out, "ranking": ids, "level": level, "ranked_by": ranked_by, "n": len(target),
            "source": _source_entry(a.source)}


def ranking_measure(name: str, ranked_by: dict, loaded, prompts, metric: ir.Metric, source, *, batch_size: int,
                    show_progress: bool, description: str = "curve") -> tuple:
    """(ranking, measure, ranking's ids, level) of analysis `name`'s results `ranked_by`: its
    edges by |value| measured by the edge-circuit evaluator when it is an edges
    analysis, else its heads and MLPs by |value| measured by node ablation."""
    from circ.runtime.analyses.common import AnalysisError
    from circ.runtime.analyses.faithfulness_curve import edge_measure, node_measure
    from circ.runtime.execute.circuits import edge_from_key, ranked_edges, ranked_nodes

    values = ranked_by["values"]
    if ranked_by["kind"] == "edges":
        keys = ranked_edges(values)
        ranking = [edge_from_key(key) for key in keys]
        return ranking, edge_measure(loaded, prompts, ranking, metric, source, batch_size=batch_size,
                                     show_progress=show_progress, description=description), keys, "edges"
    ranking = ranked_nodes(values)
    if not ranking:
        raise AnalysisError(f"`{name}` scores no head or MLP to rank (the embeddings are never ablated)")
    return ranking, node_measure(loaded, prompts, metric, source, batch_size=batch_size,
                                 show_progress=show_progress, description=description), \
        [n.id for n in ranking], "nodes"


def _ablate(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.ablation import ablate

    target = ctx.datasets[a.dataset]
    out = ablate(ctx.loaded, target, ctx.nodes_of(a.nodes), ctx.spec.metric(a.metric),
                 ctx.source_for(a.source, target), batch_size=ctx.batch_size,
                 show_progress=ctx.show_progress)
    return {**out, "source": _source_entry(a.source)}


def _subspace(a: ir.Analysis, ctx: AnalysisContext) -> dict:
    from circ.runtime.analyses.subspace import subspace

    evals = {name: ctx.datasets[name] for name in a.option("eval", ())}
    parts = tuple(a.option("parts", ("q", "k", "v")))
    ranks = tuple(a.option("ranks", (1, 2, 4, "full")))
    out = subspace(ctx.loaded, ctx.datasets[a.dataset], ctx.nodes_of(a.nodes),
                   ctx.spec.metric(a.metric), parts=parts, ranks=ranks, evals=evals,
                   batch_size=ctx.batch_size, show_progress=ctx.show_progress, fit_name=a.dataset)
    return {**out, "parts": list(parts), "ranks": list(ranks), "eval": list(evals)}


KERNELS = {
    "attribute": _attribute,
    "patch": _patch,
    "path_patch": _path_patch,
    "edges": _edges,
    "attention": _attention,
    "faithfulness": _faithfulness,
    "curve": _curve,
    "ablate": _ablate,
    "subspace": _subspace,
}


def run_analysis(analysis: ir.Analysis, ctx: AnalysisContext) -> dict:
    """The results entry of one analysis."""
    return {**_common(analysis), **KERNELS[analysis.kind](analysis, ctx)}

"""Exact edge scores (`edges(..., method=exact)`): each edge's effect measured by
removing that edge alone (`edge_circuit.py`): its sender's output is replaced by the
ablation source's in that one receiver's input, everything else runs clean.

    value["SRC->DST"] = metric(clean) - metric(only SRC->DST removed)

negated for a lower-is-better metric (positive: the edge helps), averaged over
prompts with its standard error and prompt count (`node_stats`). For a head's q, k or
v input and an MLP this is exactly `path_patch` of the sender to that receiver; an
edge into LOGITS is the sender's direct effect. One forward pass per edge and batch.
"""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError, progress
from circ.runtime.analyses.edge_circuit import EdgeCircuit, edge_key, receiver_order, stream_order
from circ.runtime.analyses.metrics import helps_sign
from circ.runtime.analyses.node_stats import PerPrompt, summary


def exact_edge_scores(loaded, prompts, edges, metric: ir.Metric, source, *, batch_size: int = 32,
                      show_progress: bool = True) -> dict:
    """{"values": {"SRC->DST": effect}, "stderr", "n", "per_prompt", "baseline": {"clean": m}}
    for every edge of `edges` (from `edge_circuit.graph_edges`), sender by sender along
    the residual stream, each sender's receivers in stream order (LOGITS last)."""
    if metric.normalized:
        raise AnalysisError(f'exact edge scores are raw metric changes; use a metric that is not normalised, '
                            f'not "{metric.name}"')
    edges = sorted(edges, key=lambda e: (stream_order(e[0]), receiver_order(e[1])))
    per_prompt = PerPrompt()
    with progress(len(prompts) * len(edges), "exact edges", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            circuit = EdgeCircuit(loaded, batch, edges, metric, source)
            per_prompt.add("clean", circuit.clean)
            for edge in edges:
                per_prompt.add(edge, circuit.metric([edge]))
                bar.update(len(batch))
    clean = per_prompt.of("clean")
    sign = helps_sign(metric)
    out = summary({edge_key(e): sign * (clean - per_prompt.of(e)) for e in edges})
    return {**out, "baseline": {"clean": float(clean.mean())}}

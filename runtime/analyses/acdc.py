"""ACDC (Conmy et al. 2023, automatic circuit discovery): prune a graph's edges one by
one, keeping an edge only when removing it would cost the metric at least a threshold.

The circuit starts as the whole graph (`edge_circuit.graph_edges`). Receivers are
visited in reverse topological order: LOGITS, then layer by layer from the last, each
layer's MLP before its heads, heads from the highest index down, a head's v, k, then
q input. Each receiver's incoming edges are tried from the latest sender back to EMBED
(senders in reverse residual-stream order). Trying an edge evaluates the current
circuit without it (`edge_circuit.EdgeCircuit`, one forward pass per batch):

    drop = metric(current circuit) - metric(current circuit without the edge)

(mean over prompts, negated for a lower-is-better metric such as kl or loss, so a
positive drop means the edge helps). When drop < threshold the edge is removed and
the circuit's metric becomes the new one; otherwise the edge stays. An edge whose
removal helps (a negative drop) is always removed, as in ACDC without absolute
values. When the graph holds every head and MLP of the model and a node no longer
sends anything (all its outgoing edges removed), its incoming edges are removed
without being tried, as ACDC does: they cannot change the metric.

Each decision depends on every decision before it, so the passes run one after the
other (one batch at a time inside a pass).

Returns, in the shape of the other edge scores (docs/results.md): `values` the drop
of every edge tried, measured when it was tried (helps-signed, mean over prompts,
with `stderr`, `n` and `per_prompt`), `kept` the keys of the edges ACDC kept (graph
order), `baseline` the clean metric and the final circuit's (`circuit`), and
`untried` the count of edges removed without a pass.
"""
from __future__ import annotations

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError, progress
from circ.runtime.analyses.edge_circuit import (
    LOGITS,
    EdgeCircuit,
    edge_key,
    receiver_node,
    receiver_order,
    stream_order,
)
from circ.runtime.analyses.metrics import helps_sign
from circ.runtime.analyses.node_stats import summary


def acdc(loaded, prompts, edges, metric: ir.Metric, source, threshold: float, *, batch_size: int = 32,
         show_progress: bool = True) -> dict:
    """ACDC's pruning of `edges` (from `edge_circuit.graph_edges`) at `threshold`."""
    if metric.normalized:
        raise AnalysisError(f'ACDC compares raw metric values; use a metric that is not normalised, '
                            f'not "{metric.name}"')
    edges = list(edges)
    circuits = [EdgeCircuit(loaded, batch, edges, metric, source) for batch in prompts.batches(batch_size)]
    current = torch.cat([c.clean for c in circuits])
    clean = current.clone()
    sign = helps_sign(metric)
    removed: list = []
    drops: dict = {}
    sends = _outgoing(edges)
    complete = _complete(loaded, edges)
    untried = 0
    with progress(len(edges), "acdc", show_progress) as bar:
        for receiver, senders in pruning_order(edges):
            if complete and receiver != LOGITS and sends.get(receiver_node(receiver)) == set():
                removed += [(s, receiver) for s in senders]
                untried += len(senders)
                bar.update(len(senders))
                continue
            for sender in senders:
                edge = (sender, receiver)
                trial = torch.cat([c.metric(removed + [edge]) for c in circuits])
                drop = sign * (current - trial)
                drops[edge_key(edge)] = drop
                if float(drop.mean()) < threshold:
                    removed.append(edge)
                    sends[sender].discard(receiver)
                    current = trial
                bar.update(1)
    gone = set(removed)
    out = summary(drops)
    return {**out, "kept": [edge_key(e) for e in edges if e not in gone], "untried": untried,
            "threshold": threshold,
            "baseline": {"clean": float(clean.mean()), "circuit": float(current.mean())}}


def pruning_order(edges) -> list[tuple]:
    """[(receiver, [senders])]: receivers in reverse topological order, each one's
    senders latest first (the order ACDC tries them in)."""
    incoming: dict = {}
    for sender, receiver in edges:
        incoming.setdefault(receiver, []).append(sender)
    receivers = sorted(incoming, key=receiver_order, reverse=True)
    return [(r, sorted(incoming[r], key=stream_order, reverse=True)) for r in receivers]


def _outgoing(edges) -> dict:
    """{sender node: set of receivers it still sends to}."""
    sends: dict = {}
    for sender, receiver in edges:
        sends.setdefault(sender, set()).add(receiver)
    return sends


def _complete(loaded, edges) -> bool:
    """Whether the graph holds every head and MLP of the model, so that a node with no
    outgoing edge left in the graph sends nothing at all."""
    shape = loaded.shape
    nodes = {s for s, _ in edges}
    heads = {ir.Node(layer, "head", head) for layer in range(shape.n_layers) for head in range(shape.n_heads)}
    mlps = {ir.Node(layer, "mlp") for layer in range(shape.n_layers)} if shape.has_mlp else set()
    return heads | mlps <= nodes

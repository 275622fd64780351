"""The edge-circuit evaluator: the metric of a model in which only some edges carry
the clean run, every other edge its ablated value.

An edge runs from a sender (EMBED, a head, an MLP) to a receiver: a head's q, k or v
input (`ir.Node(layer, "head_input", head, part)`), an MLP's input (`ir.Node(layer,
"mlp")`) or `LOGITS`, the unembedding's input. `graph_edges` lists every edge among a
set of nodes, in the residual stream's order.

One forward pass on the clean prompts evaluates a circuit (ACDC's and auto-circuit's
semantics): every receiver whose incoming edges are not all kept reads

    receiver_in = current receiver_in - sum over removed edges s->receiver of (out_s - ablated_out_s)

where out_s is the sender's output in this same patched run (so removals compose:
a receiver changed upstream changes what its own outgoing edges carry) and
ablated_out_s is the sender's output in the ablation source (`patch_sources.py`: a
corrupt or other dataset, resample, mean or zero), at every position. A head's output
is its z times its W_O (the attention bias b_O is no sender and always stays); EMBED's
is the token plus position embedding (`blocks.0.hook_resid_pre`); an MLP's is its
`hook_mlp_out`. A head's q (k, v) is recomputed from its corrected input through the
block's first LayerNorm and W_Q, b_Q (W_K, W_V); an MLP's input is corrected at its
LayerNorm's input and LOGITS' at the final LayerNorm's, leaving the residual stream
itself untouched. Receivers with every edge kept run as in the clean model, so
keeping every edge gives the clean metric exactly; removing every edge gives the
ablation source's own run (for a dataset source, that run's metric). Edges among
nodes outside the graph always stay (a subgraph is evaluated inside the full model).

Node granularity: `node_edges(edges, kept_nodes)` keeps the edges whose sender is a
kept node or EMBED and whose receiver belongs to a kept node (a head for its q, k, v)
or is LOGITS; evaluated, that is ablating every other node's output.

    batch_circuit = EdgeCircuit(loaded, batch, edges, metric, source)
    batch_circuit.clean                       # float [batch]: the clean metric
    batch_circuit.metric(removed)             # float [batch]: with `removed` edges ablated
    circuit_metric(loaded, prompts, edges, kept, metric, source)   # float [n] over all batches

Metrics are raw (`metrics.metric_values`; kl is measured against the clean run).
"""
from __future__ import annotations

from typing import Iterable, Union

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    EMBED_HOOK,
    AnalysisError,
    check_nodes,
    mlp_out_hook,
    node_site,
    part_hook,
    progress,
    run_hooked,
    z_hook,
)
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.path_patching import precedes

LOGITS = "LOGITS"
Receiver = Union[ir.Node, str]
Edge = tuple[ir.Node, Receiver]


def edge_key(edge: Edge) -> str:
    """"SRC->DST", as results.json keys edges (`L0.H1->L1.H2.q`, `L1.MLP->LOGITS`)."""
    sender, receiver = edge
    return f"{sender.id}->{receiver if receiver == LOGITS else receiver.id}"


def graph_edges(loaded, nodes: Iterable[ir.Node], *, to_logits: bool = True) -> list[Edge]:
    """Every edge among `nodes` (heads, MLPs, EMBED) and, with `to_logits`, from each
    of them to LOGITS; a head receives at its q, k and v apart. Ordered by receiver
    along the residual stream (LOGITS last), then by sender."""
    shape = loaded.shape
    nodes = check_nodes(nodes, shape, ("head", "mlp", "embed"), "edge circuits")
    nodes = sorted(dict.fromkeys(nodes), key=stream_order)
    parallel = bool(getattr(loaded.bridge.cfg, "parallel_attn_mlp", False))
    receivers: list[Receiver] = []
    for node in nodes:
        if node.kind == "head":
            receivers += [ir.Node(node.layer, "head_input", node.head, part) for part in "qkv"]
        elif node.kind == "mlp":
            receivers.append(node)
    edges = [(s, r) for r in receivers for s in nodes if precedes(s, r, parallel)]
    if to_logits:
        edges += [(s, LOGITS) for s in nodes]
    return edges


def stream_order(node: ir.Node) -> tuple:
    """EMBED, then layer by layer each layer's heads (and their inputs) before its MLP."""
    if node.kind == "embed":
        return (-1, 0, 0, "")
    return (node.layer, node.kind == "mlp", node.head or 0, node.part or "")


def receiver_node(receiver: Receiver) -> Receiver:
    """The node a receiver belongs to: a head for its q, k or v input."""
    if receiver != LOGITS and receiver.kind == "head_input":
        return ir.Node(receiver.layer, "head", receiver.head)
    return receiver


def node_edges(edges: Iterable[Edge], kept_nodes: Iterable[ir.Node]) -> set[Edge]:
    """The edges a node-level circuit keeps: sender kept or EMBED, receiver's node kept
    or LOGITS."""
    kept = set(kept_nodes)
    return {(s, r) for s, r in edges
            if (s.kind == "embed" or s in kept) and (r == LOGITS or receiver_node(r) in kept)}


class EdgeCircuit:
    """One batch of clean prompts with its ablation values fetched, ready for any
    number of passes with different removed edges."""

    def __init__(self, loaded, batch, edges: Iterable[Edge], metric: ir.Metric, source):
        self.loaded, self.batch, self.metric_spec = loaded, batch, metric
        self.edges = list(edges)
        shape = loaded.shape
        senders = list(dict.fromkeys(s for s, _ in self.edges))
        fetched = source.fetch(batch, sorted({node_site(s, shape).hook for s in senders}))
        self._ablated = fetched.activations
        bridge = loaded.bridge
        with torch.no_grad():
            self.W_O = bridge.W_O.detach()
            self._weights = {part: _input_weights(bridge, part) for part in "qkv"}
        self.clean_logits = run_hooked(bridge, batch.tokens, [])
        self.clean = metric_values(self.clean_logits, batch, metric, clean_logits=self.clean_logits)

    def metric(self, removed: Iterable[Edge]) -> torch.Tensor:
        """float [batch]: the metric with `removed` edges carrying their ablated values."""
        removed = list(removed)
        if not removed:
            return self.clean.clone()
        logits = run_hooked(self.loaded.bridge, self.batch.tokens, self._hooks(removed))
        return metric_values(logits, self.batch, self.metric_spec, clean_logits=self.clean_logits)

    def _hooks(self, removed: list[Edge]) -> list:
        shape = self.loaded.shape
        by_receiver: dict[Receiver, list[ir.Node]] = {}
        for sender, receiver in removed:
            by_receiver.setdefault(receiver, []).append(sender)
        senders = {s for s, _ in removed}
        changes: dict[ir.Node, torch.Tensor] = {}  # sender -> out_s - ablated_out_s in this run
        streams: dict[int, torch.Tensor] = {}  # layer -> its residual stream input in this run
        hooks = []

        def change_of(receiver):
            return sum(changes[s] for s in by_receiver[receiver])

        if any(s.kind == "embed" for s in senders):
            embed = next(s for s in senders if s.kind == "embed")
            hooks.append((EMBED_HOOK, self._record_change(changes, EMBED_HOOK, [embed])))
        for layer in range(shape.n_layers):
            heads = [s for s in senders if s.kind == "head" and s.layer == layer]
            if heads:
                hooks.append((z_hook(layer), self._record_change(changes, z_hook(layer), heads)))
            if any(s.kind == "mlp" and s.layer == layer for s in senders):
                mlp = ir.Node(layer, "mlp")
                hooks.append((mlp_out_hook(layer), self._record_change(changes, mlp_out_hook(layer), [mlp])))
        for layer in sorted({r.layer for r in by_receiver if r != LOGITS and r.kind == "head_input"}):
            hooks.append((f"blocks.{layer}.hook_resid_pre", _keep(streams, layer)))
            for part in "qkv":
                mine = [r for r in by_receiver if r != LOGITS and r.kind == "head_input"
                        and r.layer == layer and r.part == part]
                if mine:
                    hooks.append((part_hook(layer, part), self._head_inputs(layer, part, mine, streams, change_of)))
        for receiver in by_receiver:
            if receiver != LOGITS and receiver.kind == "mlp":
                hooks.append((f"blocks.{receiver.layer}.ln2.hook_in", _subtract(lambda r=receiver: change_of(r))))
        if LOGITS in by_receiver:
            hooks.append(("ln_final.hook_in", _subtract(lambda: change_of(LOGITS))))
        return hooks

    def _record_change(self, changes: dict, site: str, senders: list[ir.Node]):
        """A hook on the senders' output site that records out_s - ablated_out_s."""

        def hook(activation, hook):
            ablated = self._ablated[site].to(activation.device, activation.dtype).expand_as(activation)
            difference = activation - ablated
            for sender in senders:
                if sender.kind == "head":
                    changes[sender] = difference[:, :, sender.head] @ self.W_O[sender.layer, sender.head]
                else:
                    changes[sender] = difference
            return activation

        return hook

    def _head_inputs(self, layer: int, part: str, receivers: list[ir.Node], streams: dict, change_of):
        """A hook on hook_q (k, v) that recomputes each receiving head's slice from its
        corrected residual input."""
        norm = self.loaded.bridge.blocks[layer].ln1
        weight, bias = self._weights[part]
        n_heads = self.loaded.shape.n_heads

        def hook(activation, hook):
            if activation.shape[2] != n_heads:
                raise AnalysisError(f"{receivers[0].id}: this model shares keys and values among heads; "
                                    f"edge circuits need a {part} input of its own for every head")
            out = activation.clone()
            for receiver in receivers:
                normed = norm(streams[layer] - change_of(receiver))
                out[:, :, receiver.head] = (normed @ weight[layer, receiver.head] + bias[layer, receiver.head]).to(out.dtype)
            return out

        return hook


def _input_weights(bridge, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) of a head input (W_Q, b_Q for q): [layer, head, d_model, d_head] and
    [layer, head, d_head]; zeros for a model without that bias."""
    weight = getattr(bridge, f"W_{part.upper()}").detach()
    try:
        bias = getattr(bridge, f"b_{part.upper()}").detach()
    except AttributeError:  # a bias-free checkpoint has none
        bias = weight.new_zeros(weight.shape[:2] + weight.shape[3:])
    return weight, bias


def _keep(streams: dict, layer: int):
    def hook(activation, hook):
        streams[layer] = activation
        return activation

    return hook


def _subtract(change):
    def hook(activation, hook):
        return activation - change().to(activation.dtype)

    return hook


def circuit_metric(loaded, prompts, edges: Iterable[Edge], kept: Iterable[Edge], metric: ir.Metric, source, *,
                   batch_size: int = 32, show_progress: bool = True) -> torch.Tensor:
    """float [n]: the metric of every prompt with only the `kept` edges of `edges`
    carrying the clean run (every other edge of `edges` ablated from `source`)."""
    edges = list(edges)
    kept = set(kept)
    unknown = [edge_key(e) for e in kept if e not in set(edges)]
    if unknown:
        raise AnalysisError(f"kept edges not in the graph: {', '.join(sorted(unknown)[:5])}")
    removed = [e for e in edges if e not in kept]
    values = []
    with progress(len(prompts), "edge circuit", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            values.append(EdgeCircuit(loaded, batch, edges, metric, source).metric(removed))
            bar.update(len(batch))
    return torch.cat(values)

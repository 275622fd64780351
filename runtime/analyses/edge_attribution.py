"""Edge attribution patching (EAP): every sender -> receiver edge scored from one clean
forward pass with gradients and the source run.

An edge is a sender (a head, an MLP or EMBED) and a receiver input that reads the
residual stream after it: a head's q, k or v input (scored apart; a whole head as
receiver stands for its three inputs) or an MLP's input. Path patching
(`path_patching.py`) changes the receiver's input by exactly the sender's output
change `delta_s` (the source's output minus the clean one, in the residual stream;
a head's is (z' - z)[head] @ W_O[head]) and lets the rest of the model run. To first
order in `delta_s`,

    value["SENDER->RECEIVER"] ~= sum over prompts and positions of delta_s . g_r,

with g_r the gradient of the summed metric with respect to the receiver's own copy of
its input in the clean run: for an MLP, the gradient at its LayerNorm's input
(`blocks.{l}.ln2.hook_in`); for a head's q input, the gradient at hook_q for that
head, taken back through W_Q of the head and the LayerNorm in front of it
(likewise k and v). One backward pass gives every g_r; the scores are then one
matrix product per receiver layer. When the metric reads only the last position, the
last block runs only there (`gradients.py`), and its gradients and sender changes
elsewhere are zero, as they are in the full model. Values are signed, averaged over
prompts and given a standard error like path patching's (positive: the edge helps).

With `to_logits`, every sender also gets an edge to `LOGITS`, the unembedding's input:
its gradient is the one at the final residual stream (`hook_resid_post` of the last
block), so that edge scores the sender's direct effect. With `steps=K > 1` (a source
that runs the model) the receivers' gradients are averaged over K runs whose input
embeddings move k/K of the way (k = 0 .. K-1) toward the source prompts' (EAP-IG);
the sender changes stay those of the clean run.
"""
from __future__ import annotations

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    AnalysisError,
    check_nodes,
    head_slot,
    node_site,
    part_hook,
    progress,
)
from circ.runtime.analyses.gradients import full_width, gradient_run, input_embeddings, patched_at
from circ.runtime.analyses.metrics import helps_sign
from circ.runtime.analyses.node_stats import PerPrompt, summary
from circ.runtime.analyses.path_patching import precedes
from circ.runtime.analyses.resumed_blocks import resumer_for


def edge_attribution(loaded, prompts, senders, receivers, metric: ir.Metric, source, *,
                     position: ir.Position = ir.ALL, batch_size: int = 32, show_progress: bool = True,
                     kernel: str = "auto", steps: int = 1, to_logits: bool = False) -> dict:
    """{"values": {"SRC->DST": estimated effect}, "baseline": {"clean": m}}; DST is a
    head's input (`L3.H1.q`), an MLP (`L3.MLP`) or, with `to_logits`, `LOGITS`."""
    if metric.normalized:
        raise AnalysisError(f'edge attribution reports raw metric changes; use a metric that is not normalised, '
                            f'not "{metric.name}"')
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise AnalysisError(f"steps takes a number of points (1 or more), not {steps!r}")
    if steps > 1 and not hasattr(source, "tokens"):
        raise AnalysisError("steps > 1 integrates along the inputs: it needs a patch source that runs the model "
                            "(a dataset, corrupt or resample)")
    shape = loaded.shape
    senders = check_nodes(senders, shape, ("head", "mlp", "embed"), "edge attribution (senders)")
    receivers = _inputs(check_nodes(receivers, shape, ("head", "head_input", "mlp"), "edge attribution (receivers)"))
    parallel = bool(getattr(loaded.bridge.cfg, "parallel_attn_mlp", False))
    edges = [(s, r) for s in senders for r in receivers if precedes(s, r, parallel)]
    if not edges:
        raise AnalysisError("no sender comes before any receiver")
    resumer = resumer_for(loaded, prompts, kernel)
    weights = _Weights(loaded.bridge)
    stacked = sorted(senders, key=_stream_order)  # each receiver layer reads a prefix of these
    wanted = set(edges)
    final = f"blocks.{shape.n_layers - 1}.hook_resid_post"
    hooks = _hooks(senders, receivers, shape) | ({final} if to_logits else set())
    per_prompt = PerPrompt()
    with progress(len(prompts), "edge attribution", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            fetched = source.fetch(batch, sorted({node_site(s, shape).hook for s in senders}))
            mask = None if position.kind == "all" else batch.position_mask(position)
            run = gradient_run(loaded, resumer, batch, metric, hooks)
            runs = [run] + _moved_runs(loaded, resumer, batch, metric, hooks, source, steps)
            per_prompt.add("clean", run.values)
            deltas = torch.stack([_sender_change(s, run, fetched.activations, mask, weights, batch, shape)
                                  for s in stacked]).flatten(2)  # [sender, batch, seq * d_model]
            for layer in sorted({r.layer for r in receivers}):
                mine = [r for r in receivers if r.layer == layer]
                reach = max((i + 1 for i, s in enumerate(stacked) if any((s, r) in wanted for r in mine)), default=0)
                if not reach:
                    continue
                gradients = sum(_receiver_gradients(loaded.bridge, layer, mine, r, weights, batch, shape)
                                for r in runs) / len(runs)
                per_receiver = gradients.permute(2, 0, 1, 3).reshape(len(mine), len(batch), -1)
                scores = torch.einsum("sbx,rbx->srb", deltas[:reach], per_receiver)  # per prompt
                for i, sender in enumerate(stacked[:reach]):
                    for j, receiver in enumerate(mine):
                        if (sender, receiver) in wanted:
                            per_prompt.add((sender, receiver), scores[i, j])
            if to_logits:
                width = batch.tokens.shape[1]
                gradient = sum(full_width(r.gradients[final], r.positions[final], width) for r in runs) / len(runs)
                scores = torch.einsum("sbx,bx->sb", deltas, gradient.reshape(len(batch), -1))
                for sender, score in zip(stacked, scores):
                    per_prompt.add((sender, "LOGITS"), score)
            bar.update(len(batch))
    sign = -helps_sign(metric)  # the estimates are of metric(patched) - metric(clean)
    columns = {f"{s.id}->{r.id}": sign * per_prompt.of((s, r)) for s, r in edges}
    columns.update({f"{s.id}->LOGITS": sign * per_prompt.of((s, "LOGITS")) for s in (senders if to_logits else [])})
    return {**summary(columns), "baseline": {"clean": float(per_prompt.of("clean").mean())}}


def _moved_runs(loaded, resumer, batch, metric, hooks, source, steps: int) -> list:
    """The gradient runs of EAP-IG beyond the clean one: inputs moved k/steps of the
    way toward the source prompts', k = 1 .. steps - 1."""
    if steps == 1:
        return []
    embeddings = input_embeddings(loaded, resumer, source.tokens(batch))
    return [gradient_run(loaded, resumer, batch, metric, hooks, toward=(embeddings, k / steps))
            for k in range(1, steps)]


def _stream_order(node: ir.Node) -> tuple:
    """EMBED, then layer by layer each layer's heads before its MLP."""
    return (-1, 0, 0) if node.kind == "embed" else (node.layer, node.kind != "head", node.head or 0)


def _inputs(receivers: list[ir.Node]) -> list[ir.Node]:
    """Receivers with each whole head replaced by its q, k and v inputs, without repeats."""
    out = []
    for node in receivers:
        parts = [ir.Node(node.layer, "head_input", node.head, p) for p in "qkv"] if node.kind == "head" else [node]
        out += [p for p in parts if p not in out]
    return out


def _hooks(senders, receivers, shape: ir.Shape) -> set[str]:
    hooks = {node_site(s, shape).hook for s in senders}
    for receiver in receivers:
        if receiver.kind == "mlp":
            hooks.add(f"blocks.{receiver.layer}.ln2.hook_in")
        else:
            hooks |= {part_hook(receiver.layer, receiver.part), f"blocks.{receiver.layer}.hook_resid_pre"}
    return hooks


class _Weights:
    """W_O and W_Q/W_K/W_V of the bridge, read once per analysis."""

    def __init__(self, bridge):
        with torch.no_grad():
            self.W_O = bridge.W_O.detach()
            self.parts = {"q": bridge.W_Q.detach(), "k": bridge.W_K.detach(), "v": bridge.W_V.detach()}


def _sender_change(sender: ir.Node, run, fetched: dict, mask, weights: _Weights, batch, shape: ir.Shape):
    """The sender's output change in the residual stream, [batch, seq, d_model] (zero
    where the run did not compute the sender: the last block off the read positions)."""
    site = node_site(sender, shape)
    clean, new = patched_at(run, site.hook, fetched[site.hook], site.head, mask, batch, shape.n_heads)
    change = new - clean
    if sender.kind == "head":
        change = change[:, :, sender.head] @ weights.W_O[sender.layer, sender.head]
    return full_width(change, run.positions[site.hook], batch.tokens.shape[1])


def _receiver_gradients(bridge, layer: int, receivers, run, weights: _Weights, batch, shape: ir.Shape):
    """[batch, seq, receiver, d_model]: the metric's gradient with respect to each
    receiver's own copy of its residual-stream input."""
    width = batch.tokens.shape[1]

    def gradient(hook):
        return full_width(run.gradients[hook], run.positions[hook], width)

    heads = [r for r in receivers if r.kind == "head_input"]
    by_head = {}
    if heads:
        stream = run.activations[f"blocks.{layer}.hook_resid_pre"]
        cotangents = []
        for receiver in heads:
            part_gradient = gradient(part_hook(layer, receiver.part))
            weight = weights.parts[receiver.part][layer]
            slot = head_slot(part_gradient, receiver.head, shape.n_heads)
            weight = weight[slot if weight.shape[0] != shape.n_heads else receiver.head]
            cotangents.append(part_gradient[:, :, slot] @ weight.T)
        with torch.enable_grad():
            copies = stream[:, :, None].expand(-1, -1, len(heads), -1).detach().requires_grad_(True)
            (through_norm,) = torch.autograd.grad(bridge.blocks[layer].ln1(copies), [copies],
                                                  torch.stack(cotangents, dim=2))
        by_head = dict(zip(heads, through_norm.unbind(2)))
    columns = [gradient(f"blocks.{layer}.ln2.hook_in") if r.kind == "mlp" else by_head[r] for r in receivers]
    return torch.stack(columns, dim=2)

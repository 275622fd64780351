"""Path patching: the effect of a sender on the metric through one receiver's input only.

For each sender (a head, an MLP or EMBED) and receiver (a head's q, k or v input, a
whole head (q, k and v together) or an MLP's input):

1. Run the clean prompt with the sender patched from the source and every other
   attention and MLP output held at its clean value; the receiver's input then
   differs from clean only by the sender's change, along the direct path. Record
   what the receiver computes from it (its q/k/v, or the MLP's output).
2. Run the clean prompt again with only that receiver quantity replaced by the
   recorded one, the rest of the model running normally.

value["SENDER->RECEIVER"] = metric(clean) - metric(step 2), negated for a
lower-is-better metric (positive: the path helps), averaged over prompts, with its
standard error and prompt count (`node_stats`).
Only pairs where the sender comes before the receiver are reported.
"""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.analyses.common import (
    AnalysisError,
    attn_out_hook,
    check_nodes,
    mlp_out_hook,
    node_site,
    output_hooks,
    part_hook,
    patch_hook,
    progress,
    run_cached,
    run_hooked,
)
from circ.runtime.analyses.metrics import helps_sign, metric_values
from circ.runtime.analyses.node_stats import PerPrompt, summary


def path_patch(loaded, prompts, senders, receivers, metric: ir.Metric, source, *, position: ir.Position = ir.ALL,
               batch_size: int = 32, show_progress: bool = True) -> dict:
    """{"values": {"SRC->DST": mean effect}, "stderr": ..., "n": ..., "per_prompt": ...,
    "baseline": {"clean": m}}."""
    if metric.normalized:
        raise AnalysisError(f'path patching reports raw metric changes; use a metric that is not normalised, not "{metric.name}"')
    shape = loaded.shape
    edges = path_edges(loaded, senders, receivers)
    senders = list(dict.fromkeys(s for s, _ in edges))
    bridge = loaded.bridge
    per_prompt = PerPrompt()
    with progress(len(prompts) * (len(senders) + len(edges)), "path patch", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            clean_logits, clean = run_cached(bridge, batch.tokens, output_hooks(shape))
            per_prompt.add("clean", metric_values(clean_logits, batch, metric, clean_logits=clean_logits))
            sender_hooks = sorted({node_site(s, shape).hook for s in senders})
            fetched = source.fetch(batch, sender_hooks)
            mask = None if position.kind == "all" else batch.position_mask(position)
            for sender in senders:
                mine = [r for s, r in edges if s == sender]
                recorded = _record_receivers(bridge, batch, sender, mine, fetched, clean, mask, shape)
                bar.update(len(batch))
                for receiver in mine:
                    hooks = [(hook, patch_hook(recorded[(receiver, hook)], head, None, shape.n_heads))
                             for hook, head in _receiver_sites(receiver)]
                    logits = run_hooked(bridge, batch.tokens, hooks)
                    per_prompt.add((sender, receiver), metric_values(logits, batch, metric, clean_logits=clean_logits))
                    bar.update(len(batch))
    clean = per_prompt.of("clean")
    sign = helps_sign(metric)
    out = summary({f"{s.id}->{r.id}": sign * (clean - per_prompt.of((s, r))) for s, r in edges})
    return {**out, "baseline": {"clean": float(clean.mean())}}


def path_edges(loaded, senders, receivers) -> list[tuple[ir.Node, ir.Node]]:
    """The (sender, receiver) pairs to measure, sender by sender, after checking the nodes."""
    shape = loaded.shape
    senders = check_nodes(senders, shape, ("head", "mlp", "embed"), "path patching (senders)")
    receivers = check_nodes(receivers, shape, ("head", "head_input", "mlp"), "path patching (receivers)")
    parallel = bool(getattr(loaded.bridge.cfg, "parallel_attn_mlp", False))
    edges = [(s, r) for s in senders for r in receivers if precedes(s, r, parallel)]
    if not edges:
        raise AnalysisError("no sender comes before any receiver")
    return edges


def precedes(sender: ir.Node, receiver: ir.Node, parallel: bool) -> bool:
    """Whether the sender's output reaches the receiver's input along the residual stream."""
    if sender.kind == "embed":
        return True
    if sender.layer < receiver.layer:
        return True
    return sender.layer == receiver.layer and sender.kind == "head" and receiver.kind == "mlp" and not parallel


def _receiver_sites(receiver: ir.Node) -> list[tuple[str, int | None]]:
    """The hooks (and head) holding what a receiver computes from its input."""
    if receiver.kind == "mlp":
        return [(mlp_out_hook(receiver.layer), None)]
    parts = ("q", "k", "v") if receiver.kind == "head" else (receiver.part,)
    return [(part_hook(receiver.layer, part), receiver.head) for part in parts]


def _record_receivers(bridge, batch, sender, receivers, fetched, clean, mask, shape) -> dict:
    """Step 1: the receivers' q/k/v or MLP outputs with only the sender's direct path changed."""
    site = node_site(sender, shape)
    recorded: dict = {}
    by_hook: dict[str, list] = {}
    for receiver in receivers:
        for hook, head in _receiver_sites(receiver):
            by_hook.setdefault(hook, []).append((receiver, head))
    hooks = [(site.hook, patch_hook(fetched.activations[site.hook], site.head, mask, shape.n_heads))]
    held = [attn_out_hook(layer) for layer in range(shape.n_layers) if not (sender.kind == "head" and layer == sender.layer)]
    if shape.has_mlp:
        held += [mlp_out_hook(layer) for layer in range(shape.n_layers) if not (sender.kind == "mlp" and layer == sender.layer)]
    for hook in held:
        hooks.append((hook, _record_then_set(recorded, hook, by_hook.pop(hook, []), clean[hook])))
    for hook, wanted in by_hook.items():
        hooks.append((hook, _record_then_set(recorded, hook, wanted, None)))
    run_hooked(bridge, batch.tokens, hooks)
    return recorded


def _record_then_set(recorded: dict, name: str, wanted, value):
    """A hook that records the activation of `name` for each wanted receiver, then
    (when `value` is given) replaces it by `value`."""

    def hook(activation, hook):
        for receiver, _ in wanted:
            recorded[(receiver, name)] = activation.clone()
        return activation if value is None else value.to(activation.device, activation.dtype)

    return hook

"""One clean forward pass with gradients: the activations at chosen hooks and the
gradient of the summed metric with respect to each.

With a `Resumer` the pass runs on the engine of `resumed_blocks.py` (from the embeddings), so
a metric read at the last position computes the last block's queries, MLP and the
unembedding only there; the hooks of that block then hold only those positions (see
`positions`). Without one it runs through the bridge with recording hooks and every
hook holds every position. Only activation gradients are computed: no parameter
gradient is formed or stored.

`toward=(embeddings, alpha)` runs the pass on the input embeddings moved the
fraction alpha of the way from the batch's to `embeddings` (integrated gradients),
which `input_embeddings` computes once for other tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import replaced
from circ.runtime.analyses.fast_patching import last_token_view
from circ.runtime.analyses.metrics import metric_values, reads_last_only
from circ.runtime.analyses.resumed_blocks import Resumer


@dataclass
class GradientRun:
    """values [batch]: the clean metric per prompt, computed from `logits` read with
    `view` (the batch, or its last-token view when only the last position was
    unembedded); for each hook name, the clean activation, the gradient of
    sum(values) with respect to it, and the long [batch, n] token positions along its
    sequence axis."""

    values: torch.Tensor
    logits: torch.Tensor
    view: object
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor]
    positions: dict[str, torch.Tensor]


def gradient_run(loaded, resumer: Resumer | None, batch, metric: ir.Metric, hooks, *,
                 read_last_only: bool = True, toward: tuple[torch.Tensor, float] | None = None) -> GradientRun:
    """The clean run of `batch` with gradients at `hooks`. `read_last_only` lets the
    engine cut the last block down to the last position when the metric reads only there."""
    hooks = sorted(set(hooks))
    recorded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.enable_grad():
        if resumer is None:
            logits, view = _bridge_forward(loaded.bridge, batch, hooks, recorded, toward), batch
        else:
            logits, view = _engine_forward(resumer, batch, metric, hooks, recorded, read_last_only, toward)
        values = metric_values(logits, view, metric, clean_logits=logits.detach())
        tensors = [recorded[name][0] for name in hooks]
        gradients = torch.autograd.grad(values.sum(), tensors, allow_unused=True)
    return GradientRun(
        values=values.detach(),
        logits=logits.detach(),
        view=view,
        activations={name: recorded[name][0].detach() for name in hooks},
        gradients={name: torch.zeros_like(t) if g is None else g for name, t, g in zip(hooks, tensors, gradients)},
        positions={name: recorded[name][1] for name in hooks},
    )


def input_embeddings(loaded, resumer: Resumer | None, tokens: torch.Tensor) -> torch.Tensor:
    """What `gradient_run` starts from for `tokens`: the engine's input to block 0, or
    without an engine the bridge's token embeddings (`hook_embed`)."""
    with torch.no_grad():
        if resumer is not None:
            return resumer.embed(tokens)
        bridge = loaded.bridge
        _, cache = bridge.run_with_cache(tokens.to(bridge.cfg.device), names_filter=["hook_embed"], stop_at_layer=0)
        return cache["hook_embed"]


def _engine_forward(resumer: Resumer, batch, metric, hooks, recorded, read_last_only, toward):
    start = resumer.embed(batch.tokens)
    if toward is not None:
        start = torch.lerp(start, toward[0], toward[1])
    start = start.detach().requires_grad_(True)
    read = None
    view = batch
    if read_last_only and reads_last_only(metric):
        read = batch.last.to(start.device)[:, None]
        view = last_token_view(batch)
    taps = {name: _recorder(recorded, name) for name in hooks}
    final = resumer.run(start, 0, read=read, taps=taps)
    return resumer.logits(final), view


def _bridge_forward(bridge, batch, hooks, recorded, toward):
    tokens = batch.tokens.to(bridge.cfg.device)
    positions = torch.arange(tokens.shape[1], device=tokens.device).expand(tokens.shape[0], -1)

    def record(name):
        def hook(activation, hook):
            return _record(recorded, name, activation, positions)

        return hook

    moves = []
    if toward is not None:
        moves = [("hook_embed", lambda activation, hook: torch.lerp(activation, toward[0], toward[1]))]
    return bridge.run_with_hooks(tokens, fwd_hooks=moves + [(name, record(name)) for name in hooks])


def read_like(run: GradientRun, batch, logits: torch.Tensor) -> torch.Tensor:
    """Another run's logits [batch, seq, vocab] at the positions `run.logits` holds."""
    if run.view is batch:
        return logits
    last = batch.last.to(logits.device)[:, None, None]
    return logits.gather(1, last.expand(-1, -1, logits.shape[-1]))


def _recorder(recorded, name):
    def tap(tensor, positions):
        return _record(recorded, name, tensor, positions)

    return tap


def _record(recorded, name, tensor, positions):
    """Keep a fresh view of `tensor` and pass it on, so that the gradient with respect
    to it covers only what reads it from this hook on (an MLP's own copy of its input,
    not the residual stream it was taken from)."""
    view = tensor.view_as(tensor)
    recorded[name] = (view, positions)
    return view


def patched_at(run: GradientRun, hook: str, source: torch.Tensor, head, mask, batch, n_heads: int):
    """(clean, patched) activation of `hook` at the positions the run holds: the
    source's activation written in (for one head slot, or all of it) where `mask`
    [batch, seq] is True (everywhere when None)."""
    clean = run.activations[hook]
    positions = run.positions[hook]
    new = at_positions(source, (len(batch), batch.tokens.shape[1], *clean.shape[2:]), positions)
    mask_here = None if mask is None else mask.to(positions.device).gather(1, positions)
    return clean, replaced(clean, new, head, mask_here, n_heads)


def full_width(tensor: torch.Tensor, positions: torch.Tensor, width: int) -> torch.Tensor:
    """A tensor held at `positions` [batch, n] spread over all `width` positions, zero elsewhere."""
    if positions.shape[1] == width:
        return tensor
    out = tensor.new_zeros(tensor.shape[0], width, *tensor.shape[2:])
    index = positions.reshape(*positions.shape, *([1] * (tensor.dim() - 2))).expand_as(tensor)
    return out.scatter(1, index, tensor)


def at_positions(activation: torch.Tensor, shape: tuple, positions: torch.Tensor) -> torch.Tensor:
    """`activation`, broadcast to the full `shape` [batch, seq, ...] (a source's mean or
    zeros broadcast; a run's activation already has it), read at `positions` [batch, n]."""
    full = activation.to(positions.device).expand(*shape)
    index = positions.reshape(*positions.shape, *([1] * (full.dim() - 2)))
    return full.gather(1, index.expand(-1, -1, *full.shape[2:]))

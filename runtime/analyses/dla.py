"""Direct logit attribution of a logit-difference metric.

The residual stream entering the unembedding is a sum of parts: EMBED (the input
to block 0: token and positional embeddings), each head's output z_h @ W_O[h], each
MLP's output (its bias included), and the attention output biases b_O (none on
bias-free models such as the Llama family). With the
final LayerNorm's scale taken from the clean run, the norm is an affine map, so the
logit difference at a position splits exactly into one term per part:

    (center(part) / scale) * w_ln . (W_U[:, answer] - mean_wrong W_U[:, wrong])

plus the constant terms. `BIAS` collects the b_O terms, the LayerNorm bias and the
unembedding bias difference, so that all values sum to the metric (`total`).
Raw and compatibility (folded LayerNorm) numerics both decompose this way. The parts
are projected only at the positions the metric reads (one per prompt at `last`).

With `at=each` (or a list of positions) the same decomposition is also made of the
metric read at each token position on its own (or at each listed position, keyed by
its name or index): positions[node id][p] is the node's direct contribution to the
logit difference at p, averaged over prompts, and at every p the parts with BIAS sum
to the metric there. `values` stay those at the metric's own positions, and `tokens`
are the first prompt's (None for listed positions).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    EMBED_HOOK,
    AnalysisError,
    check_nodes,
    each_position,
    mlp_out_hook,
    progress,
    run_cached,
    z_hook,
)
from circ.runtime.analyses.metrics import logit_diff_direction, metric_values
from circ.runtime.analyses.node_stats import PerPrompt, summary
from circ.runtime.models.device_maps import readable_weights

_CENTERED = ("LN", "LNPre")
_SCALED = ("LN", "LNPre", "RMS", "RMSPre")


def attribute(loaded, prompts, nodes, metric: ir.Metric, *, position: ir.Position | None = None,
              batch_size: int = 32, show_progress: bool = True) -> dict:
    """{"values": {node id: mean contribution, ..., "BIAS": ...}, "stderr": {...}, "n": prompts,
    "per_prompt": {...}, "total": mean metric}; a contribution is positive when it raises
    the logit difference (the metric's good direction). With `position` (ir.EACH or listed
    positions) also "positions": {node id: {p: mean contribution at p}} and "tokens"."""
    if metric.kind != "logit_diff" or metric.normalized:
        raise AnalysisError(f'attribution decomposes a logit_diff metric, not {"a normalised " if metric.normalized else ""}{metric.kind} ("{metric.name}")')
    shape = loaded.shape
    nodes = check_nodes(nodes, shape, ("head", "mlp", "embed"), "attribute")
    bridge = loaded.bridge
    params = _Weights(bridge)
    hooks = [EMBED_HOOK] + [z_hook(layer) for layer in range(shape.n_layers)]
    hooks += [mlp_out_hook(layer) for layer in range(shape.n_layers)] if shape.has_mlp else []
    hooks += ["ln_final.hook_scale"] if params.scaled else []
    chosen, tokens = each_position(loaded, prompts, position, "attribute") if position else ((), None)
    per_prompt, by_position = PerPrompt(), PerPrompt()
    with progress(len(prompts), "attribute", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            logits, cache = run_cached(bridge, batch.tokens, hooks)
            for key, values in _batch_terms(batch, metric, cache, params, shape).items():
                per_prompt.add(key, values)
            per_prompt.add("total", metric_values(logits, batch, metric))
            for one in chosen:
                for key, values in _batch_terms(batch, replace(metric, position=one), cache, params, shape).items():
                    by_position.add((key, str(one)), values)
            bar.update(len(batch))
    keys = [node.id for node in nodes] + ["BIAS"]
    out = {**summary({key: per_prompt.of(key) for key in keys}), "total": float(per_prompt.of("total").mean())}
    if chosen:
        out["positions"] = {key: {str(one): float(by_position.of((key, str(one))).mean()) for one in chosen}
                            for key in keys}
        out["tokens"] = tokens
    return out


class _Weights:
    """The attention output weights, the final norm's affine parameters and the
    unembedding, as the run uses them (read once, offloaded ones included)."""

    def __init__(self, bridge):
        kind = getattr(bridge.cfg, "normalization_type", None)
        self.centered = kind in _CENTERED
        self.scaled = kind in _SCALED
        with readable_weights(bridge), torch.no_grad():
            self.W_U = bridge.W_U.detach()
            self.b_U = bridge.b_U.detach()
            self.W_O = bridge.W_O.detach()
            self.device = self.W_U.device
            self.b_O = _output_biases(bridge, self.device)
            ones, zeros = torch.ones(bridge.cfg.d_model), torch.zeros(bridge.cfg.d_model)
            # the module's own weight and bias: tl_parameters' ln_final.w/.b alias the
            # placeholders of offloaded weights
            norm = bridge.ln_final
            self.w = (_tensor(norm, "weight", ones) if self.scaled else ones).detach().to(self.device)
            self.b = (_tensor(norm, "bias", zeros) if self.scaled else zeros).detach().to(self.device)


def _output_biases(bridge, device) -> torch.Tensor:
    """b_O [n_layers, d_model], zero for layers whose attention output has no bias."""
    zeros = torch.zeros(bridge.cfg.d_model, device=device)
    return torch.stack([_tensor(block.attn, "b_O", zeros).detach().to(device) for block in bridge.blocks])


def _tensor(module, name: str, default: torch.Tensor) -> torch.Tensor:
    value = getattr(module, name, None)
    return value if isinstance(value, torch.Tensor) else default


def _batch_terms(batch, metric, cache, params: _Weights, shape: ir.Shape) -> dict[str, torch.Tensor]:
    """Each part's contribution per prompt [batch] (positions averaged per prompt).
    Only the positions the metric reads are projected: (prompt, position) pairs with a
    nonzero weight."""
    with torch.no_grad():
        device = params.device
        mask = batch.position_mask(metric.position).float()
        weights = (mask / mask.sum(1, keepdim=True)).to(device)  # [b, seq]
        prompt, position = weights.nonzero(as_tuple=True)  # the k positions read
        read_weights = weights[prompt, position]  # [k]
        difference, answer_bias = logit_diff_direction(params.W_U, params.b_U, batch)  # [b, d_model], [b]
        direction = (difference * params.w)[prompt]  # [k, d_model]
        scale = cache["ln_final.hook_scale"] if params.scaled else torch.ones(*batch.tokens.shape, 1, device=device)

        def read(x: torch.Tensor) -> torch.Tensor:
            """x [b, seq, ...] at the positions read: [k, ...]."""
            return x[prompt.to(x.device), position.to(x.device)]

        read_scale = read(scale)  # [k, 1]

        def project(x: torch.Tensor) -> torch.Tensor:
            """x [k, *, d_model] at the positions read -> contribution per prompt [b, *]."""
            if params.centered:
                x = x - x.mean(-1, keepdim=True)
            extra = x.dim() - 2
            per_scale = read_scale.reshape(read_scale.shape[0], *([1] * extra), 1)
            dotted = ((x / per_scale) * direction.reshape(direction.shape[0], *([1] * extra), -1)).sum(-1)
            weighted = dotted * read_weights.reshape(*read_weights.shape, *([1] * extra))
            per_prompt = torch.zeros(len(batch), *weighted.shape[1:], dtype=weighted.dtype, device=weighted.device)
            return per_prompt.index_add_(0, prompt.to(weighted.device), weighted)

        terms = {"EMBED": project(read(cache[EMBED_HOOK]))}
        W_O, b_O = params.W_O, params.b_O
        bias_stream = torch.zeros(shape.d_model, device=device)
        for layer in range(shape.n_layers):
            per_head = torch.einsum("khd,hdm->khm", read(cache[z_hook(layer)]), W_O[layer])
            for head, values in enumerate(project(per_head).unbind(1)):
                terms[f"L{layer}.H{head}"] = values
            if shape.has_mlp:
                terms[f"L{layer}.MLP"] = project(read(cache[mlp_out_hook(layer)]))
            bias_stream = bias_stream + b_O[layer]
        bias = project(bias_stream.expand(len(read_weights), -1))
        ln_bias = difference @ params.b
        terms["BIAS"] = bias + (answer_bias + ln_bias).to(bias.device)
        return terms

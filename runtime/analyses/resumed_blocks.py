"""Run a model's blocks from a cached residual stream: the engine of the fast paths.

A patched run equals the clean run upstream of the patch, so it need not start at the
embeddings: `Resumer.run` takes the residual stream at the patch (entering a block's
attention, or its MLP) and runs only what follows. Three more savings keep it exact:

- positions before `start` are unchanged by the patch (the model is causal), so only
  positions `start..` are recomputed; the attention at those positions reads the clean
  keys and values of the earlier positions, passed in as `prefix`;
- the last block computes its queries, attention output and MLP only at the positions
  the metric reads (`read`), which are all that reach the metric; its keys and values
  still cover every position;
- the unembedding is applied only at the read positions.

The blocks are computed from the bridge's own pieces: its normalisation modules
(called directly; as the same `layer_norm` where they are plain LayerNorms in raw
numerics; the model's own module where the bridge runs it, as for RMSNorm), its
TransformerLens-style weights (W_Q, b_Q, ..., W_O, b_O, W_in, b_in, W_gate, W_out,
b_out; zeros for the biases a model does not have; the MLP module itself for
unlisted activations), so raw and compatibility numerics are both followed. The
Llama family is described too, as the bridge's attention computes it: rotary
embeddings with cos and sin from the model's own rotary module (rotate-half, over
the first cos.shape[-1] dimensions of each head), applied to q and k after their
hooks; grouped keys and values repeated for the query heads of their group; a gated
MLP act(x W_gate) * (x W_in). `Resumer.build` accepts a model only when its
configuration is one these formulas describe (`engine_reason`: absolute or rotary
positions with frequencies fixed per position, plain causal softmax attention,
attention before the MLP) and when a full run of one prompt from the embeddings
reproduces the bridge's logits; callers fall back to hook-based runs otherwise. The same check
confirms that the logits are final_norm(stream) @ W_U + b_U (`unembedding`), for
callers that need only some of the vocabulary's logits.

`taps` (hook name -> function(tensor, positions) -> tensor) see or replace what the
engine computes, named as TransformerLens hooks: `blocks.{l}.hook_resid_pre`,
`blocks.{l}.attn.hook_q/k/v/pattern/z`, `blocks.{l}.ln2.hook_in` (the MLP's own
copy of its input), `blocks.{l}.hook_mlp_out`, and the last block's
`hook_resid_post` (the final stream, at the read positions). `positions` is
the long [batch, n] tensor of the absolute token positions along the tensor's
sequence axis (the query positions, for a pattern).
"""
from __future__ import annotations

import math
import weakref
from typing import Callable, Mapping

import torch
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.models.device_maps import is_offloaded

Tap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SELF_CHECK_TOLERANCE = 1e-4  # max |logit difference| / (1 + max |logit|) on the check prompt
SELF_CHECK_TOKENS = 12  # the check runs the first prompt's first tokens

ACTIVATIONS = {
    "gelu_new": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "gelu": torch.nn.functional.gelu,
    "relu": torch.relu,
    "silu": torch.nn.functional.silu,
}


class Resumer:
    """Blocks of one bridge, runnable from any layer on a cached residual stream."""

    def __init__(self, bridge):
        cfg = bridge.cfg
        self.bridge = bridge
        self.n_layers = int(cfg.n_layers)
        self.n_heads = int(cfg.n_heads)
        self.n_kv_heads = int(getattr(cfg, "n_key_value_heads", None) or self.n_heads)
        self.d_head = int(cfg.d_head)
        self.has_mlp = not bool(getattr(cfg, "attn_only", False))
        self._rotary = _Rotary(bridge.rotary_emb) if _is_rotary(cfg) else None
        self.scale = _attention_scale(bridge)
        with torch.no_grad():
            qkv = torch.cat([bridge.W_Q, bridge.W_K, bridge.W_V], dim=1).detach()  # [layer, h + 2 kv, d, e]
            self._w_qkv = qkv.permute(0, 2, 1, 3).reshape(self.n_layers, qkv.shape[2], -1).contiguous()
            L, h, kv, e = self.n_layers, self.n_heads, self.n_kv_heads, self.d_head
            self._b_qkv = torch.cat([_bias(bridge, "b_Q", L, h, e), _bias(bridge, "b_K", L, kv, e),
                                     _bias(bridge, "b_V", L, kv, e)], dim=1).reshape(L, -1)
            self._w_o = bridge.W_O.detach().reshape(self.n_layers, self.n_heads * self.d_head, -1).contiguous()
            self._b_o = _bias(bridge, "b_O", L, self._w_o.shape[-1])
            self._ln1 = [_normalisation(block.ln1) for block in bridge.blocks]
            self._ln2 = [_normalisation(block.ln2) if self.has_mlp else None for block in bridge.blocks]
            self._ln_final = _normalisation(bridge.ln_final)
            # the unembedding as W_U and b_U, for scores that need only some of its
            # columns; dropped by the self-check when the bridge's logits are not these
            self._unembed = _unembedding(bridge)
            self._activation = ACTIVATIONS.get(getattr(cfg, "act_fn", None))
            self._gated = bool(getattr(cfg, "gated_mlp", False))
            self._mlp_weights = _mlp_weights(bridge, self._gated) if self.has_mlp and self._activation else None

    @property
    def W_O(self) -> torch.Tensor:
        """[layer, head, d_head, d_model], a view of the engine's output weights."""
        return self._w_o.reshape(self.n_layers, self.n_heads, self.d_head, -1)

    @property
    def unembedding(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(W_U [d_model, d_vocab], b_U [d_vocab]) such that logits = final_norm(final)
        @ W_U + b_U, or None when the self-check found the bridge's unembedding differs."""
        return self._unembed

    def final_norm(self, final: torch.Tensor) -> torch.Tensor:
        """The final normalisation of a final residual stream (the unembedding's input)."""
        return self._ln_final(final)

    @classmethod
    def build(cls, bridge, sample_tokens: torch.Tensor) -> "Resumer | None":
        """A Resumer for `bridge`, or None when the model is one it cannot reproduce.
        `sample_tokens` [1, seq] is the prompt the self-check runs."""
        if engine_reason(bridge) is not None:
            return None
        resumer = cls(bridge)
        return resumer if resumer.reproduces(sample_tokens) else None

    def reproduces(self, tokens: torch.Tensor) -> bool:
        """Whether a run from the embeddings gives the bridge's logits on `tokens`."""
        with torch.no_grad():
            tokens = tokens.to(self.bridge.cfg.device)
            expected = self.bridge(tokens)
            final = self.run(self.embed(tokens), 0)
            got = self.logits(final)
            if got.shape != expected.shape:
                return False
            tolerance = SELF_CHECK_TOLERANCE * (1.0 + float(expected.abs().max()))
            if float((got - expected).abs().max()) > tolerance:
                return False
            if self._unembed is not None:
                W_U, b_U = self._unembed
                affine = self.final_norm(final) @ W_U + b_U
                if affine.shape != got.shape or not float((affine - got).abs().max()) <= tolerance:
                    self._unembed = None
        return True

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The residual stream entering block 0."""
        return self.bridge(tokens.to(self.bridge.cfg.device), stop_at_layer=0)

    def logits(self, final: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm and unembedding of a final residual stream."""
        return self.bridge.unembed(self._ln_final(final))

    def run(self, resid: torch.Tensor, layer: int, stage: str = "attn", *, start: int = 0,
            prefix: Mapping[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
            read: torch.Tensor | None = None, taps: Mapping[str, Tap] | None = None) -> torch.Tensor:
        """The final residual stream at the `read` positions (long [batch, r]; all of
        `start..` when None), resuming at `layer`: `resid` [batch, seq - start, d] is the
        stream entering that block's attention (stage "attn") or its MLP (stage "mlp").
        `prefix[l]` holds block l's clean keys and values at positions before `start`."""
        taps = taps or {}
        batch, width = resid.shape[0], resid.shape[1]
        positions = torch.arange(start, start + width, device=resid.device).expand(batch, width)
        x = resid
        for l in range(layer, self.n_layers):
            last = l == self.n_layers - 1
            if l > layer or stage == "attn":
                x, positions = self._attention_block(l, x, positions, prefix, read if last else None, taps)
            elif last and read is not None:
                x, positions = _gather_positions(x, positions, read), read
            if self.has_mlp:
                x = x + self._mlp(l, x, positions, taps)
        if read is not None and not torch.equal(positions, read):
            x, positions = _gather_positions(x, positions, read), read
        return _tap(taps, f"blocks.{self.n_layers - 1}.hook_resid_post", x, positions)

    def _attention_block(self, l, x, positions, prefix, read, taps):
        x = _tap(taps, f"blocks.{l}.hook_resid_pre", x, positions)
        h, kv = self.n_heads, self.n_kv_heads
        qkv = _affine(self._ln1[l](x), self._w_qkv[l], self._b_qkv[l])
        q, k, v = qkv.reshape(*x.shape[:2], h + 2 * kv, self.d_head).split([h, kv, kv], dim=2)
        k = _tap(taps, f"blocks.{l}.attn.hook_k", k, positions)
        v = _tap(taps, f"blocks.{l}.attn.hook_v", v, positions)
        key_positions = positions
        if prefix is not None and l in prefix and prefix[l][0].shape[1] > 0:
            before_k, before_v = prefix[l]
            k = torch.cat([before_k.to(k.dtype), k], dim=1)
            v = torch.cat([before_v.to(v.dtype), v], dim=1)
            key_positions = torch.arange(k.shape[1], device=x.device).expand(x.shape[0], -1)
        if read is not None:
            x, q, positions = _gather_positions(x, positions, read), _gather_positions(q, positions, read), read
        q = _tap(taps, f"blocks.{l}.attn.hook_q", q, positions)
        pattern = _tap(taps, f"blocks.{l}.attn.hook_pattern", self.pattern(q, k, positions, key_positions), positions)
        z = _tap(taps, f"blocks.{l}.attn.hook_z", mix(pattern, v), positions)
        return x + _affine(z.flatten(2), self._w_o[l], self._b_o[l]), positions

    def _mlp(self, l, x, positions, taps):
        into = self._ln2[l](_tap(taps, f"blocks.{l}.ln2.hook_in", x, positions))
        if self._mlp_weights is None:
            out = self.bridge.blocks[l].mlp(into)
        else:
            w_in, b_in, w_out, b_out = self._mlp_weights
            hidden = _affine(into, w_in[l], b_in[l])
            if self._gated:  # SwiGLU and kin: act(x W_gate) * (x W_in), one matrix multiply for both
                gate, up = hidden.chunk(2, dim=-1)
                hidden = self._activation(gate) * up
            else:
                hidden = self._activation(hidden)
            out = _affine(hidden, w_out[l], b_out[l])
        return _tap(taps, f"blocks.{l}.hook_mlp_out", out, positions)

    def pattern(self, q: torch.Tensor, k: torch.Tensor, q_positions: torch.Tensor,
                k_positions: torch.Tensor | None = None) -> torch.Tensor:
        """Causal attention weights [batch, head, query, key] from q [b, nq, h, e] and
        k [b, nk, h or h / group, e] as the hooks hold them (before any rotary
        embedding); keys sit at positions 0.. unless `k_positions` says otherwise.
        Grouped keys serve `group` consecutive query heads each."""
        if k_positions is None:
            k_positions = torch.arange(k.shape[1], device=k.device).expand(k.shape[0], -1)
        if self._rotary is not None:
            q, k = self._rotary(q, q_positions), self._rotary(k, k_positions)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, _grouped(k, q.shape[2])) * self.scale
        allowed = k_positions[:, None, None, :] <= q_positions[:, None, :, None]
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1)


def mix(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Each head's weighted values: z [batch, query, head, d_head] (v may be grouped)."""
    return torch.einsum("bhqk,bkhe->bqhe", pattern, _grouped(v, pattern.shape[1]))


def _grouped(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Grouped keys or values [b, n, kv, e] repeated for the `n_heads` query heads they
    serve (head i reads group i // (n_heads / kv), as `repeat_kv` does)."""
    return x if x.shape[2] == n_heads else x.repeat_interleave(n_heads // x.shape[2], dim=2)


class _Rotary:
    """Rotary position embeddings as the bridge's attention applies them: cos and sin
    of each position from the model's own rotary module (computed once per position
    and kept), the rotate-half form of `apply_rotary_pos_emb`, on the first cos.shape[-1]
    dimensions of each head (all of them but for partial rotary)."""

    def __init__(self, module):
        self._module = getattr(module, "original_component", None) or module
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x [batch, n, heads, e] rotated for its absolute `positions` [batch, n]."""
        cos, sin = self._cos_sin(x, int(positions.max()) + 1 if positions.numel() else 1)
        cos, sin = cos[positions].unsqueeze(2), sin[positions].unsqueeze(2)
        width = cos.shape[-1]
        turned, kept = x[..., :width], x[..., width:]
        half = width // 2
        rotated = (turned * cos) + (torch.cat((-turned[..., half:], turned[..., :half]), dim=-1) * sin)
        return rotated if kept.shape[-1] == 0 else torch.cat([rotated, kept], dim=-1)

    def _cos_sin(self, like: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        table = self._table
        if table is None or table[0].shape[0] < n or table[0].dtype != like.dtype or table[0].device != like.device:
            size = max(n, 0 if table is None else table[0].shape[0])
            with torch.no_grad():
                cos, sin = self._module(like, torch.arange(size, device=like.device)[None])
            self._table = table = (cos[0].to(like.dtype), sin[0].to(like.dtype))
        return table


def unsupported_reason(cfg) -> str | None:
    """Why the engine's formulas do not describe this model, or None when they do."""
    n_heads, n_kv_heads = getattr(cfg, "n_heads", None), getattr(cfg, "n_key_value_heads", None)
    checks = [
        (getattr(cfg, "positional_embedding_type", "standard") not in ("standard", "rotary"),
         "positions are neither absolute nor rotary embeddings"),
        (bool(getattr(cfg, "rotary_adjacent_pairs", False)) or bool(getattr(cfg, "rotary_interleaved_cos_sin", False)),
         "rotary embeddings rotate adjacent pairs"),
        (n_kv_heads is not None and bool(n_heads) and n_heads % n_kv_heads != 0,
         "query heads do not split evenly over key/value heads"),
        (bool(getattr(cfg, "gated_q_proj", False)), "gated queries"),
        (bool(getattr(cfg, "use_split_qkv_input", False)) or bool(getattr(cfg, "use_attn_in", False)),
         "per-head attention inputs"),
        (bool(getattr(cfg, "parallel_attn_mlp", False)), "attention and MLP run in parallel"),
        ((getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0) > 0, "soft-capped attention scores"),
        ((getattr(cfg, "output_logits_soft_cap", -1.0) or -1.0) > 0, "soft-capped logits"),
        (bool(getattr(cfg, "use_local_attn", False)) or getattr(cfg, "window_size", None) is not None, "local attention"),
        (bool(getattr(cfg, "use_qk_norm", False)), "query/key normalisation"),
        (bool(getattr(cfg, "scale_attn_by_inverse_layer_idx", False)), "attention scaled by layer"),
        (getattr(cfg, "attention_dir", "causal") != "causal", "attention is not causal"),
        (bool(getattr(cfg, "use_normalization_before_and_after", False)), "normalisation after each block"),
        (getattr(cfg, "per_layer_head_dim", None) is not None, "head sizes vary by layer"),
        (getattr(cfg, "num_experts", None) is not None, "mixture-of-experts MLPs"),
    ]
    return next((reason for failed, reason in checks if failed), None)


def engine_reason(bridge) -> str | None:
    """`unsupported_reason` of the bridge's config, or what its rotary module does that
    the engine's position table would not: frequencies that depend on the prompt's
    length, queries scaled by position."""
    reason = unsupported_reason(bridge.cfg)
    if reason is not None or not _is_rotary(bridge.cfg):
        return reason
    rotary = getattr(bridge, "rotary_emb", None)
    module = getattr(rotary, "original_component", None)
    if module is None:
        return "the rotary embedding module is not the bridge's rotary_emb"
    if getattr(module, "rope_type", "default") in ("dynamic", "longrope"):
        return "rotary frequencies depend on the prompt length"
    parameters = getattr(getattr(module, "config", None), "rope_parameters", None)
    if isinstance(parameters, dict) and parameters.get("llama_4_scaling_beta") is not None:
        return "queries are scaled by position"
    return None


def _normalisation(module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The bridge's normalisation module, or, where it computes a plain LayerNorm in
    raw numerics, the same LayerNorm without its Python-level hooks, or, where it runs
    the model's own module (RMSNorm in raw numerics), that module."""
    component = getattr(module, "original_component", None)
    cfg = getattr(module, "config", None)
    if (getattr(module, "use_native_layernorm_autograd", False) and not getattr(cfg, "layer_norm_folding", False)
            and isinstance(component, torch.nn.Module) and not isinstance(component, torch.nn.Identity)):
        return component
    plain = (isinstance(component, torch.nn.LayerNorm) and component.elementwise_affine
             and not getattr(cfg, "layer_norm_folding", False)
             and not getattr(module, "use_native_layernorm_autograd", False) and not module.uses_rms_norm)
    if not plain:
        return module
    eps = float(getattr(cfg, "eps", component.eps))
    return lambda x: torch.nn.functional.layer_norm(x, component.normalized_shape, component.weight, component.bias,
                                                   eps)


def _is_rotary(cfg) -> bool:
    return getattr(cfg, "positional_embedding_type", "standard") == "rotary"


def _attention_scale(bridge) -> float:
    """The factor on q.k: the attention module's own `scaling` for rotary models (whose
    attention the bridge recomputes with it), else from the config."""
    cfg = bridge.cfg
    own = getattr(getattr(bridge.blocks[0].attn, "original_component", None), "scaling", None)
    if _is_rotary(cfg) and isinstance(own, (int, float)):
        return float(own)
    scale = float(getattr(cfg, "attn_scale", -1.0) or -1.0)
    if scale <= 0:
        scale = math.sqrt(int(cfg.d_head)) if getattr(cfg, "use_attn_scale", True) else 1.0
    return 1.0 / scale


def _bias(bridge, name: str, *shape: int) -> torch.Tensor:
    """The bridge's stacked bias `name`, or zeros of `shape` for a model without it
    (Llama, Mistral, Qwen and Gemma have no biases)."""
    try:
        bias = getattr(bridge, name)
    except AttributeError:
        bias = None
    if isinstance(bias, torch.Tensor):
        return bias.detach().clone()
    return bridge.W_E.new_zeros(shape).detach()


def _mlp_weights(bridge, gated: bool) -> tuple[torch.Tensor, ...]:
    """(W_in, b_in, W_out, b_out) stacked over layers; for a gated MLP W_in is
    [W_gate | W_in] (and b_in likewise), so one multiply computes both."""
    w_in, w_out = bridge.W_in.detach(), bridge.W_out.detach()
    n_layers, d_mlp, d_model = w_out.shape
    b_in = _bias(bridge, "b_in", n_layers, d_mlp)
    if gated:
        w_in = torch.cat([bridge.W_gate.detach(), w_in], dim=-1)
        b_in = torch.cat([_bias(bridge, "b_gate", n_layers, d_mlp), b_in], dim=-1)
    return w_in.contiguous(), b_in, w_out, _bias(bridge, "b_out", n_layers, d_model)


def _unembedding(bridge) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The bridge's W_U and b_U, or None when it does not expose them."""
    try:
        W_U, b_U = bridge.W_U, bridge.b_U
    except (AttributeError, RuntimeError, AssertionError):
        return None
    if not isinstance(W_U, torch.Tensor) or not isinstance(b_U, torch.Tensor) or W_U.dim() != 2:
        return None
    return W_U.detach(), b_U.detach()


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x @ weight + bias as one fused matrix multiply over all leading axes."""
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).reshape(*x.shape[:-1], weight.shape[-1])


def _tap(taps: Mapping[str, Tap], name: str, tensor: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    tap = taps.get(name)
    return tensor if tap is None else tap(tensor, positions)


def _gather_positions(x: torch.Tensor, positions: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Rows of x [b, n, ...] (covering the contiguous `positions`) at the `wanted` positions [b, r]."""
    index = (wanted - positions[:, :1]).clamp(min=0, max=x.shape[1] - 1)
    return x.gather(1, index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


KERNELS = ("auto", "fast", "hooks")

# Engines already built, by bridge: (weights signature, engine or None when its check failed).
_ENGINES: "weakref.WeakKeyDictionary[object, tuple[tuple, Resumer | None]]" = weakref.WeakKeyDictionary()


def resumer_for(loaded, prompts, kernel: str) -> Resumer | None:
    """The engine for a fast kernel: None for kernel="hooks", or for "auto" when the
    model is not one it reproduces or has offloaded weights (the engine holds a copy
    of every weight); kernel="fast" insists on it. An engine is built and checked
    once per model and reused until a weight of the model changes."""
    if kernel not in KERNELS:
        raise AnalysisError(f"unknown kernel {kernel!r}; use {', '.join(KERNELS)}")
    if kernel == "hooks":
        return None
    bridge = loaded.bridge
    reason = engine_reason(bridge)
    if reason is None and is_offloaded(bridge):
        reason = "some of its weights are offloaded (the engine would hold them all in memory); use kernel=hooks"
    resumer = None
    if reason is None:
        signature = _weights_signature(bridge)
        known = _ENGINES.get(bridge)
        if known is not None and known[0] == signature:
            resumer = known[1]
        else:
            first = prompts.select([0])
            resumer = Resumer.build(bridge, first.tokens[:, : min(int(first.lengths[0]), SELF_CHECK_TOKENS)])
            _ENGINES[bridge] = (signature, resumer)
        reason = None if resumer is not None else "a run of the first prompt does not reproduce the model's logits"
    if resumer is None and kernel == "fast":
        raise AnalysisError(f"the fast kernel cannot run this model: {reason}")
    return resumer


def _weights_signature(bridge) -> tuple:
    """Changes whenever a parameter is replaced or modified in place."""
    return tuple((id(p), p.data_ptr(), p._version) for p in bridge.parameters())

"""Model shapes for cost estimates: the spec's own model, a named reference shape
(`gpt2-small`, `llama-7b`, `chinchilla-70b`), or a Hugging Face config.json.

A `CostShape` holds what arithmetic on FLOPs and bytes needs beyond `ir.Shape`:
grouped key/value heads, gated (SwiGLU) MLPs, and whether the unembedding shares
the embedding's weights. Parameter counts cover the matrices (biases and norms are
under 0.1% of any of these models and are left out).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from circ.compiler import ir
from circ.compiler.check.model_shape import ShapeError, read_config, shape_from_config

GATED_MODEL_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3",
                               "phi3", "olmo", "olmo2", "granite", "cohere"})
GATED_ACTIVATIONS = frozenset({"silu", "swish", "swiglu", "geglu"})
# Architectures whose patched runs circ resumes from the patch point (fast_patching.py):
# absolute or rotary position embeddings, grouped or not, attention before the MLP.
RESUMABLE_MODEL_TYPES = frozenset({"gpt2", "opt", "llama", "qwen2"})


class EstimateError(ValueError):
    """A model shape or an estimate input that cannot be used; the message is for the user."""


@dataclass(frozen=True)
class CostShape:
    name: str
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int
    d_mlp: int
    n_kv_heads: int
    gated_mlp: bool = False
    has_mlp: bool = True
    tied_embeddings: bool = False
    resumable: bool = False  # patched runs resume from the patch point instead of a full forward

    @property
    def attention_params(self) -> int:
        """Q, K, V and O matrices of one layer."""
        return self.d_model * self.d_head * (2 * self.n_heads + 2 * self.n_kv_heads)

    @property
    def mlp_params(self) -> int:
        if not self.has_mlp:
            return 0
        return (3 if self.gated_mlp else 2) * self.d_model * self.d_mlp

    @property
    def matmul_params(self) -> int:
        """Parameters every token multiplies through: the blocks and the unembedding."""
        return self.n_layers * (self.attention_params + self.mlp_params) + self.d_model * self.d_vocab

    @property
    def params(self) -> int:
        """Every parameter held in memory (the embedding lookup costs no FLOPs)."""
        return self.matmul_params + (0 if self.tied_embeddings else self.d_model * self.d_vocab)

    def forward_flops(self, width: int) -> int:
        """FLOPs of one forward pass of one sequence of `width` tokens:
        2 * params * tokens, plus QK^T and pattern @ V (2 * width^2 * d_head each, per head)."""
        return 2 * self.matmul_params * width + 4 * self.n_layers * self.n_heads * self.d_head * width * width

    def resumed_flops(self, width: int, layer: int, stage: str, reads: int | None, start: int = 0,
                      columns: int | None = None) -> int:
        """FLOPs of one sequence resumed at block `layer` ("attn": before its attention,
        "mlp": before its MLP; layer == n_layers: the final stream) from position
        `start` on (earlier positions are the clean run's), computing the last block's
        queries, attention output and MLP, and the unembedding, at `reads` positions
        only (None: every position from `start`). The unembedding computes `columns`
        logits per position (None: the whole vocabulary; 1 for a logit difference read
        as one direction, see `runtime/analyses/fast_patching.py`)."""
        fresh = max(width - start, 0)
        reads = fresh if reads is None else min(reads, fresh)
        kv = 4 * self.d_model * self.n_kv_heads * self.d_head
        q_o = 4 * self.d_model * self.n_heads * self.d_head
        scores = 4 * self.n_heads * self.d_head * width
        mlp = 2 * self.mlp_params
        total = 2 * self.d_model * (self.d_vocab if columns is None else columns) * reads
        for block in range(layer, self.n_layers):
            positions = reads if block == self.n_layers - 1 else fresh
            if not (block == layer and stage == "mlp"):
                total += kv * fresh + (q_o + scores) * positions
            total += mlp * positions
        return total

    def change_flops(self, kind: str, width: int) -> int:
        """FLOPs of a patched node's change to the residual stream over `width` positions
        (fast_patching.residual_change): a head's output change through its W_O
        (d_head x d_model per position); a q/k/v input also recomputes its head's
        attention twice, patched and clean (scores and weighted values, 2 * width^2 *
        d_head each); MLP, EMBED and residual changes are a subtraction."""
        if kind not in ("head", "head_input"):
            return 0
        recomputed = 2 * 4 * self.d_head * width * width if kind == "head_input" else 0
        return 2 * self.d_head * self.d_model * width + recomputed

    def attribution_flops(self, reads: int) -> int:
        """FLOPs of direct logit attribution besides its forward pass, per prompt that
        reads `reads` positions (dla.py): every head's output through its W_O there,
        and every part (EMBED, each head, each MLP, the biases) dotted with the
        logit-difference direction."""
        parts = 2 + self.n_layers * (self.n_heads + (1 if self.has_mlp else 0))
        return reads * (2 * self.n_layers * self.n_heads * self.d_head * self.d_model + 2 * parts * self.d_model)

    def pattern_row_flops(self, width: int) -> int:
        """FLOPs of one head's query row of one prompt (attention.py): its pattern
        [width, width] weighted over the query positions."""
        return 2 * width * width

    def ir_shape(self) -> ir.Shape:
        """The shape node sets are expanded and checked against."""
        return ir.Shape(n_layers=self.n_layers, n_heads=self.n_heads, d_model=self.d_model, d_head=self.d_head,
                        d_vocab=self.d_vocab, n_ctx=self.n_ctx, d_mlp=self.d_mlp if self.has_mlp else 0,
                        has_mlp=self.has_mlp)


NAMED_SHAPES = {
    "gpt2-small": CostShape("gpt2-small", n_layers=12, n_heads=12, d_model=768, d_head=64, d_vocab=50257,
                            n_ctx=1024, d_mlp=3072, n_kv_heads=12, tied_embeddings=True, resumable=True),
    "llama-7b": CostShape("llama-7b", n_layers=32, n_heads=32, d_model=4096, d_head=128, d_vocab=32000,
                          n_ctx=4096, d_mlp=11008, n_kv_heads=32, gated_mlp=True, resumable=True),
    "chinchilla-70b": CostShape("chinchilla-70b", n_layers=80, n_heads=64, d_model=8192, d_head=128,
                                d_vocab=32000, n_ctx=2048, d_mlp=32768, n_kv_heads=64),
}


def from_ir_shape(shape: ir.Shape, name: str) -> CostShape:
    """The cost shape of a model known only by its `ir.Shape` (plain MLP, no grouping)."""
    return CostShape(name, n_layers=shape.n_layers, n_heads=shape.n_heads, d_model=shape.d_model,
                     d_head=shape.d_head, d_vocab=shape.d_vocab, n_ctx=shape.n_ctx, d_mlp=shape.d_mlp,
                     n_kv_heads=shape.n_heads, has_mlp=shape.has_mlp)


def from_config(config: dict, name: str) -> CostShape:
    """The cost shape described by a Hugging Face config dictionary."""
    try:
        shape = shape_from_config(config, name)
    except ShapeError as error:
        raise EstimateError(str(error)) from None
    kv_heads = config.get("num_key_value_heads") or config.get("n_kv_heads") or shape.n_heads
    gated = (config.get("model_type") in GATED_MODEL_TYPES
             or str(config.get("hidden_act", config.get("activation_function", ""))) in GATED_ACTIVATIONS)
    return CostShape(name, n_layers=shape.n_layers, n_heads=shape.n_heads, d_model=shape.d_model,
                     d_head=shape.d_head, d_vocab=shape.d_vocab, n_ctx=shape.n_ctx, d_mlp=shape.d_mlp,
                     n_kv_heads=int(kv_heads), gated_mlp=gated, has_mlp=shape.has_mlp,
                     tied_embeddings=bool(config.get("tie_word_embeddings", True)),
                     resumable=config.get("model_type") in RESUMABLE_MODEL_TYPES)


def cost_shape(name_or_path: str) -> CostShape:
    """A named shape, or the config.json at a path (a file, or a folder holding one)."""
    if name_or_path in NAMED_SHAPES:
        return NAMED_SHAPES[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise EstimateError(f"unknown model shape `{name_or_path}`: use {', '.join(NAMED_SHAPES)} "
                            "or the path of a config.json")
    try:
        config = read_config(path)
    except ShapeError as error:
        raise EstimateError(str(error)) from None
    return from_config(config, str(path))

"""What every analysis shares: node sites (hook + head), patch and freeze hooks,
node checks, runs with a cache of only the named hooks, the positions `at=each`
stands for, means with standard errors, and progress bars."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from circ.compiler import ir

PROGRESS_MIN_RUNS = 16  # fewer forward passes than this finish too fast for a bar


class AnalysisError(Exception):
    """An analysis asked for something the model, nodes or data cannot give."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def z_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def part_hook(layer: int, part: str) -> str:
    return f"blocks.{layer}.attn.hook_{part}"


def attn_out_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_attn_out"


def mlp_out_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def pattern_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_pattern"


EMBED_HOOK = "blocks.0.hook_resid_pre"  # token (+ positional) embeddings, before any block


@dataclass(frozen=True)
class Site:
    """Where a node's activation lives: a hook, and for heads the head index."""

    hook: str
    head: int | None = None


def node_site(node: ir.Node, shape: ir.Shape) -> Site:
    """The hook whose activation is the node's output (or, for q/k/v, its input)."""
    if node.kind == "head":
        return Site(z_hook(node.layer), node.head)
    if node.kind == "head_input":
        return Site(part_hook(node.layer, node.part), node.head)
    if node.kind == "mlp":
        return Site(mlp_out_hook(node.layer))
    if node.kind == "embed":
        return Site(EMBED_HOOK)
    if node.layer == shape.n_layers:
        return Site(f"blocks.{shape.n_layers - 1}.hook_resid_post")
    return Site(f"blocks.{node.layer}.hook_resid_pre")


def check_nodes(nodes: Iterable[ir.Node], shape: ir.Shape, kinds: Sequence[str], analysis: str) -> list[ir.Node]:
    """The nodes as a list, after checking their kinds and ranges against the model."""
    nodes = list(nodes)
    for node in nodes:
        if node.kind not in kinds:
            raise AnalysisError(f"{analysis} does not take {node.id} (a {node.kind} node); it takes {', '.join(kinds)} nodes")
        top = shape.n_layers if node.kind == "resid" else shape.n_layers - 1
        if node.kind != "embed" and not 0 <= node.layer <= top:
            raise AnalysisError(f"{node.id}: the model has layers 0..{shape.n_layers - 1}")
        if node.kind in ("head", "head_input") and not 0 <= node.head < shape.n_heads:
            raise AnalysisError(f"{node.id}: the model has heads 0..{shape.n_heads - 1}")
        if node.kind == "head_input" and node.part not in ("q", "k", "v"):
            raise AnalysisError(f"{node.id}: a head input is q, k or v")
        if node.kind == "mlp" and not shape.has_mlp:
            raise AnalysisError(f"{node.id}: the model has no MLPs")
    return nodes


def head_slot(activation: torch.Tensor, head: int, n_heads: int) -> int:
    """The index along the head axis that serves `head` (grouped keys/values share one)."""
    return head * activation.shape[2] // n_heads


def replaced(activation: torch.Tensor, source: torch.Tensor, head: int | None, mask: torch.Tensor | None,
             n_heads: int) -> torch.Tensor:
    """`activation` with `source` written in, for one head (or all of it), at the
    positions where `mask` [batch, seq] is True (all positions when None)."""
    source = source.to(activation.device, activation.dtype).expand_as(activation)
    out = activation.clone()
    if head is None:
        target, new = out, source
    else:
        slot = head_slot(activation, head, n_heads)
        target, new = out[:, :, slot], source[:, :, slot]
    if mask is None:
        target[...] = new
    else:
        keep = mask.to(activation.device).reshape(*mask.shape, *([1] * (new.dim() - 2)))
        target[...] = torch.where(keep, new, target)
    return out


def patch_hook(source: torch.Tensor, head: int | None, mask: torch.Tensor | None, n_heads: int) -> Callable:
    def hook(activation, hook):
        return replaced(activation, source, head, mask, n_heads)

    return hook


def frozen_hooks(clean: dict[str, torch.Tensor], attn_layers: Iterable[int], mlp_layers: Iterable[int],
                 has_mlp: bool) -> list[tuple[str, Callable]]:
    """Hooks that pin the attention output and MLP output of the given layers to their
    clean values, so that a change upstream reaches the logits only directly."""
    hooks = [(attn_out_hook(layer), _constant(clean[attn_out_hook(layer)])) for layer in attn_layers]
    if has_mlp:
        hooks += [(mlp_out_hook(layer), _constant(clean[mlp_out_hook(layer)])) for layer in mlp_layers]
    return hooks


def _constant(value: torch.Tensor) -> Callable:
    def hook(activation, hook):
        return value.to(activation.device, activation.dtype)

    return hook


def output_hooks(shape: ir.Shape) -> list[str]:
    """The attention and MLP output hooks of every layer."""
    names = [attn_out_hook(layer) for layer in range(shape.n_layers)]
    if shape.has_mlp:
        names += [mlp_out_hook(layer) for layer in range(shape.n_layers)]
    return names


def run_cached(bridge, tokens: torch.Tensor, names: Iterable[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and the activations of exactly `names`."""
    names = sorted(set(names))
    tokens = tokens.to(bridge.cfg.device)
    with torch.no_grad():
        if not names:
            return bridge(tokens), {}
        logits, cache = bridge.run_with_cache(tokens, names_filter=names)
    return logits, {name: cache[name] for name in names}


def run_hooked(bridge, tokens: torch.Tensor, hooks: list[tuple[str, Callable]]) -> torch.Tensor:
    """Logits of a run with `hooks` attached for this run only."""
    with torch.no_grad():
        return bridge.run_with_hooks(tokens.to(bridge.cfg.device), fwd_hooks=hooks)


def patch_values(patched: dict, clean, source, metric: ir.Metric, source_runs_model: bool) -> dict:
    """A patch analysis's output from per-prompt metrics (float [n] tensors: `patched`
    by node, the clean run, the source run or None): each node's helps-signed effect
    per prompt, metric(clean) - metric(patched) (negated for a lower-is-better metric),
    divided by (clean - source) means for a normalised metric; then its mean, stderr
    and n (node_stats.summary)."""
    from circ.runtime.analyses.metrics import helps_sign
    from circ.runtime.analyses.node_stats import summary

    clean_mean = float(clean.mean())
    source_mean = float(source.mean()) if source_runs_model else None
    if metric.normalized and clean_mean == source_mean:
        raise AnalysisError(f'cannot normalise "{metric.name}": the clean and source runs score the same')
    scale = (clean_mean - source_mean) if metric.normalized else helps_sign(metric)
    effects = {node.id: (clean - values) / scale for node, values in patched.items()}
    return {**summary(effects), "baseline": {"clean": clean_mean, "patched_source": source_mean}}


def each_position(loaded, prompts, position: ir.Position, analysis: str) -> tuple[tuple, list[str] | None]:
    """(the single positions `position` stands for, the first prompt's tokens or None):
    every token position of prompts of one length for `each`, else the listed ones."""
    if position.items:
        return position.items, None
    width = _common_length(prompts, analysis)
    tokens = [str(t) for t in loaded.tokenizer.convert_ids_to_tokens(prompts.tokens[0, :width].tolist())]
    return tuple(ir.Position("index", index=index) for index in range(width)), tokens


def _common_length(prompts, analysis: str) -> int:
    shortest, longest = int(prompts.lengths.min()), int(prompts.lengths.max())
    if shortest != longest:
        raise AnalysisError(f"{analysis}(at=each) needs prompts of one token length, so that a position is the same "
                            f"token slot in every prompt; {prompts.name} has prompts of {shortest} to "
                            f"{longest} tokens")
    return longest


def mean_and_stderr(samples: list[float]) -> tuple[float, float]:
    """The mean of per-prompt values and its standard error (sample deviation / sqrt(n);
    0 for a single prompt)."""
    n = len(samples)
    mean = sum(samples) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((x - mean) ** 2 for x in samples) / (n - 1) / n)


def progress(total: int, description: str, enabled: bool = True):
    """A tqdm bar on stderr, shown only when there are enough runs to be worth one."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stderr, leave=False,
                disable=not enabled or total < PROGRESS_MIN_RUNS)

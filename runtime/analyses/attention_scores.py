"""Attention scores over every query position, each relative to its query.

One forward pass per batch reads every chosen layer's attention pattern; for each
head and each real query position q the score reads the attention mass that q puts
on the keys the score names:

  induction       the positions right after each earlier occurrence of q's token
                  (k = p + 1 for every p < q holding the same token); defined for
                  queries whose token occurred before
  previous_token  position q - 1; defined for q >= 1

A prompt's score is the mean over its queries where the score is defined; a head's
value is the mean over the prompts that have such a query, with its standard error
over those prompts (0 for a single prompt) and their count.
"""
from __future__ import annotations

import torch
from circ.runtime.analyses.common import (
    AnalysisError,
    check_nodes,
    mean_and_stderr,
    pattern_hook,
    progress,
    run_cached,
)

SCORES = ("induction", "previous_token")


def attention_scores(loaded, prompts, heads, *, score: str, batch_size: int = 32,
                     show_progress: bool = True) -> dict:
    """{"values": {head: mean}, "stderr": {head: se}, "n": prompts scored, "queries": count,
    "score": score, "query": "all"} keyed by head id."""
    if score not in SCORES:
        raise AnalysisError(f"unknown attention score {score!r}; scores: {', '.join(SCORES)}")
    heads = check_nodes(heads, loaded.shape, ("head",), "attention")
    by_layer: dict[int, list[int]] = {}
    for head in heads:
        by_layer.setdefault(head.layer, []).append(head.head)
    per_prompt: dict[str, list[float]] = {h.id: [] for h in heads}
    queries = 0
    with progress(len(prompts), f"{score} scores", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            targets = score_targets(batch.tokens, batch.lengths, score)  # [b, q, k]
            defined = targets.any(2)  # [b, q]
            counts = defined.sum(1)  # [b]
            scored = counts > 0
            queries += int(counts.sum())
            _, cache = run_cached(loaded.bridge, batch.tokens, [pattern_hook(layer) for layer in by_layer])
            for layer, indices in by_layer.items():
                pattern = cache[pattern_hook(layer)][:, indices].double()  # [b, h, q, k]
                mask = targets.to(pattern.device, pattern.dtype)
                mass = (pattern * mask[:, None]).sum(3).sum(2)  # [b, h]: summed over defined queries
                means = mass / counts.to(mass.device).clamp_min(1)[:, None]
                for slot, index in enumerate(indices):
                    per_prompt[f"L{layer}.H{index}"] += means[scored.to(means.device), slot].tolist()
            bar.update(len(batch))
    if queries == 0:
        raise AnalysisError(f"no query position of dataset {prompts.name} has a {score.replace('_', '-')} "
                            "target" + (": no token repeats an earlier one" if score == "induction" else ""))
    values, stderr = {}, {}
    for head in heads:
        values[head.id], stderr[head.id] = mean_and_stderr(per_prompt[head.id])
    n = len(next(iter(per_prompt.values())))
    return {"values": values, "stderr": stderr, "n": n, "queries": queries, "score": score, "query": "all"}


def score_targets(tokens: torch.Tensor, lengths: torch.Tensor, score: str) -> torch.Tensor:
    """[b, q, k] bool: the keys each real query position's score reads."""
    width = tokens.shape[1]
    positions = torch.arange(width)
    real = positions[None, :] < lengths[:, None]  # [b, s]
    if score == "previous_token":
        previous = positions[None, :, None] - 1 == positions[None, None, :]  # [1, q, k]
        return previous & real[:, :, None] & real[:, None, :]
    earlier = positions[None, :] < positions[:, None]  # [q, p]: p < q
    same = (tokens[:, :, None] == tokens[:, None, :]) & earlier[None] & real[:, :, None] & real[:, None, :]
    targets = torch.zeros_like(same)
    targets[:, :, 1:] = same[:, :, :-1]  # key p + 1 for every earlier occurrence p
    return targets


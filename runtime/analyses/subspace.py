"""Low-rank subspaces of a head's queries, keys and values.

Fit: on the fit dataset, collect the head's query/key/value vectors (`hook_q/k/v`,
that head, every real token), and take their mean m and the eigenvectors of their
covariance (the SVD of the centred vectors), strongest first.

Replace: a rank-r version of a part is m + (x - m) V_r V_r^T, the vector's
projection onto the mean plus the top r directions; rank 0 is the mean itself
(mean ablation) and "full" leaves the part untouched.

Score, per eval dataset, with every listed part replaced at once:

    recovered(r) = (m_rank_r - m_ablated) / (m_clean - m_ablated)

(None when ablating changes nothing). With several parts, `per_part` gives the same
score with one part replaced at a time. `explained` is the fraction of the fit
vectors' variance the top r directions hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    AnalysisError,
    check_nodes,
    head_slot,
    part_hook,
    progress,
    run_cached,
    run_hooked,
)
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.node_stats import PerPrompt, ratio_of_means

PARTS = ("q", "k", "v")


@dataclass(frozen=True)
class Fit:
    """The mean and the directions (columns, strongest first) of one head part's vectors."""

    mean: torch.Tensor  # [d_head]
    basis: torch.Tensor  # [d_head, d_head]
    variance: torch.Tensor  # [d_head], per direction

    def project(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        mean = self.mean.to(x.device, x.dtype)
        top = self.basis[:, :rank].to(x.device, x.dtype)
        return mean + (x - mean) @ top @ top.T

    def explained(self, rank: int) -> float:
        return float(self.variance[:rank].sum() / self.variance.sum()) if float(self.variance.sum()) > 0 else 1.0


def subspace(loaded, fit_prompts, heads, metric: ir.Metric, *, parts: Sequence[str] = PARTS,
             ranks: Sequence = (1, 2, 4, "full"), evals: Mapping[str, object] | None = None,
             batch_size: int = 32, show_progress: bool = True, fit_name: str | None = None) -> dict:
    """{"values": {head: {dataset: {rank: recovered}}}, "stderr": the same shape,
    "n": {dataset: prompts}, "per_part": {head: {part: ...}}, "explained": {head:
    {part: {rank: fraction}}}}; the fit dataset is always scored, under `fit_name`
    (default: the prompts' own name)."""
    shape = loaded.shape
    heads = check_nodes(heads, shape, ("head",), "subspace")
    parts = tuple(parts)
    if not parts or any(p not in PARTS for p in parts):
        raise AnalysisError(f"subspace parts are q, k and v, not {list(parts)}")
    for rank in ranks:
        if rank != "full" and not (isinstance(rank, int) and rank >= 1):
            raise AnalysisError(f"a rank is a positive integer or full, not {rank!r}")
    datasets = {fit_name or fit_prompts.name: fit_prompts, **(evals or {})}
    raw = ir.Metric(metric.name, metric.kind, metric.position)
    fits = fit_subspaces(loaded, fit_prompts, heads, parts, batch_size)
    groups = [parts] + ([(p,) for p in parts] if len(parts) > 1 else [])
    numeric = [r for r in ranks if r != "full"]
    runs = sum(len(p) for p in datasets.values()) * len(heads) * len(groups) * (2 + len(numeric))
    values, stderr, per_part = {}, {}, {}
    with progress(runs, "subspace", show_progress) as bar:
        for head in heads:
            for group in groups:
                measured = {name: _recovery(loaded, prompts, head, {p: fits[(head, p)] for p in group}, ranks, raw,
                                            batch_size, bar) for name, prompts in datasets.items()}
                scores = {name: found[0] for name, found in measured.items()}
                if group == parts:
                    values[head.id] = scores
                    stderr[head.id] = {name: found[1] for name, found in measured.items()}
                else:
                    per_part.setdefault(head.id, {})[group[0]] = scores
    explained = {head.id: {p: {str(r): (1.0 if r == "full" else fits[(head, p)].explained(r)) for r in ranks}
                           for p in parts} for head in heads}
    return {"values": values, "stderr": stderr, "n": {name: len(p) for name, p in datasets.items()},
            "per_part": per_part, "explained": explained}


def fit_subspaces(loaded, prompts, heads, parts, batch_size: int) -> dict[tuple, Fit]:
    """One `Fit` per (head, part), from every real token of `prompts`."""
    n_heads = loaded.shape.n_heads
    hooks = sorted({part_hook(h.layer, p) for h in heads for p in parts})
    sums, squares, count = {}, {}, 0
    for batch in prompts.batches(batch_size):
        _, cache = run_cached(loaded.bridge, batch.tokens, hooks)
        real = batch.real_mask()
        for head in heads:
            for part in parts:
                act = cache[part_hook(head.layer, part)]
                vectors = act[:, :, head_slot(act, head.head, n_heads)][real.to(act.device)].double()
                key = (head, part)
                sums[key] = sums.get(key, 0) + vectors.sum(0)
                squares[key] = squares.get(key, 0) + vectors.T @ vectors
        count += int(real.sum())
    fits = {}
    for key in sums:
        mean = sums[key] / count
        covariance = squares[key] / count - torch.outer(mean, mean)
        variance, basis = torch.linalg.eigh(covariance)  # ascending
        fits[key] = Fit(mean=mean.float(), basis=basis.flip(1).float(), variance=variance.flip(0).clamp_min(0).float())
    return fits


def _recovery(loaded, prompts, head, fits: dict[str, Fit], ranks, metric, batch_size, bar) -> tuple[dict, dict]:
    """recovered(rank) on one dataset with the parts in `fits` replaced together, and
    its standard error over prompts (a ratio of means: node_stats.ratio_of_means)."""
    numeric = sorted({r for r in ranks if r != "full"})
    per_prompt = PerPrompt()
    for batch in prompts.batches(batch_size):
        clean_logits, _ = run_cached(loaded.bridge, batch.tokens, [])
        per_prompt.add("clean", metric_values(clean_logits, batch, metric, clean_logits=clean_logits))
        for rank in [0, *numeric]:
            hooks = [(part_hook(head.layer, part), _projection_hook(fit, head.head, rank, loaded.shape.n_heads))
                     for part, fit in fits.items()]
            logits = run_hooked(loaded.bridge, batch.tokens, hooks)
            per_prompt.add(rank, metric_values(logits, batch, metric, clean_logits=clean_logits))
        bar.update(len(batch) * (2 + len(numeric)))
    clean, ablated = per_prompt.of("clean"), per_prompt.of(0)
    scores, errors = {}, {}
    for rank in ranks:
        if rank == "full":
            scores["full"], errors["full"] = 1.0, 0.0
        else:
            scores[str(rank)], errors[str(rank)] = ratio_of_means(per_prompt.of(rank) - ablated, clean - ablated)
    return scores, errors


def _projection_hook(fit: Fit, head: int, rank: int, n_heads: int):
    def hook(activation, hook):
        out = activation.clone()
        slot = head_slot(activation, head, n_heads)
        out[:, :, slot] = fit.project(activation[:, :, slot], rank)
        return out

    return hook

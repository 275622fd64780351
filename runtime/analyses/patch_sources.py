"""Patch sources: where the activations written into a patched run come from.

`make_source` turns an `ir.PatchSource` into an object whose `fetch(batch, hooks)`
returns, for a batch of the target dataset, the replacement activation of each hook
(broadcastable to the hook's [batch, seq, ...] activation) and, for sources that run
the model, that run's logits (the "patched source" baseline).

  dataset   prompt i of the target takes prompt i of another dataset; the two
            prompts must have the same number of tokens
  corrupt   each target prompt's own corrupted prompt
  resample  prompt i takes a prompt of another dataset drawn with the seed among
            those with the same number of tokens (never itself, when the other
            dataset is the target)
  mean      the mean activation over a dataset. Per position when every prompt of
            that dataset and of the target has the same number of tokens; otherwise
            position 0 (the BOS token, when the model has one) takes the mean at
            position 0 and every other position the mean over all other real tokens
  zero      zeros
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError, run_cached
from circ.runtime.data.prompts import Prompts

SOURCE_KINDS = ("dataset", "corrupt", "resample", "mean", "zero")


@dataclass
class SourceBatch:
    """Replacement activations by hook name; logits of the source run, if any."""

    activations: dict[str, torch.Tensor]
    logits: torch.Tensor | None


class RunSource:
    """Activations from running the model on other tokens, row by row aligned to the target."""

    runs_model = True

    def __init__(self, bridge, tokens_for):
        self._bridge = bridge
        self._tokens_for = tokens_for

    def fetch(self, batch: Prompts, hooks: Sequence[str]) -> SourceBatch:
        logits, cache = run_cached(self._bridge, self.tokens(batch), hooks)
        return SourceBatch(cache, logits)

    def tokens(self, batch: Prompts) -> torch.Tensor:
        """The source prompts' tokens for `batch`, row by row."""
        return self._tokens_for(batch)


class MeanSource:
    """Mean activations over a dataset, computed once per hook."""

    runs_model = False

    def __init__(self, bridge, dataset: Prompts, per_position: bool, batch_size: int):
        self._bridge = bridge
        self._dataset = dataset
        self._per_position = per_position
        self._batch_size = batch_size
        self._means: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def fetch(self, batch: Prompts, hooks: Sequence[str]) -> SourceBatch:
        missing = [h for h in hooks if h not in self._means]
        if missing:
            self._means.update(self._compute(missing))
        width = batch.tokens.shape[1]
        out = {}
        for hook in hooks:
            first, rest = self._means[hook]
            if self._per_position:
                out[hook] = first[None]
            else:
                out[hook] = torch.cat([first[None], rest[None].expand(width - 1, *rest.shape)])[None]
        return SourceBatch(out, None)

    def _compute(self, hooks: Sequence[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        totals: dict[str, torch.Tensor] = {}
        firsts: dict[str, torch.Tensor] = {}
        for part in self._dataset.batches(self._batch_size):
            _, cache = run_cached(self._bridge, part.tokens, hooks)
            real = part.real_mask()[:, 1:]
            for hook in hooks:
                act = cache[hook].double()
                if self._per_position:
                    totals[hook] = totals.get(hook, 0) + act.sum(0)
                    continue
                weights = real.reshape(*real.shape, *([1] * (act.dim() - 2))).to(act.device)
                totals[hook] = totals.get(hook, 0) + (act[:, 1:] * weights).sum((0, 1))
                firsts[hook] = firsts.get(hook, 0) + act[:, 0].sum(0)
        count = len(self._dataset)
        if self._per_position:
            return {hook: ((totals[hook] / count).float(), None) for hook in hooks}
        n_rest = max(int((self._dataset.lengths - 1).sum()), 1)
        return {hook: ((firsts[hook] / count).float(), (totals[hook] / n_rest).float()) for hook in hooks}


class ZeroSource:
    """Zeros for every hook."""

    runs_model = False

    def fetch(self, batch: Prompts, hooks: Sequence[str]) -> SourceBatch:
        return SourceBatch({hook: torch.zeros(()) for hook in hooks}, None)


def make_source(loaded, target: Prompts, source: ir.PatchSource, datasets: Mapping[str, Prompts], *,
                seed: int = 0, batch_size: int = 32):
    """The activation source for patching into `target`; `datasets` holds every
    tokenised dataset a source may name."""
    if source.kind not in SOURCE_KINDS:
        raise AnalysisError(f"unknown patch source {source.kind!r}; use {', '.join(SOURCE_KINDS)}")
    bridge = loaded.bridge
    if source.kind == "zero":
        return ZeroSource()
    if source.kind == "corrupt":
        if target.corrupt is None:
            raise AnalysisError(f'dataset "{target.name}" has no corrupted prompts to patch from')
        return RunSource(bridge, lambda batch: batch.corrupt)
    other = _dataset(source, datasets)
    if source.kind == "mean":
        uniform = len(set(other.lengths.tolist()) | set(target.lengths.tolist())) == 1
        return MeanSource(bridge, other, uniform, batch_size)
    if source.kind == "dataset":
        rows = torch.arange(len(target))
        if len(other) < len(target):
            raise AnalysisError(f'dataset "{other.name}" has {len(other)} prompts, fewer than the {len(target)} of "{target.name}"')
    else:
        rows = _resample_rows(target, other, source.seed if source.seed is not None else seed)
    _check_lengths(target, other, rows)
    return RunSource(bridge, lambda batch: other.tokens[rows[batch.rows], : batch.tokens.shape[1]])


def _dataset(source: ir.PatchSource, datasets: Mapping[str, Prompts]) -> Prompts:
    if source.dataset is None:
        raise AnalysisError(f'a "{source.kind}" patch source needs a dataset')
    if source.dataset not in datasets:
        raise AnalysisError(f'unknown dataset "{source.dataset}" in the patch source')
    return datasets[source.dataset]


def _check_lengths(target: Prompts, other: Prompts, rows: torch.Tensor) -> None:
    differs = (other.lengths[rows] != target.lengths).nonzero()
    if len(differs):
        i = int(differs[0])
        raise AnalysisError(
            f'prompt {i} of "{target.name}" has {int(target.lengths[i])} tokens but its source, prompt '
            f'{int(rows[i])} of "{other.name}", has {int(other.lengths[rows[i]])}; patched prompts must match in length')


def _resample_rows(target: Prompts, other: Prompts, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    same_dataset = other.name == target.name
    rows = []
    for i, length in enumerate(target.lengths.tolist()):
        candidates = (other.lengths == length).nonzero()[:, 0]
        if same_dataset:
            candidates = candidates[candidates != i]
        if len(candidates) == 0:
            raise AnalysisError(f'no prompt of "{other.name}" has the {length} tokens of prompt {i} of "{target.name}" to resample from')
        rows.append(int(candidates[torch.randint(len(candidates), (1,), generator=generator)]))
    return torch.tensor(rows)

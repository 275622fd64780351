"""Attention patterns of chosen heads, read from a query position.

For each head, the attention row at the query position (averaged over the query
positions when it picks several) is summarised per prompt and averaged over prompts:

  values[head][name]  attention mass onto the tokens of each named position of the
                      dataset, plus "bos" (position 0, when the model puts a BOS
                      there) and "self" (the query position itself)
  stderr[head][name]  the mass's standard error over those prompts; n[head][name]
                      how many prompts have the name
  spread[head][name]  normalised entropy (0: all on one token, 1: uniform) of the
                      attention within a named position's tokens, for names that
                      cover more than one token
  patterns[head]      the first prompt's row: its token strings and weights
  explorer            the report's attention explorer: the whole patterns of the
                      first `explore` prompts, weights rounded to 3 decimals (see
                      `explorer_layout` for what is kept and docs/results.md)

The summaries are read by hooks that change nothing (`AttentionSums`), during the
dataset's clean run when the executor gathered them there, else in a forward pass
of their own; the explorer's few prompts are read in a pass of their own.
"""
from __future__ import annotations

import math

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import check_nodes, pattern_hook, progress, run_cached, run_hooked

EXPLORE_PROMPTS = 8  # prompts kept for the report's explorer unless the spec says `explore=`
MAX_EXPLORER_WEIGHTS = 250_000  # weights kept per analysis: the report stays small at any model size
DECIMALS = 3


def attention(loaded, prompts, heads, *, query: ir.Position = ir.LAST, batch_size: int = 32,
              show_progress: bool = True, explore: int = EXPLORE_PROMPTS,
              recorded: "AttentionSums | None" = None) -> dict:
    """{"values": ..., "spread": ..., "patterns": ..., "explorer": ..., "query": str(query)}
    keyed by head id. `recorded`: the sums the dataset's clean run already gathered for
    this query; without them the patterns of the heads' layers are read in a forward
    pass of their own."""
    heads = check_nodes(heads, loaded.shape, ("head",), "attention")
    if recorded is None:
        recorded = AttentionSums(query, prompts, loaded.tokenizer)
        layers = sorted({h.layer for h in heads})
        with progress(len(prompts), "attention", show_progress) as bar:
            for batch in prompts.batches(batch_size):
                run_hooked(loaded.bridge, batch.tokens, recorded.hooks(batch, layers))
                bar.update(len(batch))
    return {**recorded.result(heads), "explorer": explore_patterns(loaded, prompts, heads, query, explore, batch_size)}


def explore_patterns(loaded, prompts, heads, query: ir.Position, explore: int, batch_size: int) -> dict:
    """The explorer's examples, read in a forward pass over its first prompts only."""
    explorer = explorer_layout(prompts, [h.id for h in heads], query, explore)
    kept = set(explorer["heads"])
    kept_heads = [h for h in heads if h.id in kept]
    layers = sorted({h.layer for h in kept_heads})
    shown = prompts.select(range(explorer["prompts"]))
    seen = 0
    for batch in shown.batches(batch_size) if explorer["prompts"] and layers else ():
        _, cache = run_cached(loaded.bridge, batch.tokens, [pattern_hook(layer) for layer in layers])
        for row in range(len(batch)):
            _keep_example(explorer["examples"][seen + row], loaded, cache, batch, row, kept_heads)
        seen += len(batch)
    return explorer


class AttentionSums:
    """Running sums of the attention summaries of every head of the layers it is fed,
    for one query position of one dataset, gathered by read-only hooks on
    `hook_pattern` during any forward pass over the dataset's batches in order."""

    def __init__(self, query: ir.Position, prompts, tokenizer):
        self.query = query
        self.names = sorted(prompts.marks)
        self.tokenizer = tokenizer
        # (layer, "mass"|"spread", name) -> [per head sums, per head sums of squares, prompts]
        self.sums: dict[tuple[int, str, str], list] = {}
        self.first: dict[int, torch.Tensor] = {}  # layer -> the first prompt's rows [h, k]
        self.first_tokens: list[str] | None = None

    def hooks(self, batch, layers) -> list:
        """Hooks that add `batch`'s patterns of `layers` to the sums and change nothing."""
        queries = batch.position_mask(self.query).float()
        weights = queries / queries.sum(1, keepdim=True)  # [b, q]
        if self.first_tokens is None:
            length = int(batch.lengths[0])
            self.first_tokens = self.tokenizer.convert_ids_to_tokens(batch.tokens[0, :length].tolist())

        def record(layer):
            def hook(pattern, hook):
                self._add(layer, pattern.detach().float(), weights, batch)
                return pattern
            return hook

        return [(pattern_hook(layer), record(layer)) for layer in layers]

    def _add(self, layer: int, pattern: torch.Tensor, weights: torch.Tensor, batch) -> None:
        rows = torch.einsum("bq,bhqk->bhk", weights.to(pattern.device), pattern)
        for key, per_prompt in _summaries(rows, pattern, weights, batch, self.names).items():
            per_prompt = per_prompt.double().cpu()
            entry = self.sums.setdefault((layer, *key), [0.0, 0.0, 0])
            entry[0] = entry[0] + per_prompt.sum(0)
            entry[1] = entry[1] + (per_prompt ** 2).sum(0)
            entry[2] += int(per_prompt.shape[0])
        if layer not in self.first:
            self.first[layer] = rows[0, :, :int(batch.lengths[0])]

    def result(self, heads) -> dict:
        """values and spread as in the module docstring; stderr[head][name] the standard
        error of a mass over prompts, n[head][name] the prompts that have the name."""
        result = {key: {h.id: {} for h in heads} for key in ("values", "spread", "stderr", "n")}
        for head in heads:
            for (layer, kind, name), (totals, squares, count) in sorted(self.sums.items()):
                if layer != head.layer or not count:
                    continue
                mean = float(totals[head.head]) / count
                result["values" if kind == "mass" else "spread"][head.id][name] = mean
                if kind == "mass":
                    variance = max(0.0, float(squares[head.head]) - count * mean * mean) / max(1, count - 1)
                    result["stderr"][head.id][name] = math.sqrt(variance / count) if count > 1 else 0.0
                    result["n"][head.id][name] = count
        patterns = {h.id: {"tokens": self.first_tokens, "weights": self.first[h.layer][h.head].tolist()}
                    for h in heads}
        return {**result, "patterns": patterns, "query": str(self.query)}


def explorer_layout(prompts, head_ids: list[str], query: ir.Position, explore: int) -> dict:
    """What the explorer keeps, before any weight is read: the first `explore` prompts;
    every query row of their patterns (row q holds the weights on keys 0..q) when that
    fits MAX_EXPLORER_WEIGHTS, else only the rows at the analysis's query positions,
    and then only as many heads (in the analysis's order) as fit."""
    shown = prompts.select(range(min(explore, len(prompts))))
    lengths = shown.lengths.tolist()
    query_rows = [m.nonzero().flatten().tolist() for m in shown.position_mask(query)]
    every_row = [list(range(length)) for length in lengths]
    per_head = sum(length * (length + 1) // 2 for length in lengths)
    rows_kind, rows = "all", every_row
    if per_head * len(head_ids) > MAX_EXPLORER_WEIGHTS:
        rows_kind, rows = "query", query_rows
        per_head = sum(q + 1 for qs in query_rows for q in qs)
    fits = max(1, MAX_EXPLORER_WEIGHTS // max(1, per_head))
    return {"prompts": len(lengths), "of": len(prompts), "explore": explore, "rows": rows_kind,
            "decimals": DECIMALS, "heads": head_ids[:fits],
            "examples": [{"query": qs, "rows": r, "tokens": [], "patterns": {}}
                         for qs, r in zip(query_rows, rows)]}


def _keep_example(example: dict, loaded, cache, batch, row: int, heads) -> None:
    """Fill one explorer example from a batch's cached patterns."""
    length = int(batch.lengths[row])
    example["tokens"] = loaded.tokenizer.convert_ids_to_tokens(batch.tokens[row, :length].tolist())
    for head in heads:
        pattern = cache[pattern_hook(head.layer)][row, head.head].double()
        pattern = (pattern * 10 ** DECIMALS).round() / 10 ** DECIMALS
        example["patterns"][head.id] = [pattern[q, :q + 1].tolist() for q in example["rows"]]


def _summaries(rows, pattern, weights, batch, names) -> dict:
    """{("mass"|"spread", name): float [prompts that have it, h], each prompt's value
    per head} from rows [b, h, k] and patterns [b, h, q, k]."""
    mass, spread = {}, {}
    for name in names:
        marks = batch.marks[name]
        index, valid = marks.index.to(rows.device), marks.valid.to(rows.device)
        picked = rows.gather(2, index[:, None, :].expand(-1, rows.shape[1], -1)) * valid[:, None, :]  # [b, h, m]
        present = valid.any(1)
        mass[name] = picked.sum(2)[present]
        several = valid.sum(1) > 1
        if bool(several.any()):
            share = picked / picked.sum(2, keepdim=True).clamp_min(1e-30)
            entropy = (-(share * share.clamp_min(1e-30).log()).sum(2)
                       / valid.sum(1).float().log().clamp_min(1e-30)[:, None])  # [b, h]
            spread[name] = entropy[several]
    if batch.has_bos:
        mass["bos"] = rows[:, :, 0]
    diagonal = pattern.diagonal(dim1=2, dim2=3)  # [b, h, q]
    mass["self"] = (diagonal * weights.to(diagonal.device)[:, None, :]).sum(2)
    return {**{("mass", k): v for k, v in mass.items()}, **{("spread", k): v for k, v in spread.items()}}

"""Attention patterns of chosen heads, read from a query position.

For each head, the attention row at the query position (averaged over the query
positions when it picks several) is summarised per prompt and averaged over prompts:

  values[head][name]  attention mass onto the tokens of each named position of the
                      dataset, plus "bos" (position 0, when the model puts a BOS
                      there) and "self" (the query position itself)
  spread[head][name]  normalised entropy (0: all on one token, 1: uniform) of the
                      attention within a named position's tokens, for names that
                      cover more than one token
  patterns[head]      the first prompt's row: its token strings and weights
  explorer            the report's attention explorer: the whole patterns of the
                      first `explore` prompts, weights rounded to 3 decimals (see
                      `explorer_layout` for what is kept and docs/results.md)
"""
from __future__ import annotations

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import check_nodes, pattern_hook, progress, run_cached

EXPLORE_PROMPTS = 8  # prompts kept for the report's explorer unless the spec says `explore=`
MAX_EXPLORER_WEIGHTS = 250_000  # weights kept per analysis: the report stays small at any model size
DECIMALS = 3


def attention(loaded, prompts, heads, *, query: ir.Position = ir.LAST, batch_size: int = 32,
              show_progress: bool = True, explore: int = EXPLORE_PROMPTS) -> dict:
    """{"values": ..., "spread": ..., "patterns": ..., "explorer": ..., "query": str(query)}
    keyed by head id."""
    heads = check_nodes(heads, loaded.shape, ("head",), "attention")
    explorer = explorer_layout(prompts, [h.id for h in heads], query, explore)
    kept = set(explorer["heads"])
    kept_heads = [h for h in heads if h.id in kept]
    seen = 0
    layers = sorted({h.layer for h in heads})
    by_layer = {layer: sorted({h.head for h in heads if h.layer == layer}) for layer in layers}
    ids = {(h.layer, h.head): h.id for h in heads}
    names = sorted(prompts.marks)
    sums: dict[tuple[str, str, str], list] = {}  # (head id, "mass"|"spread", name) -> [total, prompts]
    patterns = {}
    with progress(len(prompts), "attention", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            _, cache = run_cached(loaded.bridge, batch.tokens, [pattern_hook(layer) for layer in layers])
            queries = batch.position_mask(query).float()
            weights = queries / queries.sum(1, keepdim=True)  # [b, q]
            rows = {}
            for layer, indices in by_layer.items():  # every chosen head of a layer at once
                pattern = cache[pattern_hook(layer)][:, indices].float()  # [b, h, q, k]
                layer_rows = torch.einsum("bq,bhqk->bhk", weights.to(pattern.device), pattern)
                for (kind, name), (totals, count) in _summaries(layer_rows, pattern, weights, batch, names).items():
                    for index, total in zip(indices, totals):
                        entry = sums.setdefault((ids[layer, index], kind, name), [0.0, 0])
                        entry[0] += total
                        entry[1] += count
                rows.update({(layer, index): layer_rows[:, slot] for slot, index in enumerate(indices)})
            for head in heads:
                if head.id not in patterns:
                    length = int(batch.lengths[0])
                    patterns[head.id] = {
                        "tokens": loaded.tokenizer.convert_ids_to_tokens(batch.tokens[0, :length].tolist()),
                        "weights": rows[head.layer, head.head][0, :length].tolist(),
                    }
            for row in range(max(0, min(len(batch), len(explorer["examples"]) - seen))):
                _keep_example(explorer["examples"][seen + row], loaded, cache, batch, row, kept_heads)
            seen += len(batch)
            bar.update(len(batch))
    result = {"values": {h.id: {} for h in heads}, "spread": {h.id: {} for h in heads}}
    for (head_id, kind, name), (total, count) in sorted(sums.items()):
        if count:
            result["values" if kind == "mass" else "spread"][head_id][name] = total / count
    return {**result, "patterns": patterns, "explorer": explorer, "query": str(query)}


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
    """{("mass"|"spread", name): (per head, the sum over the batch's prompts that have
    it; how many have it)} from rows [b, h, k] and patterns [b, h, q, k]."""
    mass, spread = {}, {}
    for name in names:
        marks = batch.marks[name]
        index, valid = marks.index.to(rows.device), marks.valid.to(rows.device)
        picked = rows.gather(2, index[:, None, :].expand(-1, rows.shape[1], -1)) * valid[:, None, :]  # [b, h, m]
        present = valid.any(1)
        mass[name] = (picked.sum(2)[present].sum(0).tolist(), int(present.sum()))
        several = valid.sum(1) > 1
        if bool(several.any()):
            share = picked / picked.sum(2, keepdim=True).clamp_min(1e-30)
            entropy = (-(share * share.clamp_min(1e-30).log()).sum(2)
                       / valid.sum(1).float().log().clamp_min(1e-30)[:, None])  # [b, h]
            spread[name] = (entropy[several].sum(0).tolist(), int(several.sum()))
    if batch.has_bos:
        mass["bos"] = (rows[:, :, 0].sum(0).tolist(), len(batch))
    diagonal = pattern.diagonal(dim1=2, dim2=3)  # [b, h, q]
    mass["self"] = ((diagonal * weights.to(diagonal.device)[:, None, :]).sum((0, 2)).tolist(), len(batch))
    return {**{("mass", k): v for k, v in mass.items()}, **{("spread", k): v for k, v in spread.items()}}

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
"""
from __future__ import annotations

import torch

from circ.compiler import ir
from circ.runtime.analyses.common import check_nodes, pattern_hook, progress, run_cached


def attention(loaded, prompts, heads, *, query: ir.Position = ir.LAST, batch_size: int = 32,
              show_progress: bool = True) -> dict:
    """{"values": ..., "spread": ..., "patterns": ..., "query": str(query)} keyed by head id."""
    heads = check_nodes(heads, loaded.shape, ("head",), "attention")
    layers = sorted({h.layer for h in heads})
    names = sorted(prompts.marks)
    sums: dict[tuple[str, str, str], list] = {}  # (head id, "mass"|"spread", name) -> [total, prompts]
    patterns = {}
    with progress(len(prompts), "attention", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            _, cache = run_cached(loaded.bridge, batch.tokens, [pattern_hook(layer) for layer in layers])
            queries = batch.position_mask(query).float()
            weights = queries / queries.sum(1, keepdim=True)  # [b, q]
            for head in heads:
                pattern = cache[pattern_hook(head.layer)][:, head.head].float()  # [b, q, k]
                rows = torch.einsum("bq,bqk->bk", weights.to(pattern.device), pattern)
                for (kind, name), (total, count) in _summaries(rows, pattern, weights, batch, names).items():
                    entry = sums.setdefault((head.id, kind, name), [0.0, 0])
                    entry[0] += total
                    entry[1] += count
                if head.id not in patterns:
                    length = int(batch.lengths[0])
                    patterns[head.id] = {
                        "tokens": loaded.tokenizer.convert_ids_to_tokens(batch.tokens[0, :length].tolist()),
                        "weights": rows[0, :length].tolist(),
                    }
            bar.update(len(batch))
    result = {"values": {h.id: {} for h in heads}, "spread": {h.id: {} for h in heads}}
    for (head_id, kind, name), (total, count) in sorted(sums.items()):
        if count:
            result["values" if kind == "mass" else "spread"][head_id][name] = total / count
    return {**result, "patterns": patterns, "query": str(query)}


def _summaries(rows, pattern, weights, batch, names) -> dict:
    """{("mass"|"spread", name): (sum over the batch's prompts that have it, how many have it)}."""
    mass, spread = {}, {}
    for name in names:
        marks = batch.marks[name]
        index, valid = marks.index.to(rows.device), marks.valid.to(rows.device)
        picked = rows.gather(1, index) * valid
        present = valid.any(1)
        mass[name] = (float(picked.sum(1)[present].sum()), int(present.sum()))
        several = valid.sum(1) > 1
        if bool(several.any()):
            share = picked / picked.sum(1, keepdim=True).clamp_min(1e-30)
            entropy = -(share * share.clamp_min(1e-30).log()).sum(1) / valid.sum(1).float().log().clamp_min(1e-30)
            spread[name] = (float(entropy[several].sum()), int(several.sum()))
    if batch.has_bos:
        mass["bos"] = (float(rows[:, 0].sum()), len(batch))
    diagonal = pattern.diagonal(dim1=1, dim2=2)  # [b, q]
    mass["self"] = (float((diagonal * weights.to(diagonal.device)).sum()), len(batch))
    return {**{("mass", k): v for k, v in mass.items()}, **{("spread", k): v for k, v in spread.items()}}


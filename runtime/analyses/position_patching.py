"""Exact activation patching at each token position on its own (`patch(at=each)`).

For every position p of the target prompts, each node is patched at p only, as
TransformerLens's `get_act_patch_resid_pre` (and `..._attn_out`, `..._mlp_out`,
per head `..._attn_head_out_by_pos`) do: one layer x position grid per node kind.
That needs every target prompt, and so every source prompt, to have the same number
of tokens, so that position p means the same token slot in all of them.

positions[node id][str(p)] = how much the node helps at p, with the sign of every
patching value (docs/results.md: metric(clean) - metric(patched at p) for a metric
that is better when higher), averaged over prompts;
values[node id] = the sum over positions, so that node selections and rules that
read one number per node still have one; tokens = the first prompt's tokens.

With listed positions (`at=[answer_label, last]`) each of them is patched on its own
instead, keyed by its name (or index); the prompts may then differ in length, a name
picks its own token(s) in each prompt, and tokens is None.
"""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.analyses.common import each_position
from circ.runtime.analyses.exact_patching import exact_patch


def patch_each_position(loaded, prompts, nodes, metric: ir.Metric, source, *, position: ir.Position = ir.EACH,
                        effect: str, batch_size: int, show_progress: bool, kernel: str = "auto") -> dict:
    """{"values": {node: sum}, "positions": {node: {"p": value}}, "tokens": [...] or None, "baseline": {...}}."""
    chosen, tokens = each_position(loaded, prompts, position, "patch")
    positions: dict[str, dict[str, float]] = {node.id: {} for node in nodes}
    baseline = None
    for one in chosen:
        out = exact_patch(loaded, prompts, nodes, metric, source, effect=effect, position=one,
                          batch_size=batch_size, show_progress=show_progress, kernel=kernel)
        baseline = baseline or out["baseline"]
        for node_id, value in out["values"].items():
            positions[node_id][str(one)] = value
    return {"values": {node_id: sum(by_position.values()) for node_id, by_position in positions.items()},
            "positions": positions, "tokens": tokens, "baseline": baseline}

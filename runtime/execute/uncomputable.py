"""Why an expectation's number could not be computed: the reason recorded with a
failed expectation whose value is null, so that nothing fails (or passes) unexplained."""
from __future__ import annotations

import math

from circ.compiler import ir


def reason(quantity: ir.Quantity, analyses: dict) -> str:
    result = analyses.get(quantity.analysis) or {}
    args = dict(quantity.args)
    name = quantity.analysis
    if quantity.accessor == "node":
        raw = (result.get("values") or {}).get(args.get("node"))
        if raw is None:
            return f"`{name}` has no value for {args.get('node')}"
        return f"the value of {args.get('node')} in `{name}` is {_shown(raw)}"
    if quantity.accessor == "recovered":
        if not result.get("values"):
            return f"`{name}` analysed no head"
        return (f"`{name}` has no finite recovery on `{args.get('dataset')}` at the ranks the "
                "bound admits")
    raw = result.get(quantity.accessor)
    if result.get("kind") == "faithfulness" and raw is None:
        return ("the metric is the same with every node ablated as on the clean run, so no share "
                "of it can be recovered")
    if raw is None:
        return f"`{name}` gives no {quantity.accessor}"
    return f"`{name}`'s {quantity.accessor} is {_shown(raw)}"


def _shown(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "infinite"
    return f"not a number ({value!r})"

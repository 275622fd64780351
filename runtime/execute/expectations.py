"""Evaluate the spec's expectations against the analyses' results.

Each expectation reads one number (`Quantity`) and compares it with a threshold.
A number that cannot be computed (an empty circuit, a metric that did not move)
fails the expectation with value null rather than passing by accident.
"""
from __future__ import annotations

import math
import operator

from circ.compiler import ir
from circ.runtime.execute.uncomputable import reason

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


def quantity_value(quantity: ir.Quantity, analyses: dict) -> float | None:
    result = analyses[quantity.analysis]
    args = dict(quantity.args)
    if quantity.accessor in ("value", "total"):
        return _number(result.get(quantity.accessor))
    if quantity.accessor == "node":
        return _number(result.get("values", {}).get(args["node"]))
    if quantity.accessor == "recovered":
        return _recovered(result, args)
    raise ValueError(f"unknown accessor {quantity.accessor!r}")


def _recovered(result: dict, args: dict) -> float | None:
    """Per head: the best recovery among the admitted ranks; over heads: the worst
    (an expectation about a set of heads must hold for each of them)."""
    per_head = []
    for per_data in result.get("values", {}).values():
        per_rank = per_data.get(args["dataset"], {})
        admitted = [_number(v) for r, v in per_rank.items() if _admits(r, args)]
        admitted = [v for v in admitted if v is not None]
        per_head.append(max(admitted) if admitted else None)
    if not per_head or any(v is None for v in per_head):
        return None
    return min(per_head)


def _admits(rank, args: dict) -> bool:
    rank = rank if rank == "full" else int(rank)
    if "rank" in args:
        return rank == args["rank"] or str(rank) == str(args["rank"])
    return rank != "full" and rank <= args["max_rank"]


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def evaluate(expectation: ir.Expectation, analyses: dict, source_line: str) -> dict:
    value = quantity_value(expectation.left, analyses)
    passed = value is not None and _COMPARE[expectation.op](value, expectation.right)
    result = {"text": source_line.strip(), "line": expectation.span.line, "value": value,
              "op": expectation.op, "threshold": expectation.right, "passed": bool(passed)}
    if value is None:
        result["reason"] = reason(expectation.left, analyses)
    return result

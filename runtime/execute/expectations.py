"""Evaluate the spec's expectations against the results of a run.

A number (`ir.Number`) is read from an analysis's results, a node set's size or a
dataset's clean run, and compared with a threshold. A number that cannot be
computed (an empty circuit, a metric that did not move, a position the prompts do
not have) fails the expectation with value null and a reason, rather
than passing by accident. Membership (`NODE in NODES`) and relations between node
sets (`A <= B`) hold or not; their entries name the nodes compared.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Callable

from circ.compiler import ir
from circ.runtime.analyses.curve_areas import size_at
from circ.runtime.execute import uncomputable

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_BROKEN_RELATION = {"==": "the sets differ", "!=": "the sets are equal",
                    "<=": "left is not a subset of right", "<": "left is not a proper subset of right",
                    ">=": "left is not a superset of right", ">": "left is not a proper superset of right"}


class Uncomputable(Exception):
    """A number an expectation reads does not exist in the results; the message says why."""


@dataclass
class Readings:
    """What expectations read: analysis results by name, dataset entries by name
    (`metrics`, `accuracy`), the node ids of a node set in canonical order, and each
    circuit's members with their categories ({circuit: {node id: category}})."""

    analyses: dict
    datasets: dict
    node_ids: Callable[[ir.NodeSet], list[str]]
    categories: dict = field(default_factory=dict)
    growth: dict = field(default_factory=dict)  # circuits grown to a faithfulness: what growing measured


def quantity_value(quantity: ir.Quantity, analyses: dict) -> float | None:
    result = analyses[quantity.analysis]
    args = dict(quantity.args)
    if quantity.accessor in ("value", "total", "cpr", "cmd"):
        return _number(result.get(quantity.accessor))
    if quantity.accessor == "size_at":
        return _size_at(quantity.analysis, result, args["target"])
    if quantity.accessor == "node":
        return _number(result.get("values", {}).get(args["node"]))
    if quantity.accessor == "recovered":
        return _recovered(result, args)
    if quantity.accessor == "edge":
        return _edge(quantity.analysis, result, args)
    if quantity.accessor == "attention":
        return _attention(quantity.analysis, result, args)
    if quantity.accessor == "rank":
        return _rank(quantity.analysis, result, args["node"])
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


def _size_at(name: str, result: dict, target: float) -> float:
    size = size_at(result.get("sizes", []), result.get("faithfulness", []), target)
    if size is None:
        raise Uncomputable(f"no size that `{name}` measured reaches faithfulness {target:g}")
    return float(size)


def _edge(name: str, result: dict, args: dict) -> float | None:
    key = f"{args['sender']}->{args['receiver']}"
    values = result.get("values", {})
    if key not in values:
        raise Uncomputable(f"`{name}` measured no edge {args['sender']} -> {args['receiver']}")
    return _number(values[key])


def _attention(name: str, result: dict, args: dict) -> float | None:
    per_head = result.get("values", {})
    if args["node"] not in per_head:
        raise Uncomputable(f"`{name}` did not read the attention of {args['node']}")
    masses = per_head[args["node"]]
    if args["position"] not in masses:
        raise Uncomputable(f"the prompts of `{name}` have no position `{args['position']}`; "
                           "positions: " + ", ".join(sorted(masses)))
    return _number(masses[args["position"]])


def _rank(name: str, result: dict, node: str) -> float | None:
    """1-based place of `node` by |value| among the analysis's nodes (ties share the
    better place)."""
    values = {k: v for k, v in result.get("values", {}).items()
              if k != "BIAS" and _number(v) is not None}
    if node not in values:
        raise Uncomputable(f"`{name}` has no value for {node}")
    mine = abs(values[node])
    return float(1 + sum(1 for v in values.values() if abs(v) > mine))


def _dataset_value(number, datasets: dict) -> float | None:
    entry = datasets.get(number.dataset, {})
    if isinstance(number, ir.Accuracy):
        if entry.get("accuracy") is None:
            raise Uncomputable(f"no accuracy computed on `{number.dataset}`")
        return _number(entry["accuracy"])
    metrics = entry.get("metrics", {})
    if number.metric not in metrics:
        raise Uncomputable(f"`{number.metric}` was not computed on `{number.dataset}`")
    return _number(metrics[number.metric])


def _value(number: ir.Number, readings: Readings) -> float | None:
    if isinstance(number, ir.Quantity):
        return quantity_value(number, readings.analyses)
    if isinstance(number, ir.GrownFaithfulness):
        if number.circuit not in readings.growth:
            raise Uncomputable(f"`{number.circuit}` was not grown to a faithfulness")
        return _number(readings.growth[number.circuit].get("value"))
    if isinstance(number, ir.Count):
        return float(len(readings.node_ids(number.nodes)))
    return _dataset_value(number, readings.datasets)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def evaluate(expectation: ir.Expectation, readings: Readings, source_line: str) -> dict:
    entry = {"text": source_line.strip(), "line": expectation.span.line, "op": expectation.op}
    if expectation.form == "membership":
        return {**entry, **_membership(expectation, readings)}
    if expectation.form == "relation":
        return {**entry, **_relation(expectation, readings)}
    reason = None
    try:
        value = _value(expectation.left, readings)
    except Uncomputable as why:
        value, reason = None, str(why)
    passed = value is not None and _COMPARE[expectation.op](value, expectation.right)
    entry.update({"value": value, "threshold": expectation.right, "passed": bool(passed)})
    if value is None:
        entry["reason"] = reason or _reason(expectation.left, readings)
    return entry


def _reason(number: ir.Number, readings: Readings) -> str:
    if isinstance(number, ir.Quantity):
        return uncomputable.reason(number, readings.analyses)
    return "the value read is not a finite number"


def _membership(expectation: ir.Expectation, readings: Readings) -> dict:
    node, members = expectation.left.id, readings.node_ids(expectation.right)
    holds = node in members
    detail = f"{node} is {'' if holds else 'not '}in the set: {_listed(members)}"
    right = expectation.right
    if not holds and isinstance(right, ir.Select) and right.category is not None:
        circuit = readings.categories.get(right.analysis, {})
        detail += (f" ({node} is in {right.analysis} as `{circuit[node]}`)" if circuit.get(node)
                   else f" ({node} is in {right.analysis} without a category)" if node in circuit
                   else f" ({node} is not in {right.analysis})")
    return {"value": holds, "threshold": None, "passed": holds, "detail": detail,
            "nodes": {"left": [node], "right": members}}


def _relation(expectation: ir.Expectation, readings: Readings) -> dict:
    left = readings.node_ids(expectation.left)
    right = readings.node_ids(expectation.right)
    holds = _COMPARE[expectation.op](set(left), set(right))
    only_left = [n for n in left if n not in right]
    only_right = [n for n in right if n not in left]
    detail = (f"{len(left)} and {len(right)} nodes; only left: {_listed(only_left)}; "
              f"only right: {_listed(only_right)}")
    if not holds:
        detail = f"{_BROKEN_RELATION[expectation.op]}: {detail}"
    return {"value": holds, "threshold": None, "passed": holds, "detail": detail,
            "nodes": {"left": left, "right": right}}


def _listed(ids: list[str], shown: int = 8) -> str:
    if not ids:
        return "none"
    more = f", … ({len(ids)} in all)" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more

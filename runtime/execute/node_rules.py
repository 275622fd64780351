"""Evaluate the spec's node rules (`where` filters and category rules) on results.

A rule reads per-node numbers: the value of the analysis being selected from
(`effect`), a node's value in another analysis (by name), and attention statistics
(`attends(pos)`, `spread(pos)`), and two numbers relative to what `effect` reads:
`max`, its largest |value| over nodes, and `metric`, the clean metric value of the
analysis it comes from; terms combine with + - * /. A number that is missing for a
node (a head that no attention analysis looked at, an MLP in a head-only analysis)
makes the comparison false rather than failing the run, so a rule never silently
picks a node it knows nothing about.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

from circ.compiler import ir

_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class NodeFacts:
    """What rules may read: per-analysis values, and per-head attention stats.

    values[analysis][node_id] -> float
    attention[node_id][position_name] -> mean attention mass to that position
    spread[node_id][position_name] -> normalised entropy over that position's tokens
    metrics[analysis] -> the clean metric value that analysis's values are relative to
    """

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    attention: dict[str, dict[str, float]] = field(default_factory=dict)
    spread: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def term_value(term: ir.Term, node_id: str, facts: NodeFacts, effect_from: str | None) -> float:
    """The number a rule term reads for one node; NaN when it is not known."""
    if isinstance(term, (int, float)):
        return float(term)
    if isinstance(term, ir.Abs):
        return abs(term_value(term.term, node_id, facts, effect_from))
    if isinstance(term, ir.Arith):
        return _arith(term.op, term_value(term.left, node_id, facts, effect_from),
                      term_value(term.right, node_id, facts, effect_from))
    if isinstance(term, ir.Relative):
        return _relative(term.name, facts, effect_from)
    if isinstance(term, ir.Attends):
        return facts.attention.get(node_id, {}).get(term.position, math.nan)
    if isinstance(term, ir.Spread):
        return facts.spread.get(node_id, {}).get(term.position, math.nan)
    if isinstance(term, ir.Field):
        name = effect_from if term.name in ("effect", "value", "score") else term.name
        if name is None:
            return math.nan
        return _as_float(facts.values.get(name, {}).get(node_id, math.nan))
    raise TypeError(f"not a rule term: {term!r}")


def holds(rule: ir.Rule, node_id: str, facts: NodeFacts, effect_from: str | None = None) -> bool:
    """Whether `rule` holds for the node; comparisons with an unknown side are false."""
    if isinstance(rule, ir.Compare):
        left = term_value(rule.left, node_id, facts, effect_from)
        right = term_value(rule.right, node_id, facts, effect_from)
        if math.isnan(left) or math.isnan(right):
            return False
        return _COMPARE[rule.op](left, right)
    if isinstance(rule, ir.And):
        return all(holds(part, node_id, facts, effect_from) for part in rule.parts)
    if isinstance(rule, ir.Or):
        return any(holds(part, node_id, facts, effect_from) for part in rule.parts)
    if isinstance(rule, ir.Not):
        return not holds(rule.rule, node_id, facts, effect_from)
    raise TypeError(f"not a rule: {rule!r}")


def _arith(op: str, left: float, right: float) -> float:
    if op == "/":
        return left / right if right else math.nan
    return _ARITH[op](left, right)


def _relative(name: str, facts: NodeFacts, effect_from: str | None) -> float:
    """`max`: the largest |value| among the nodes `effect` reads; `metric`: the clean
    metric value of the analysis those values come from."""
    if effect_from is None:
        return math.nan
    if name == "metric":
        return _as_float(facts.metrics.get(effect_from, math.nan))
    sizes = [abs(v) for k, v in facts.values.get(effect_from, {}).items()
             if k != "BIAS" and not math.isnan(_as_float(v))]
    return max(sizes) if sizes else math.nan


def _as_float(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan

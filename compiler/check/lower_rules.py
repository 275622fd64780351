"""Rules (`abs(effect) > 0.05 and not attends(labels) > 0.3`) lowered to IR.

A rule's names are read in a scope: in `A where RULE`, `effect` is A's score; in a
`categories C { ... }` block, `effect` is the circuit's score and `attends(pos)` /
`spread(pos)` read attention patterns of the circuit's heads. Any other name is an
analysis whose per-node score the rule reads. All errors of a rule are reported.
"""
from __future__ import annotations

from dataclasses import dataclass

from circ.compiler import ir
from circ.compiler.check.context import Context, Reported, Use
from circ.compiler.check.signatures import NO_SCORE_HINT, RULE_FUNCTIONS
from circ.compiler.diagnostics import a_or_an, did_you_mean
from circ.compiler.syntax import tree as s


@dataclass(frozen=True)
class Scope:
    source: str | None  # analysis or circuit that `effect` reads
    effect: bool  # whether `effect` has a meaning here
    attention: bool  # whether attends()/spread() may be used here


def lower_rule(ctx: Context, rule, scope: Scope, use: Use) -> ir.Rule:
    """The IR of a rule; raises Reported after reporting every error in it."""
    errors_before = len(ctx.diagnostics)
    lowered = _rule(ctx, rule, scope, use)
    if len(ctx.diagnostics) > errors_before:
        raise Reported()
    return lowered


def _rule(ctx: Context, r, scope: Scope, use: Use):
    if isinstance(r, s.RuleParen):
        return _rule(ctx, r.rule, scope, use)
    if isinstance(r, s.RuleNot):
        return ir.Not(_rule(ctx, r.rule, scope, use), span=r.span)
    if isinstance(r, s.RuleBool):
        parts = []
        for side in (r.left, r.right):
            lowered = _rule(ctx, side, scope, use)
            same = ir.And if r.op == "and" else ir.Or
            parts.extend(lowered.parts if isinstance(lowered, same) else [lowered])
        return (ir.And if r.op == "and" else ir.Or)(tuple(parts), span=r.span)
    return ir.Compare(_term(ctx, r.left, scope, use), r.op, _term(ctx, r.right, scope, use),
                      span=r.span)


def _term(ctx: Context, t, scope: Scope, use: Use):
    try:
        return _term_or_fail(ctx, t, scope, use)
    except Reported:
        return 0.0


def _term_or_fail(ctx: Context, t, scope: Scope, use: Use):
    if isinstance(t, s.Num):
        return float(t.value)
    if isinstance(t, s.Name):
        return _field(ctx, t, scope, use)
    if t.func == "abs":
        return ir.Abs(_term_or_fail(ctx, t.arg, scope, use), span=t.span)
    if t.func in ("attends", "spread"):
        if not scope.attention:
            ctx.fail("E311", f"{t.func}() reads attention patterns and is only available in a "
                     "`categories` block", t.func_span)
        if not isinstance(t.arg, s.Name) or t.arg.name == "all":
            ctx.fail("E312", f"{t.func}() takes a named position such as `answer_label`, "
                     "`labels`, `bos` or `self`", t.arg.span)
        node = ir.Attends if t.func == "attends" else ir.Spread
        return node(t.arg.name, span=t.span, position_span=t.arg.span)
    ctx.fail("E205", f"unknown rule function `{t.func}`", t.func_span,
             did_you_mean(t.func, RULE_FUNCTIONS) or "rule functions: abs, attends, spread")


def _field(ctx: Context, t: s.Name, scope: Scope, use: Use) -> ir.Field:
    if t.name == "effect":
        if not scope.effect:
            ctx.fail("E317", f"`effect` has no meaning here: `{scope.source}` is a literal "
                     "node list without scores", t.span, "name an analysis instead, e.g. `dla > 0`")
        return ir.Field("effect", span=t.span)
    ctx.lookup(t.name, t.span, use, ("analysis",), extra=("effect",))
    if ctx.scores_nodes(t.name) is False:
        kind = ctx.analysis_kind(t.name)
        ctx.fail("E310", f"`{t.name}` is {a_or_an(kind)} analysis: it has no per-node score", t.span,
                 NO_SCORE_HINT)
    return ir.Field(t.name, span=t.span)

"""Lower expectations: `QUANTITY OP NUMBER`, where the quantity reads one number
from an analysis (`A`, `A.value`, `A.total`, `A[NODE]`, `A.recovered(D, rank <= 4)`)
or from an analysis written inline, which becomes an implicit analysis named
`_expect{N}_{kind}` (N: the expectation's 1-based position in the spec)."""
from __future__ import annotations

from circ.compiler import ir
from circ.compiler.check import nodesets
from circ.compiler.check.binding import bind
from circ.compiler.check.context import Context, Reported, Use
from circ.compiler.check.lower_analyses import analysis_call, lower_analysis
from circ.compiler.check.signatures import RECOVERED, accessors
from circ.compiler.diagnostics import a_or_an, did_you_mean
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.printer import expr_text

_ATTRIBUTES = ("value", "total")


def lower_expectations(ctx: Context) -> None:
    number = 0
    for order, statement in ctx.statements:
        if not isinstance(statement, s.ExpectStmt):
            continue
        number += 1
        try:
            quantity = _quantity(ctx, statement.left, ctx.use(order, statement), number)
            ctx.expectations.append(ir.Expectation(quantity, statement.op,
                                                   float(statement.right.value), statement.span))
        except Reported:
            pass


def _quantity(ctx: Context, left, use: Use, number: int) -> ir.Quantity:
    if isinstance(left, s.Attr):
        if left.attr not in _ATTRIBUTES:
            ctx.fail("E308", f"unknown accessor `.{left.attr}`", left.attr_span,
                     did_you_mean(left.attr, _ATTRIBUTES + ("recovered",)) or
                     "accessors: .value, .total, [NODE], .recovered(DATASET, rank <= N)")
        analysis = _analysis(ctx, left.base, use, number)
        return _checked(ctx, analysis, left.attr, (), left)
    if isinstance(left, s.Index):
        analysis = _analysis(ctx, left.base, use, number)
        return _checked(ctx, analysis, "node", (("node", _node(ctx, left.index, analysis)),), left)
    if isinstance(left, s.MethodCall) and left.method != "on":
        if left.method != "recovered":
            ctx.fail("E308", f"unknown accessor `.{left.method}(...)`", left.method_span,
                     did_you_mean(left.method, ("recovered",)))
        analysis = _analysis(ctx, left.base, use, number)
        values = bind(ctx, RECOVERED, left.args, left.method_span, use, "recovered()")
        return _checked(ctx, analysis, "recovered", _recovered_args(ctx, analysis, values, left), left)
    analysis = _analysis(ctx, left, use, number)
    return _checked(ctx, analysis, "value", (), left)


def _analysis(ctx: Context, base, use: Use, number: int) -> ir.Analysis:
    """The analysis an accessor reads: a named one, or an inline one made implicit."""
    if isinstance(base, s.Name):
        ctx.lookup(base.name, base.span, use, ("analysis",))
        analysis = ctx.analyses.get(base.name)
        if analysis is None:
            raise Reported()
        return analysis
    if isinstance(base, (s.Call, s.MethodCall)):
        kind = analysis_call(ctx, base, use).func
        name = f"_expect{number}_{kind}"
        analysis = lower_analysis(ctx, name, base, use, base.span)
        ctx.analyses[name] = analysis
        ctx.implicit.add(name)
        return analysis
    ctx.fail("E301", f"expected an analysis result, got `{expr_text(base)}`", base.span,
             "e.g. faith.value, dla.total, patched[L1.H2] or lowrank.recovered(clean, rank <= 4)")


def _checked(ctx: Context, analysis: ir.Analysis, accessor: str, args: tuple, left) -> ir.Quantity:
    allowed = accessors(analysis)
    if accessor not in allowed:
        shown = {"node": "[NODE]", "total": ".total", "value": ".value",
                 "recovered": ".recovered(DATASET, rank <= N)"}
        hint = (f"{analysis.kind} analyses give " + ", ".join(shown[a] for a in allowed)
                if allowed else f"{analysis.kind} analyses give no single number to compare")
        ctx.fail("E308", f"`{analysis.name}` is {a_or_an(analysis.kind)} analysis: it has no "
                 f"{shown[accessor]}", left.span, hint)
    return ir.Quantity(analysis.name, accessor, args, span=left.span)


def _node(ctx: Context, index, analysis: ir.Analysis) -> str:
    if not isinstance(index, s.NodeLit):
        ctx.fail("E301", f"expected one node such as L1.H2, got `{expr_text(index)}`", index.span)
    nodes = nodesets.parse_node(ctx, index)
    if nodes is None or len(nodes) != 1:
        ctx.fail("E301", f"expected one node, got the set `{index.text}`", index.span)
    node = nodes[0]
    listed = analysis.nodes
    if isinstance(listed, ir.NodeList) and listed.unexpanded is None and node not in listed.nodes:
        ctx.fail("E319", f"{node.id} is not among the nodes of `{analysis.name}`", index.span)
    return node.id


def _recovered_args(ctx: Context, analysis: ir.Analysis, values: dict, left) -> tuple:
    dataset = values["dataset"]
    if analysis.kind != "subspace":
        return (("dataset", dataset),)
    evaluated = (analysis.dataset,) + tuple(analysis.option("eval", ()))
    if dataset not in evaluated:
        ctx.fail("E320", f"`{analysis.name}` is not evaluated on `{dataset}`", left.args[0].span,
                 "it is evaluated on " + ", ".join(evaluated))
    op, rank = values["rank"]
    ranks = analysis.option("ranks", ())
    if op == "==":
        if rank not in ranks:
            ctx.fail("E315", f"rank {rank} is not among the ranks of `{analysis.name}`",
                     left.span, "ranks: " + ", ".join(str(r) for r in ranks))
        return (("dataset", dataset), ("rank", rank))
    if rank == "full":
        ctx.fail("E315", f"`rank {op} full` is not a bound; use `rank == full`", left.span)
    bound = rank if op == "<=" else rank - 1
    if not any(r != "full" and r <= bound for r in ranks):
        ctx.fail("E315", f"no rank of `{analysis.name}` satisfies `rank {op} {rank}`", left.span,
                 "ranks: " + ", ".join(str(r) for r in ranks))
    return (("dataset", dataset), ("max_rank", bound))

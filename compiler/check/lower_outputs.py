"""Lower expectations. Three forms, told apart by their operands:

  `NUMBER OP N`   NUMBER reads one number: from an analysis (`A`, `A.value`,
                  `A.total`, `A[NODE]`, `A[SENDER -> RECEIVER]`, `A[HEAD].to(POS)`,
                  `A.recovered(D, rank <= 4)`, `rank(A, NODE)`), possibly written
                  inline, which becomes an implicit analysis named `_expect{N}_{kind}`
                  (N: the expectation's 1-based position in the spec); from a node
                  set (`count(NODES)`); or from a dataset's clean run
                  (`accuracy(D)`, `metric(M, on=D)`).
  `NODE in NODES` membership.
  `NODES OP NODES` a set relation (`==`, `!=`, `<=` subset, `<`, `>=`, `>`).
"""
from __future__ import annotations

from circ.compiler import ir
from circ.compiler.check import nodesets
from circ.compiler.check.binding import bind
from circ.compiler.check.context import Context, Reported, Use
from circ.compiler.check.dataset_positions import dataset_positions
from circ.compiler.check.lower_analyses import analysis_call, lower_analysis, upstream
from circ.compiler.check.signatures import (
    ANALYSES,
    ATTENTION_POSITIONS,
    QUANTITIES,
    RECOVERED,
    RESERVED,
    accessors,
    scores_nodes,
)
from circ.compiler.diagnostics import a_or_an, did_you_mean
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.printer import expr_text

_ATTRIBUTES = ("value", "total", "cpr", "cmd")
_METHODS = ("recovered", "to", "size_at")
_NODE_KINDS = ("embed", "head", "mlp", "resid", "head_input")
_NO_OPTIONS = ("induction",)  # generators whose prompts have no answer options
_SHOWN = {"node": "[NODE]", "total": ".total", "value": ".value",
          "recovered": ".recovered(DATASET, rank <= N)", "edge": "[SENDER -> RECEIVER]",
          "attention": "[HEAD].to(POSITION)", "rank": "a rank (rank(A, NODE))",
          "cpr": ".cpr", "cmd": ".cmd", "size_at": ".size_at(FAITHFULNESS)"}
_EDGE_HINT = "write `A[SENDER -> RECEIVER]`, e.g. paths[L0.H0 -> L1.H0.v]"
_LISTED = 16  # valid nodes named in a hint


def lower_expectations(ctx: Context) -> None:
    number = 0
    for order, statement in ctx.statements:
        if not isinstance(statement, s.ExpectStmt):
            continue
        number += 1
        try:
            ctx.expectations.append(_expectation(ctx, statement, ctx.use(order, statement), number))
        except Reported:
            pass


def _expectation(ctx: Context, statement: s.ExpectStmt, use: Use, number: int) -> ir.Expectation:
    left, op, right = statement.left, statement.op, statement.right
    if op == "in":
        if not isinstance(left, s.NodeLit):
            hint = (f"to compare two node sets write `{expr_text(left)} <= {expr_text(right)}`"
                    if _is_node_set(left) else None)
            ctx.fail("E330", f"`in` tests one node, such as L1.H0, not `{expr_text(left)}`",
                     left.span, hint)
        node = _one_node(ctx, left, f"for several nodes write `{expr_text(left)} <= {expr_text(right)}`")
        return ir.Expectation(node, "in", _node_set(ctx, right, use), statement.span)
    if isinstance(right, s.Num):
        return ir.Expectation(_number(ctx, left, use, number), op, float(right.value), statement.span)
    if _is_number(left):
        ctx.fail("E330", f"`{expr_text(left)}` is a number: compare it with a number", right.span,
                 "node sets are compared with node sets, e.g. `expect output <= circuit`")
    if not _is_node_set(right):
        ctx.fail("E330", f"expected a number or a node set after `{op}`, got `{expr_text(right)}`",
                 right.span, "e.g. expect dla.total > 2, or expect output <= circuit")
    sides = []
    for side in (left, right):
        try:
            sides.append(_node_set(ctx, side, use))
        except Reported:
            pass
    if len(sides) < 2:
        raise Reported()
    return ir.Expectation(sides[0], op, sides[1], statement.span)


def _is_number(e) -> bool:
    """Whether `e` is written like a number (an accessor, a call that is no node-set
    selection), as opposed to a node set."""
    if isinstance(e, s.Call):
        return e.func in QUANTITIES or e.func in ANALYSES
    if isinstance(e, s.Attr):
        return e.attr in _ATTRIBUTES
    return isinstance(e, (s.Index, s.EdgeIndex, s.MethodCall, s.Num))


def _is_node_set(e) -> bool:
    return isinstance(e, (s.Name, s.NodeLit, s.ListLit, s.SetOp, s.Paren, s.Where, s.Attr)) or (
        isinstance(e, s.Call) and e.func in ("top", "best"))


def _node_set(ctx: Context, e, use: Use) -> ir.NodeSet:
    return nodesets.evaluate(ctx, e, use, _NODE_KINDS)


# --------------------------------------------------------------------------- numbers
def _number(ctx: Context, left, use: Use, number: int) -> ir.Number:
    declared = ctx.declarations.get(left.name) if isinstance(left, s.Name) else None
    if declared is not None and declared.kind == "circuit":
        ctx.fail("E330", f"`{left.name}` is a circuit, not a number", left.span,
                 f"compare count({left.name}) with a number, or `{left.name}` with another node set")
    if isinstance(left, s.Call) and left.func in QUANTITIES:
        return _function(ctx, left, use, number)
    if isinstance(left, s.Call) and left.func == "faithfulness" and len(left.args) == 1 \
            and left.args[0].name is None:
        return _grown_faithfulness(ctx, left, use)
    if isinstance(left, s.Call) and left.func not in ANALYSES:
        ctx.fail("E205", f"unknown function `{left.func}`", left.func_span,
                 did_you_mean(left.func, list(QUANTITIES) + list(ANALYSES))
                 or "numbers: count(NODES), accuracy(D), metric(M, on=D), rank(A, NODE), "
                    "or an analysis such as faithfulness(...)")
    if isinstance(left, s.Attr):
        if left.attr not in _ATTRIBUTES:
            ctx.fail("E308", f"unknown accessor `.{left.attr}`", left.attr_span,
                     did_you_mean(left.attr, _ATTRIBUTES + _METHODS) or
                     "accessors: .value, .total, [NODE], [SENDER -> RECEIVER], [HEAD].to(POSITION), "
                     ".recovered(DATASET, rank <= N), .cpr, .cmd, .size_at(FAITHFULNESS)")
        analysis = _analysis(ctx, left.base, use, number)
        return _checked(ctx, analysis, left.attr, (), left)
    if isinstance(left, s.Index):
        analysis = _analysis(ctx, left.base, use, number)
        if analysis.kind in ("path_patch", "edges"):
            ctx.fail("E331", f"`{analysis.name}` is a {analysis.kind} analysis: its values are edges, "
                     f"not nodes", left.index.span, _EDGE_HINT)
        if analysis.kind == "attention" and not scores_nodes(analysis):
            ctx.fail("E308", f"`{analysis.name}` is an attention analysis: say where the head "
                     f"looks", left.span, f"e.g. {expr_text(left)}.to(answer_text)")
        _allowed(ctx, analysis, "node", left)
        return ir.Quantity(analysis.name, "node", (("node", _node(ctx, left.index, analysis)),),
                           span=left.span)
    if isinstance(left, s.EdgeIndex):
        analysis = _analysis(ctx, left.base, use, number)
        _allowed(ctx, analysis, "edge", left)
        return ir.Quantity(analysis.name, "edge", _edge(ctx, left, analysis), span=left.span)
    if isinstance(left, s.MethodCall) and left.method != "on":
        if left.method not in _METHODS:
            ctx.fail("E308", f"unknown accessor `.{left.method}(...)`", left.method_span,
                     did_you_mean(left.method, _METHODS))
        if left.method == "to":
            return _attention(ctx, left, use, number)
        if left.method == "size_at":
            return _size_at(ctx, left, use, number)
        analysis = _analysis(ctx, left.base, use, number)
        values = bind(ctx, RECOVERED, left.args, left.method_span, use, "recovered()")
        return _checked(ctx, analysis, "recovered", _recovered_args(ctx, analysis, values, left), left)
    analysis = _analysis(ctx, left, use, number)
    return _checked(ctx, analysis, "value", (), left)


def _function(ctx: Context, call: s.Call, use: Use, number: int) -> ir.Number:
    values = bind(ctx, QUANTITIES[call.func], call.args, call.func_span, use, f"{call.func}()")
    if call.func == "count":
        return ir.Count(_node_set(ctx, values["nodes"], use), span=call.span)
    if call.func == "accuracy":
        _check_options(ctx, values["on"], call.args[0].span)
        return ir.Accuracy(values["on"], span=call.span)
    if call.func == "metric":
        metric = ctx.metrics.get(values["metric"])
        if metric is not None and (metric.kind == "kl" or metric.normalized):
            what = "KL divergence from the clean run" if metric.kind == "kl" else "a normalised metric"
            ctx.fail("E333", f"`{metric.name}` is {what}: it has no value on a clean run alone",
                     call.args[0].span, "use a logit_diff, prob, logprob, accuracy or loss metric")
        return ir.MetricMean(values["metric"], values["on"], span=call.span)
    analysis = _analysis(ctx, values["analysis"], use, number)
    if not scores_nodes(analysis):
        ctx.fail("E310", f"`{analysis.name}` is {a_or_an(analysis.kind)} analysis: it has no "
                 "per-node score to rank by", values["analysis"].span,
                 "rank nodes of an attribute, patch or attention(..., score=...) analysis")
    node = _node(ctx, values["node"], analysis)
    return ir.Quantity(analysis.name, "rank", (("node", node),), span=call.span)


def _grown_faithfulness(ctx: Context, call: s.Call, use: Use) -> ir.GrownFaithfulness:
    """`faithfulness(C)` of a circuit grown by `discover(A, faithfulness=F)`: what the
    growth measured for C, over nodes or edges as it grew."""
    argument = call.args[0].value
    circuit = None
    if isinstance(argument, s.Name) and argument.name not in RESERVED:
        ctx.lookup(argument.name, argument.span, use, ("circuit",))
        circuit = ctx.circuits.get(argument.name)
        if circuit is None:
            raise Reported()
    grow = circuit.nodes.grow if circuit is not None and isinstance(circuit.nodes, ir.Select) else None
    if grow is None:
        ctx.fail("E395", f"faithfulness({expr_text(argument)}) alone reads a circuit grown by "
                 "discover(A, faithfulness=F); this one says nothing about how to measure it",
                 call.span, f"write faithfulness({expr_text(argument)}, on=DATASET, metric=METRIC)")
    return ir.GrownFaithfulness(argument.name, span=call.span)


def _check_options(ctx: Context, name: str, span: ir.Span) -> None:
    """accuracy() needs prompts with answer options; generators known to have none fail."""
    dataset = ctx.datasets.get(name)
    while dataset is not None and dataset.base is not None:
        dataset = ctx.datasets.get(dataset.base)
    if dataset is not None and dataset.kind in _NO_OPTIONS:
        ctx.fail("E333", f"`{name}` has no answer options ({dataset.kind} prompts): accuracy "
                 "compares the answer with the other options", span,
                 "use accuracy() on multiple-choice prompts, or metric(M, on=D)")


def _attention(ctx: Context, left: s.MethodCall, use: Use, number: int) -> ir.Quantity:
    if not isinstance(left.base, s.Index):
        ctx.fail("E308", f"`.to()` reads one head of an attention analysis, not "
                 f"`{expr_text(left.base)}`", left.base.span, "e.g. attn[L1.H0].to(answer_text)")
    analysis = _analysis(ctx, left.base.base, use, number)
    _allowed(ctx, analysis, "attention", left)
    node = _node(ctx, left.base.index, analysis)
    if len(left.args) != 1 or left.args[0].name is not None or not isinstance(left.args[0].value, s.Name):
        span = left.args[0].span if left.args else left.method_span
        ctx.fail("E332", "`.to()` takes one named position", span,
                 "e.g. .to(answer_text), .to(answer_label), .to(labels), .to(bos) or .to(self)")
    position = left.args[0].value
    _check_position(ctx, position, analysis)
    return ir.Quantity(analysis.name, "attention", (("node", node), ("position", position.name)),
                       span=left.span)


def _size_at(ctx: Context, left: s.MethodCall, use: Use, number: int) -> ir.Quantity:
    """`CURVE.size_at(F)`: the smallest measured size whose faithfulness reaches F."""
    analysis = _analysis(ctx, left.base, use, number)
    _allowed(ctx, analysis, "size_at", left)
    if len(left.args) != 1 or left.args[0].name is not None or not isinstance(left.args[0].value, s.Num):
        span = left.args[0].span if left.args else left.method_span
        ctx.fail("E392", "`.size_at()` takes one faithfulness, a number", span, "e.g. fc.size_at(0.9)")
    target = left.args[0].value
    if not 0 < target.value <= 1:
        ctx.fail("E392", f"no circuit can be asked to reach faithfulness {target.text}", target.span,
                 "a faithfulness to reach is above 0 and at most 1, e.g. fc.size_at(0.9)")
    return ir.Quantity(analysis.name, "size_at", (("target", float(target.value)),), span=left.span)


def _check_position(ctx: Context, position: s.Name, analysis: ir.Analysis) -> None:
    """The position `.to()` names must be one the attention analysis's prompts have:
    E321 when no dataset of the spec has it (a misspelling), E322 when others do."""
    known = {name: dataset_positions(d) for name, d in ctx.datasets.items()}
    mine = known.get(analysis.dataset)
    if mine is None or position.name in mine or position.name in ATTENTION_POSITIONS:
        return
    valid = sorted(mine | set(ATTENTION_POSITIONS))
    listed = f"positions of `{analysis.dataset}`: " + ", ".join(valid)
    if any(position.name in p for p in known.values() if p is not None):
        ctx.fail("E322", f"`{analysis.name}` reads attention on dataset `{analysis.dataset}`, which "
                 f"has no position `{position.name}`", position.span, listed)
    close = did_you_mean(position.name, valid)
    ctx.fail("E321", f"unknown position `{position.name}`", position.span,
             f"{close} {listed}" if close else listed)


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
    _allowed(ctx, analysis, accessor, left)
    return ir.Quantity(analysis.name, accessor, args, span=left.span)


def _allowed(ctx: Context, analysis: ir.Analysis, accessor: str, left) -> None:
    allowed = accessors(analysis)
    if accessor not in allowed:
        hint = (f"{analysis.kind} analyses give " + ", ".join(_SHOWN[a] for a in allowed)
                if allowed else f"{analysis.kind} analyses give no single number to compare")
        ctx.fail("E308", f"`{analysis.name}` is {a_or_an(analysis.kind)} analysis: it has no "
                 f"{_SHOWN[accessor]}", left.span, hint)


def _one_node(ctx: Context, index, set_hint: str | None = None) -> ir.Node:
    if not isinstance(index, s.NodeLit):
        ctx.fail("E301", f"expected one node such as L1.H2, got `{expr_text(index)}`", index.span)
    nodes = nodesets.parse_node(ctx, index)
    if nodes is None or len(nodes) != 1:
        ctx.fail("E301", f"expected one node, got the set `{index.text}`", index.span, set_hint)
    return nodes[0]


def _node(ctx: Context, index, analysis: ir.Analysis) -> str:
    node = _one_node(ctx, index)
    listed = analysis.nodes
    if isinstance(listed, ir.NodeList) and listed.unexpanded is None and node not in listed.nodes:
        ctx.fail("E319", f"{node.id} is not among the nodes of `{analysis.name}`", index.span,
                 _valid("its nodes", listed.nodes))
    return node.id


def _edge(ctx: Context, left: s.EdgeIndex, analysis: ir.Analysis) -> tuple:
    """(("sender", id), ("receiver", id)) of an edge the path patching measures."""
    found, failed = [], False
    for expr, side, listed in ((left.sender, "senders", analysis.nodes),
                               (left.receiver, "receivers", analysis.receivers)):
        try:
            node = _one_node(ctx, expr)
            if isinstance(listed, ir.NodeList) and listed.unexpanded is None and node not in listed.nodes:
                ctx.fail("E331", f"{node.id} is not among the {side} of `{analysis.name}`",
                         expr.span, _valid(side, listed.nodes))
            found.append(node)
        except Reported:
            failed = True
    if failed:
        raise Reported()
    sender, receiver = found
    if not upstream(sender, receiver):
        ctx.fail("E331", f"{sender.id} does not come before {receiver.id}: `{analysis.name}` "
                 "measures no such edge", left.span,
                 "a sender reaches receivers in later layers, or the MLP of its own layer")
    return (("sender", sender.id), ("receiver", receiver.id))


def _valid(what: str, nodes) -> str:
    ids = [n.id for n in sorted(nodes, key=nodesets.node_key)]
    shown = ", ".join(ids[:_LISTED]) + (f", … ({len(ids)} in all)" if len(ids) > _LISTED else "")
    return f"{what}: {shown}"


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

"""Node literals and node-set expressions.

Fixed sets (`L3.H1`, `L3.*`, `heads`, `a + b`, `[a, b]`) are expanded against the
model's Shape into a canonically ordered `NodeList`; sets chosen from results
(`top(A, k)`, `best(A)`, `A where RULE`, `CIRCUIT`, `CIRCUIT.CATEGORY`) become a
`Select`; `+`, `-` and lists with a chosen side become a `Combine`, computed when the
spec runs. Layer and head ranges are checked here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from circ.compiler import ir
from circ.compiler.check import lower_rules as rules
from circ.compiler.check.arguments import PRIMITIVES, bind
from circ.compiler.check.context import Context, Reported, Use
from circ.compiler.check.signatures import NO_SCORE_HINT, SELECTIONS, ranks_components
from circ.compiler.diagnostics import a_or_an, did_you_mean
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.printer import expr_text

_NODE_RE = re.compile(r"L(\d+)\.(?:(\*)|H(\d+)(?:\.([qkv]))?|(MLP)|(RESID))$")
_LEADING_ZERO = re.compile(r"0\d+")
_LEADING_ZEROS = re.compile(r"(?<=[LH])0+(\d)")
_PART_ORDER = {None: 0, "q": 1, "k": 2, "v": 3}
_KIND_ORDER = {"resid": 0, "head": 1, "head_input": 1, "mlp": 2}
EMBED = ir.Node(0, "embed")
KIND_NAMES = {"head": "a head", "mlp": "an MLP", "embed": "the embeddings",
              "resid": "a residual-stream node", "head_input": "a head input (q/k/v)"}
PLURAL_NAMES = {"head": "heads", "mlp": "MLPs", "embed": "the embeddings",
                "resid": "residual-stream nodes", "head_input": "head inputs (q/k/v)"}


def node_key(node: ir.Node):
    """Canonical order: EMBED, then per layer: RESID, heads (each followed by its
    q/k/v inputs), MLP."""
    if node.kind == "embed":
        return (0, 0, 0, 0, 0)
    head = node.head if node.head is not None else -1
    return (1, node.layer, _KIND_ORDER[node.kind], head, _PART_ORDER[node.part])


@dataclass(frozen=True)
class _Fixed:
    """A fixed set while it is being computed; `pending` holds the node kinds of
    parts that cannot be expanded because the shape is unknown."""

    nodes: frozenset
    pending: frozenset = frozenset()


@dataclass(frozen=True)
class _Combined:
    """`left op right` where a side is chosen when the spec runs; each side keeps its
    expression, to point at it when its fixed nodes are not allowed."""

    op: str
    left: object  # _Fixed | ir.Select | _Combined
    right: object
    left_expr: object
    right_expr: object
    span: ir.Span


def evaluate(ctx: Context, expr, use: Use, kinds: tuple[str, ...]) -> ir.NodeSet:
    """The node set `expr` denotes, checked against the allowed node `kinds`."""
    return _lowered(ctx, _eval(ctx, expr, use), expr, kinds)


def _lowered(ctx: Context, value, expr, kinds: tuple[str, ...]) -> ir.NodeSet:
    if isinstance(value, ir.Select):
        return value
    if isinstance(value, _Combined):
        sides, failed = [], False
        for side, side_expr in ((value.left, value.left_expr), (value.right, value.right_expr)):
            try:
                sides.append(_lowered(ctx, side, side_expr, kinds))
            except Reported:
                failed = True
        if failed:
            raise Reported()
        return ir.Combine(value.op, sides[0], sides[1], value.span)
    allowed = "only " + ", ".join(PLURAL_NAMES[k] for k in kinds) + " are allowed here"
    for kind in sorted(value.pending):
        if kind not in kinds:
            ctx.fail("E309", f"{PLURAL_NAMES[kind]} are not allowed here", expr.span, allowed)
    ordered = _in_order(value.nodes)
    for node in ordered:
        if node.kind not in kinds:
            ctx.fail("E309", f"{node.id} is {KIND_NAMES[node.kind]}, which is not allowed here",
                     expr.span, allowed)
    if value.pending:
        return ir.NodeList((), expr.span, unexpanded=expr_text(expr))
    if not value.nodes:
        ctx.fail("E314", "this node set is empty", expr.span)
    return ir.NodeList(ordered, expr.span)


@lru_cache(maxsize=64)
def _in_order(nodes: frozenset) -> tuple[ir.Node, ...]:
    """`nodes` in canonical order; a spec names the same sets again and again."""
    return tuple(sorted(nodes, key=node_key))


def parse_node(ctx: Context, lit: s.NodeLit) -> list[ir.Node] | None:
    """The nodes of one literal (`L3.*` gives every head of layer 3); None when the
    shape is unknown and the literal names a whole layer."""
    match = _NODE_RE.match(lit.text)
    if match is None:
        ctx.fail("E107", f"invalid node `{lit.text}`", lit.span, _literal_hint(lit.text))
    if any(_LEADING_ZERO.fullmatch(digits or "") for digits in (match.group(1), match.group(3))):
        canonical = _LEADING_ZEROS.sub(r"\1", lit.text)
        ctx.fail("E107", f"invalid node `{lit.text}`: an index with a leading zero", lit.span,
                 f"did you mean `{canonical}`?")
    layer = _index(match.group(1))
    shape = ctx.shape
    if shape is not None and layer >= shape.n_layers:
        ctx.fail("E401", f"layer {layer} is out of range: the model has {shape.n_layers} "
                 f"layer{'s' if shape.n_layers != 1 else ''}", lit.span,
                 f"valid layers are L0 to L{shape.n_layers - 1}")
    if match.group(2):
        if shape is None:
            return None
        return [ir.Node(layer, "head", h) for h in range(shape.n_heads)]
    if match.group(3) is not None:
        head = _index(match.group(3))
        if shape is not None and head >= shape.n_heads:
            ctx.fail("E402", f"head {head} is out of range: the model has {shape.n_heads} "
                     "heads per layer", lit.span, f"valid heads are H0 to H{shape.n_heads - 1}")
        part = match.group(4)
        return [ir.Node(layer, "head_input", head, part) if part else ir.Node(layer, "head", head)]
    if match.group(5):
        if shape is not None and not shape.has_mlp:
            ctx.fail("E405", f"`{lit.text}`: this model has no MLP layers", lit.span)
        return [ir.Node(layer, "mlp")]
    return [ir.Node(layer, "resid")]


def _literal_hint(text: str) -> str:
    pieces = text.split(".")
    fixed = [pieces[0].upper()]
    for piece in pieces[1:]:
        low = piece.lower()
        if re.fullmatch(r"h\d+", low) or low in ("mlp", "resid"):
            fixed.append(piece.upper())
        else:
            fixed.append(low)
    candidate = ".".join(fixed)
    if candidate != text and _NODE_RE.match(candidate):
        return f"did you mean `{candidate}`?"
    return "node literals look like L3.H1, L3.*, L3.MLP, L3.RESID or L3.H1.q"


def _words(ctx: Context, name: str) -> _Fixed | None:
    shape = ctx.shape
    if name in ("embed", "EMBED"):
        return _Fixed(frozenset([EMBED]))
    kind = {"heads": "head", "mlps": "mlp", "resid": "resid"}.get(name)
    if kind is None:
        return None
    if shape is None:
        return _Fixed(frozenset(), frozenset([kind]))
    return _every(shape, kind)


@lru_cache(maxsize=16)
def _every(shape: ir.Shape, kind: str) -> _Fixed:
    """Every node of `kind` in a model of `shape`."""
    if kind == "head":
        nodes = [ir.Node(l, "head", h) for l in range(shape.n_layers) for h in range(shape.n_heads)]
    elif kind == "mlp":
        nodes = [ir.Node(l, "mlp") for l in range(shape.n_layers)] if shape.has_mlp else []
    else:
        nodes = [ir.Node(l, "resid") for l in range(shape.n_layers)]
    return _Fixed(frozenset(nodes))


def _eval(ctx: Context, e, use: Use):
    if isinstance(e, s.Paren):
        return _eval(ctx, e.inner, use)
    if isinstance(e, s.NodeLit):
        nodes = parse_node(ctx, e)
        return _Fixed(frozenset(), frozenset(["head"])) if nodes is None else _Fixed(frozenset(nodes))
    if isinstance(e, s.Name):
        fixed = _words(ctx, e.name)
        return fixed if fixed is not None else _named_selection(ctx, e, use)
    if isinstance(e, s.Attr) and isinstance(e.base, s.Name):
        return _category(ctx, e, use)
    if isinstance(e, s.SetOp):
        return _set_op(ctx, e, use)
    if isinstance(e, s.ListLit):
        return _list(ctx, e, use)
    if isinstance(e, s.Call) and e.func == "discover":
        return _discover(ctx, e, use)
    if isinstance(e, s.Call) and e.func in SELECTIONS:
        return _top_or_best(ctx, e, use)
    if isinstance(e, s.Where):
        return _where(ctx, e, use)
    if isinstance(e, s.Call):
        ctx.fail("E205", f"unknown node-set function `{e.func}`", e.func_span,
                 did_you_mean(e.func, SELECTIONS) or "node sets are chosen with top(A, k) or best(A)")
    ctx.fail("E301", f"expected nodes, got `{expr_text(e)}`", e.span,
             "nodes look like L0.H1, L0.*, heads, mlps, [a, b], a circuit or top(A, k)")


def _named_selection(ctx: Context, e: s.Name, use: Use) -> ir.Select:
    decl = ctx.lookup(e.name, e.span, use, ("analysis", "circuit"),
                      extra=("heads", "mlps", "resid", "embed"))
    if decl.kind == "analysis" and ctx.scores_nodes(e.name) is False:
        kind = ctx.analysis_kind(e.name)
        ctx.fail("E310", f"`{e.name}` is {a_or_an(kind)} analysis: it has no per-node score to "
                 "select nodes by", e.span, NO_SCORE_HINT)
    return ir.Select(e.name, span=e.span)


def _category(ctx: Context, e: s.Attr, use: Use) -> ir.Select:
    circuit = e.base.name
    ctx.lookup(circuit, e.base.span, use, ("circuit",))
    entries = ctx.categories.get(circuit, {})
    if e.attr not in entries:
        ctx.fail("E206", f"circuit `{circuit}` has no category `{e.attr}`", e.attr_span,
                 did_you_mean(e.attr, entries) or f"define it in `categories {circuit} {{ ... }}`")
    if ctx.category_orders[circuit] >= use.order:
        ctx.fail("E203", f"category `{circuit}.{e.attr}` is used before its definition", e.span,
                 f"move `categories {circuit}` above this line")
    return ir.Select(circuit, span=e.span, category=e.attr)


def _set_op(ctx: Context, e: s.SetOp, use: Use):
    """Fixed sets combine now; a side chosen from results makes a `Combine` for the run."""
    left, right = _collect(ctx, [e.left, e.right], use)
    if not isinstance(left, _Fixed) or not isinstance(right, _Fixed):
        return _Combined(e.op, left, right, e.left, e.right, e.span)
    if e.op == "+":
        return _Fixed(left.nodes | right.nodes, left.pending | right.pending)
    if e.op == "&":
        return _Fixed(left.nodes & right.nodes, left.pending | right.pending)
    return _Fixed(left.nodes - right.nodes, left.pending | right.pending)


def _list(ctx: Context, e: s.ListLit, use: Use):
    """The union of the items: fixed ones now, then each chosen one at run time."""
    if not e.items:
        ctx.fail("E314", "this node list is empty", e.span)
    parts = _collect(ctx, e.items, use)
    fixed = [p for p in parts if isinstance(p, _Fixed)]
    chosen = [(p, item) for p, item in zip(parts, e.items) if not isinstance(p, _Fixed)]
    if fixed:
        union = _Fixed(frozenset().union(*(p.nodes for p in fixed)),
                       frozenset().union(*(p.pending for p in fixed)))
        value, value_expr = union, e
    else:
        (value, value_expr), chosen = chosen[0], chosen[1:]
    for part, item in chosen:
        value, value_expr = _Combined("+", value, part, value_expr, item, e.span), e
    return value


def _collect(ctx: Context, items, use: Use) -> list:
    """Evaluate every item, reporting all failures before giving up."""
    values, failed = [], False
    for expr in items:
        try:
            values.append(_eval(ctx, expr, use))
        except Reported:
            failed = True
    if failed:
        raise Reported()
    return values


def _selection_base(ctx: Context, e, use: Use, what: str) -> ir.Select:
    value = _eval(ctx, e, use)
    if isinstance(value, _Combined):
        ctx.fail("E313", f"{what} chooses from one analysis or circuit; `{expr_text(e)}` combines "
                 "several", e.span, "name the combination first, e.g. `circuit c = ...`, then select from c")
    if not isinstance(value, ir.Select):
        ctx.fail("E313", f"{what} chooses from an analysis or a circuit; `{expr_text(e)}` is a "
                 "fixed node set", e.span, "write e.g. top(dla, 4) where dla is an analysis")
    return value


def _top_or_best(ctx: Context, e: s.Call, use: Use) -> ir.Select:
    values = bind(ctx, SELECTIONS[e.func], e.args, e.func_span, use, f"{e.func}()", PRIMITIVES)
    base = _selection_base(ctx, values["from"], use, f"{e.func}()")
    if base.top is not None or base.best:
        ctx.fail("E313", f"{e.func}() of a selection that is already limited", e.span)
    if e.func == "best":
        return replace(base, best=True, span=e.span)
    return replace(base, top=values["k"], span=e.span)


def _discover(ctx: Context, e: s.Call, use: Use) -> ir.Select:
    values = bind(ctx, SELECTIONS["discover"], e.args, e.func_span, use, "discover()", PRIMITIVES)
    source = values["from"]
    kind = None
    if isinstance(source, s.Name):
        ctx.lookup(source.name, source.span, use, ("analysis", "circuit"))
        kind = ctx.analysis_kind(source.name)
    analysis = ctx.analyses.get(source.name) if isinstance(source, s.Name) else None
    if kind == "edges" and analysis is not None and analysis.option("method") == "acdc":
        if "top" in values or "faithfulness" in values:
            ctx.fail("E387", f"`{source.name}` is an ACDC analysis: it keeps its own edges, so discover() "
                     "takes neither top= nor faithfulness=", e.span, f"write discover({source.name})")
        return ir.Select(source.name, edges=True, span=e.span)
    if ("top" in values) == ("faithfulness" in values):
        ctx.fail("E393", "discover() takes either top=N (the strongest edges) or faithfulness=F (the "
                 "shortest prefix of a ranking that reaches F)", e.span,
                 "e.g. discover(e, top=20) or discover(dla, faithfulness=0.9); discover(a) alone for an "
                 "ACDC analysis")
    if "faithfulness" in values:
        return _grown(ctx, e, source, values["faithfulness"], kind)
    if kind != "edges":
        ctx.fail("E381", f"discover() keeps the strongest edges of an edges analysis; `{expr_text(source)}` "
                 "is not one", source.span, "e.g. analysis e = edges(heads + mlps + embed, source=corrupt, "
                 "target=clean, metric=ld), then discover(e, top=20)")
    return ir.Select(source.name, top=values["top"], edges=True, span=e.span)


def _grown(ctx: Context, e: s.Call, source, target, kind: str | None) -> ir.Select:
    """`discover(A, faithfulness=F)`: grown along A's ranking of edges (an edges
    analysis) or nodes, measured on A's dataset with A's metric, ablating from A's patch
    source (mean over its dataset when A has none)."""
    written = next(a for a in e.args if a.name == "faithfulness")
    if not 0 < target <= 1:
        ctx.fail("E391", f"faithfulness={expr_text(written.value)} is no faithfulness a circuit can be "
                 "asked to reach", written.span, "a target is above 0 and at most 1, e.g. faithfulness=0.9")
    if kind is None or not (kind == "edges" or ctx.scores_nodes(source.name)):
        what = f"{a_or_an(kind)} analysis with neither" if kind else "not an analysis"
        ctx.fail("E394", f"discover(A, faithfulness=F) grows a circuit along A's edge or node scores; "
                 f"`{expr_text(source)}` is {what}", source.span,
                 NO_SCORE_HINT + "; edge scores from edges analyses")
    analysis = ctx.analyses.get(source.name)
    if analysis is None:
        raise Reported()
    if not ranks_components(analysis):
        ctx.fail("E394", f"discover(A, faithfulness=F) grows circuits of heads and MLPs (the embeddings are "
                 f"never ablated); `{source.name}` scores none", source.span, "rank e.g. patch(heads + mlps, ...)")
    if analysis.metric is None:
        ctx.fail("E394", f"discover(A, faithfulness=F) measures circuits with A's metric; `{source.name}` "
                 "has none", source.span, "grow along an attribute or patch analysis")
    ablate = analysis.source or ir.PatchSource("mean", analysis.dataset, span=analysis.span)
    growth = ir.Growth(float(target), analysis.dataset, analysis.metric, ablate)
    return ir.Select(source.name, grow=growth, edges=kind == "edges", span=e.span)


def _where(ctx: Context, e: s.Where, use: Use) -> ir.Select:
    base = _selection_base(ctx, e.base, use, "`where`")
    scope = rules.Scope(source=base.analysis, effect=True, attention=False)
    rule = rules.lower_rule(ctx, e.rule, scope, use)
    if base.where is not None:
        rule = ir.And((base.where, rule), span=e.span)
    return replace(base, where=rule, span=e.span)


def _index(digits: str) -> int:
    """A layer or head index; absurdly long ones stay out of range instead of
    overflowing Python's integer conversion."""
    return int(digits) if len(digits) <= 12 else 10**12

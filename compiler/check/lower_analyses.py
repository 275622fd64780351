"""Lower analyses: `patch(...)`, `attribute(...)`, ... and `A.on(DATASET, ...)`,
which re-runs analysis A with another dataset (and any argument overridden).
Each kind's extra rules (metric kinds, options that depend on each other) are
checked here."""
from __future__ import annotations

import math

from circ.compiler import ir
from circ.compiler.check.binding import bind
from circ.compiler.check.context import Context, Reported, Use
from circ.compiler.check.signatures import ANALYSES, NO_SCORE_HINT, NODE_WORDS, ranks_components
from circ.compiler.diagnostics import a_or_an, did_you_mean
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.printer import expr_text


def lower_analyses(ctx: Context) -> None:
    for order, statement in ctx.statements:
        if isinstance(statement, s.Definition) and statement.keyword == "analysis" \
                and ctx.owns(statement):
            try:
                ctx.analyses[statement.name] = lower_analysis(
                    ctx, statement.name, statement.value, ctx.use(order, statement), statement.span)
            except Reported:
                pass


def lower_analysis(ctx: Context, name: str, value, use: Use, span: ir.Span) -> ir.Analysis:
    """The Analysis named `name` that expression `value` describes."""
    call = analysis_call(ctx, value, use)
    sig = ANALYSES[call.func]
    values = bind(ctx, sig, call.args, call.func_span, use, f"{call.func}()")
    fields = {"nodes": None, "dataset": None, "metric": None, "source": None, "receivers": None}
    options = {}
    for param in sig.params:
        if param.name in values:
            if param.into:
                fields[param.into] = values[param.name]
            else:
                options[param.store_as] = values[param.name]
    _check_metric(ctx, call, sig, fields["metric"])
    if fields["source"] is None and any(p.into == "source" for p in sig.params):
        fields["source"] = ir.PatchSource("mean", fields["dataset"], span=call.span)
    if call.func == "curve":
        fields["nodes"] = _ranking(ctx, fields["nodes"], use)
    _KIND_CHECKS.get(call.func, _no_check)(ctx, call, fields, options)
    return ir.Analysis(name, call.func, fields["nodes"], fields["dataset"], fields["metric"],
                       fields["source"], fields["receivers"], tuple(sorted(options.items())),
                       span=span)


def analysis_call(ctx: Context, value, use: Use) -> s.Call:
    """The analysis call `value` stands for; `A.on(D, k=v)` becomes A's call with its
    dataset argument set to D and k overridden."""
    if isinstance(value, s.Call):
        if value.func not in ANALYSES:
            ctx.fail("E205", f"unknown analysis `{value.func}`", value.func_span,
                     did_you_mean(value.func, ANALYSES) or "analyses: " + ", ".join(ANALYSES))
        return value
    if isinstance(value, s.MethodCall) and isinstance(value.base, s.Name):
        if value.method != "on":
            ctx.fail("E205", f"unknown analysis method `{value.method}`", value.method_span,
                     "write A.on(DATASET) to run analysis A on another dataset")
        decl = ctx.lookup(value.base.name, value.base.span, use, ("analysis",))
        base_call = analysis_call(ctx, decl.statement.value, ctx.use(decl.order, decl.statement))
        return _override(ctx, base_call, value)
    ctx.fail("E301", f"expected an analysis, got `{expr_text(value)}`", value.span,
             "e.g. patch(heads, source=moved, target=clean, metric=ld) or dla.on(letters)")


def _override(ctx: Context, call: s.Call, on: s.MethodCall) -> s.Call:
    sig = ANALYSES[call.func]
    positional = [p.name for p in sig.params if p.positional]
    overrides: dict[str, s.Arg] = {}
    for arg in on.args:
        name = arg.name if arg.name is not None else sig.dataset_param
        if name in overrides:
            ctx.fail("E305", f"argument `{name}` of on() is given twice", arg.span,
                     "on() takes one dataset, then arguments by name")
        overrides[name] = s.Arg(name, arg.value, arg.span, arg.op, arg.name_span or arg.span)
    if sig.dataset_param not in overrides:
        ctx.fail("E302", "on() needs the dataset to run on", on.method_span)
    kept = []
    for index, arg in enumerate(call.args):
        key = arg.name if arg.name is not None else (
            positional[index] if index < len(positional) else None)
        if key not in overrides:
            kept.append(arg)
    return s.Call(call.func, tuple(kept) + tuple(overrides.values()), on.span, on.method_span)


def _check_metric(ctx: Context, call: s.Call, sig, metric_name: str | None) -> None:
    metric = ctx.metrics.get(metric_name) if metric_name else None
    if metric is None:
        return
    span = next((a.value.span for a in call.args if a.name == "metric"), call.span)
    if metric.kind == "answer_logprob" and sig.metric_kinds is not None and metric.kind not in sig.metric_kinds:
        ctx.fail("E372", f"{call.func}() decomposes a metric linear in the logits; `{metric.name}` "
                 "(answer_logprob) sums log-softmaxes at several positions, which no sum of direct "
                 "contributions equals", span,
                 "patch the nodes with this metric instead, or attribute a logit_diff where answers are one token")
    if sig.metric_kinds is not None and metric.kind not in sig.metric_kinds:
        ctx.fail("E306", f"{call.func}() needs a metric linear in the logits "
                 f"({', '.join(sig.metric_kinds)}); `{metric.name}` is {metric.kind}", span,
                 "define e.g. `metric ld = logit_diff(answer, wrong) at last`")
    if metric.normalized and not sig.allow_normalized:
        ctx.fail("E306", f"{call.func}() cannot use the normalized metric `{metric.name}`", span,
                 "use the metric it normalizes")


def _no_check(ctx, call, fields, options) -> None:
    return None


def _arg_span(call: s.Call, name: str) -> ir.Span:
    return next((a.span for a in call.args if a.name == name), call.span)


NO_GRADIENT = ("accuracy",)  # metrics that are piecewise constant in the logits


def _check_patch(ctx: Context, call: s.Call, fields: dict, options: dict) -> None:
    for name in ("verify", "steps"):
        if name in options and options["method"] != "attribution":
            ctx.fail("E304", f"`{name}` applies only to method=attribution", _arg_span(call, name))
    if options.get("steps", 1) > 1 and (options["effect"] != "total" or fields["source"].kind in ("mean", "zero")):
        ctx.fail("E304", "`steps` above 1 integrates from the clean toward the source prompts: it needs "
                 "effect=total and a source that runs the model (a dataset, corrupt or resample)",
                 _arg_span(call, "steps"))
    if options["method"] == "attribution":
        metric = ctx.metrics.get(fields["metric"]) if fields["metric"] else None
        if metric is not None and metric.kind in NO_GRADIENT:
            ctx.fail("E306", f"method=attribution follows the metric's gradient, and `{metric.name}` "
                     f"({metric.kind}) has none", _arg_span(call, "metric"),
                     "patch exactly (leave out method=attribution), or use e.g. logit_diff or prob")
        options.setdefault("verify", 0)
        if options["position"].kind == "each":
            ctx.fail("E375", "`at=each` patches every position exactly; it needs method=exact",
                     _arg_span(call, "at"), "leave out method, or patch at one position")
    metric = ctx.metrics.get(fields["metric"]) if fields["metric"] else None
    source = fields["source"]
    if metric is not None and metric.normalized and source is not None and source.kind in ("mean", "zero"):
        ctx.fail("E341", f"the normalized metric `{metric.name}` scales by clean - source, but a "
                 f"{source.kind} source gives no run of the model to score", _arg_span(call, "source"),
                 "patch from a dataset, corrupt or resample, or use the metric it normalizes")


def _check_edges(ctx: Context, call: s.Call, fields: dict, options: dict) -> None:
    method = options["method"]
    if method == "acdc" and "threshold" not in options:
        ctx.fail("E385", "method=acdc prunes every edge whose removal costs the metric less than a threshold; "
                 "give it threshold=T", call.func_span, "e.g. threshold=0.05 (in the metric's units)")
    if method != "acdc" and "threshold" in options:
        ctx.fail("E385", "`threshold` applies only to method=acdc", _arg_span(call, "threshold"),
                 "to keep the strongest edges of other methods, write discover(A, top=N)")
    threshold = options.get("threshold", 0)
    if not 0 <= threshold < math.inf:
        ctx.fail("E516", f"threshold={threshold:g}: ACDC keeps an edge when removing it costs the metric at "
                 "least the threshold, a finite number from 0 up", _arg_span(call, "threshold"),
                 "below 0 an edge that hurts the metric would stay; e.g. threshold=0.05 (in the metric's units)")
    if method in ("exact", "acdc") and options["position"].kind != "all":
        ctx.fail("E386", f"method={method} removes an edge at every position; `at` applies to eap and eap_ig",
                 _arg_span(call, "at"))
    if method == "eap_ig":
        if fields["source"].kind in ("mean", "zero"):
            ctx.fail("E380", "method=eap_ig integrates from the clean toward the source prompts: it needs a "
                     "source that runs the model (a dataset, corrupt or resample)",
                     _arg_span(call, "source"), "use method=eap with a mean or zero source")
        options.setdefault("steps", 5)
    elif "steps" in options:
        ctx.fail("E380", "`steps` applies only to method=eap_ig", _arg_span(call, "steps"))


def _ranking(ctx: Context, ranking, use: Use) -> ir.Select:
    """The analysis whose per-node scores a curve() ranks, taken whole."""
    if not isinstance(ranking, s.Name) or ranking.name in NODE_WORDS:
        ctx.fail("E390", f"curve() ranks the nodes or edges of one analysis; `{expr_text(ranking)}` is not an "
                 "analysis name", ranking.span, "e.g. analysis dla = attribute(heads + mlps, on=clean, "
                 "metric=ld), then curve(dla, on=clean, metric=ld)")
    ctx.lookup(ranking.name, ranking.span, use, ("analysis",))
    if ctx.scores_nodes(ranking.name) is False and ctx.analysis_kind(ranking.name) != "edges":
        ctx.fail("E390", f"curve() ranks nodes or edges by score; `{ranking.name}` is "
                 f"{a_or_an(ctx.analysis_kind(ranking.name))} analysis with neither",
                 ranking.span, NO_SCORE_HINT + "; edge scores from edges analyses")
    if not ranks_components(ctx.analyses.get(ranking.name)):
        ctx.fail("E390", f"curve() grows circuits of heads and MLPs (the embeddings are never ablated); "
                 f"`{ranking.name}` scores none", ranking.span, "rank e.g. patch(heads + mlps, ...)")
    return ir.Select(ranking.name, span=ranking.span)


MAX_RANDOM_ORDERS = 1000  # random orders of one curve, each measured at every size


def _check_curve(ctx: Context, call: s.Call, fields: dict, options: dict) -> None:
    if "sizes" in options:
        if any(a.name == "points" for a in call.args):
            ctx.fail("E304", "`points` spaces the sizes evenly; `sizes` lists them: give one of them",
                     _arg_span(call, "points"))
        options.pop("points")
    if options["random"] > MAX_RANDOM_ORDERS:
        ctx.fail("E517", f"random={options['random']} orders each cost one forward pass per measured size; "
                 f"a curve averages at most {MAX_RANDOM_ORDERS:,}", _arg_span(call, "random"),
                 "the baseline's standard error shrinks as 1/sqrt(random): e.g. random=20")
    target = options["target"]
    if not 0 < target <= 1:
        ctx.fail("E391", f"target={target} is no faithfulness a circuit can be asked to reach",
                 _arg_span(call, "target"), "a target is above 0 and at most 1, e.g. target=0.9")


def _check_attention(ctx: Context, call: s.Call, fields: dict, options: dict) -> None:
    """Patterns read one query position (default last); a score reads every query."""
    query, written = options["query"], any(a.name == "query" for a in call.args)
    if "score" in options:
        if written and query.kind != "all":
            ctx.fail("E360", f"score={options['score']} is read at every query position, not at `{query}`",
                     _arg_span(call, "query"), "write query=all or leave query out")
        if any(a.name == "explore" for a in call.args):
            ctx.fail("E304", "`explore` keeps whole patterns of attention from a query position; "
                     f"score={options['score']} keeps one number per head", _arg_span(call, "explore"))
        options["query"] = ir.ALL
        options.pop("explore", None)
    elif query.kind == "all":
        ctx.fail("E312", "attention() reads patterns from one query position, not `all`",
                 _arg_span(call, "query"), "use last, a named position or an index; or give a score over "
                 "every query: score=induction or score=previous_token")


def _check_path_patch(ctx: Context, call: s.Call, fields: dict, options: dict) -> None:
    senders, receivers = fields["nodes"], fields["receivers"]
    if not isinstance(senders, ir.NodeList) or not isinstance(receivers, ir.NodeList):
        return
    for node in receivers.nodes:
        if senders.nodes and not any(upstream(sender, node) for sender in senders.nodes):
            ctx.fail("E318", f"no sender is upstream of {node.id}", receivers.span,
                     "receivers must sit after some sender: a later layer, or the MLP of a "
                     "sender head's layer")


def upstream(sender: ir.Node, receiver: ir.Node) -> bool:
    if sender.kind == "embed" or sender.layer < receiver.layer:
        return True
    return sender.layer == receiver.layer and sender.kind == "head" and receiver.kind == "mlp"


def _check_attribute(ctx: Context, call: s.Call, fields: dict, options: dict) -> None:
    """`at` only adds positions: each, or a list of them; the metric's own position stays."""
    position = options.get("position")
    if position is not None and position.kind != "each":
        ctx.fail("E370", f"attribute() reads the metric at its own position; `at={position}` would only "
                 "repeat or contradict it", _arg_span(call, "at"),
                 "write at=each or a list such as at=[answer_label, last], or change the metric's `at`")


_KIND_CHECKS = {
    "attribute": _check_attribute,
    "patch": _check_patch,
    "attention": _check_attention,
    "path_patch": _check_path_patch,
    "edges": _check_edges,
    "curve": _check_curve,
}

"""Lower what a spec runs on: the model (and its shape), datasets and metrics."""
from __future__ import annotations

import os
from pathlib import Path

from circ.compiler import ir
from circ.compiler.check.binding import CONVERTERS, bind
from circ.compiler.check.context import Context, Reported
from circ.compiler.check.model_shape import ShapeError, ShapeTooLarge, shape_for
from circ.compiler.check.signatures import (
    DERIVATIONS,
    GENERATORS,
    METRICS,
    MODELS,
    Param,
)
from circ.compiler.diagnostics import did_you_mean
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.printer import expr_text


# --------------------------------------------------------------------------- model
def lower_model(ctx: Context) -> None:
    """ctx.model and ctx.shape: the spec's `model` (default: demo) or the override."""
    statement = next((st for _, st in ctx.statements if isinstance(st, s.ModelStmt)), None)
    order = next((o for o, st in ctx.statements if st is statement), 0)
    model = ir.Model(span=ir.Span(ctx.root_path, 1, 1, 1, 1))
    if statement is not None:
        try:
            model = _model(ctx, statement, order)
        except Reported:
            model = None
    if callable(ctx.model_override):  # a change to the spec's own model, e.g. `--model DIR`
        model = ctx.model_override(model or ir.Model(span=ir.Span(ctx.root_path, 1, 1, 1, 1)))
    elif ctx.model_override is not None:
        model = ctx.model_override
    ctx.model = model
    if ctx.shape_override is not None:
        ctx.shape = ctx.shape_override
        return
    if model is None:
        return
    try:
        ctx.shape = shape_for(model, Path.cwd())
    except ShapeTooLarge as error:
        ctx.error("E511", str(error), model.span)
    except ShapeError as error:
        ctx.error("E506", str(error), model.span,
                  "models: demo, hf(\"DIR\"), cache(\"ORG/NAME\") or gguf(\"FILE\")")


def _model(ctx: Context, statement: s.ModelStmt, order: int) -> ir.Model:
    value = statement.value
    use = ctx.use(order, statement)
    if isinstance(value, s.Name):
        value = s.Call(value.name, (), value.span, value.span)
    if not isinstance(value, s.Call):
        ctx.fail("E301", f"expected a model, got `{expr_text(value)}`", value.span,
                 "models: demo, hf(\"DIR\"), cache(\"ORG/NAME\") or gguf(\"FILE\")")
    if value.func not in MODELS:
        ctx.fail("E205", f"unknown model kind `{value.func}`", value.func_span,
                 did_you_mean(value.func, MODELS) or "model kinds: " + ", ".join(MODELS))
    values = bind(ctx, MODELS[value.func], value.args, value.func_span, use, f"{value.func}()")
    location = next((a.value.span for a in value.args if a.name in (None, "location")), None)
    if value.func == "gguf" and not os.path.isfile(values["location"]):
        ctx.fail("E506", f"GGUF file `{values['location']}` not found", location)
    if value.func == "hf" and not os.path.isdir(values["location"]):
        ctx.fail("E506", f"model directory `{values['location']}` not found", location)
    return ir.Model(source=value.func, location=values.get("location"), dtype=values["dtype"],
                    device=values["device"], device_map=values.get("device_map"),
                    compat=values["compat"], tokenizer=values.get("tokenizer"),
                    span=statement.span)


# --------------------------------------------------------------------------- datasets
def lower_datasets(ctx: Context) -> None:
    for order, statement in ctx.statements:
        if isinstance(statement, s.Definition) and statement.keyword == "data" and ctx.owns(statement):
            try:
                ctx.datasets[statement.name] = _dataset(ctx, statement, order)
            except Reported:
                pass


def _dataset(ctx: Context, statement: s.Definition, order: int) -> ir.Dataset:
    value, use = statement.value, ctx.use(order, statement)
    if isinstance(value, s.Call):
        if value.func not in GENERATORS:
            ctx.fail("E205", f"unknown dataset kind `{value.func}`", value.func_span,
                     did_you_mean(value.func, GENERATORS) or "datasets: " + ", ".join(GENERATORS))
        values = bind(ctx, GENERATORS[value.func], value.args, value.func_span, use,
                      f"{value.func}()")
        _check_dataset(ctx, value, values)
        return ir.Dataset(statement.name, value.func, _params(GENERATORS[value.func].params, values),
                          span=statement.span)
    if isinstance(value, s.MethodCall) and isinstance(value.base, s.Name):
        return _derivation(ctx, statement, value, use)
    ctx.fail("E301", f"expected a dataset, got `{expr_text(value)}`", value.span,
             "e.g. mcq(n=64, labels=\"ABCD\"), jsonl(\"prompts.jsonl\") or clean.move_answer(seed=1)")


def _check_dataset(ctx: Context, call: s.Call, values: dict) -> None:
    if "path" in values and not os.path.isfile(values["path"]):
        span = next(a.value.span for a in call.args if a.name in (None, "path"))
        ctx.fail("E502", f"data file `{values['path']}` not found", span)
    labels, options = values.get("labels"), values.get("options")
    if options is not None and isinstance(labels, (str, tuple)) and len(labels) != options:
        span = next(a.value.span for a in call.args if a.name == "options")
        ctx.fail("E304", f"{len(labels)} labels given for {options} options", span,
                 "give one label per option, or labels=random_letters or numbers")
    length = values.get("length")
    if call.func in ("induction", "repeated_tokens") and ctx.shape is not None and length > ctx.shape.n_ctx:
        arg = next(a for a in call.args if a.name == "length")
        ctx.fail("E404", f"length {length} exceeds the model's context of {ctx.shape.n_ctx} tokens",
                 arg.value.span)


def _derivation(ctx: Context, statement: s.Definition, value: s.MethodCall, use) -> ir.Dataset:
    base = value.base.name
    ctx.lookup(base, value.base.span, use, ("dataset",))
    if value.method not in DERIVATIONS:
        ctx.fail("E205", f"unknown dataset derivation `{value.method}`", value.method_span,
                 did_you_mean(value.method, DERIVATIONS) or "derivations: " + ", ".join(DERIVATIONS))
    sig = DERIVATIONS[value.method]
    values = bind(ctx, sig, value.args, value.method_span, use, f"{value.method}()")
    root = _root_kind(ctx, base)
    if root is not None and root != "mcq":
        ctx.fail("E307", f"{value.method}() needs multiple-choice prompts, but `{base}` is made "
                 f"by {root}()", value.method_span, "derive from a dataset built with mcq(...)")
    labels, options = values.get("labels"), _option_count(ctx, base)
    if isinstance(labels, (str, tuple)) and options is not None and len(labels) != options:
        span = next(a.value.span for a in value.args if a.name in (None, "labels"))
        ctx.fail("E304", f"{len(labels)} labels given for the {options} options of `{base}`", span,
                 "give one label per option, or labels=random_letters or numbers")
    return ir.Dataset(statement.name, value.method, _params(sig.params, values), base=base,
                      span=statement.span)


def _option_count(ctx: Context, name: str) -> int | None:
    """The options per prompt of the mcq dataset at the root of `name`'s derivations."""
    dataset = ctx.datasets.get(name)
    while dataset is not None and dataset.base is not None:
        dataset = ctx.datasets.get(dataset.base)
    if dataset is None or dataset.kind != "mcq":
        return None
    labels = dataset.param("labels", "ABCD")
    return dataset.param("options") or (len(labels) if isinstance(labels, (str, tuple)) else 4)


def _root_kind(ctx: Context, name: str) -> str | None:
    dataset = ctx.datasets.get(name)
    while dataset is not None and dataset.base is not None:
        dataset = ctx.datasets.get(dataset.base)
    return dataset.kind if dataset is not None else None


def _params(params: tuple[Param, ...], values: dict) -> tuple:
    return tuple(sorted((p.store_as, values[p.name]) for p in params if p.name in values))


# --------------------------------------------------------------------------- metrics
def lower_metrics(ctx: Context) -> None:
    for order, statement in ctx.statements:
        if isinstance(statement, s.Definition) and statement.keyword == "metric" and ctx.owns(statement):
            try:
                ctx.metrics[statement.name] = _metric(ctx, statement, order)
            except Reported:
                pass


def _metric(ctx: Context, statement: s.Definition, order: int) -> ir.Metric:
    value, use = statement.value, ctx.use(order, statement)
    position = None
    if statement.at is not None:
        position = CONVERTERS["position"](ctx, statement.at, None, use)
    if isinstance(value, s.Name):
        value = s.Call(value.name, (), value.span, value.span)
    if not isinstance(value, s.Call):
        ctx.fail("E301", f"expected a metric, got `{expr_text(value)}`", value.span,
                 "metrics: " + ", ".join(METRICS))
    if value.func not in METRICS:
        ctx.fail("E205", f"unknown metric kind `{value.func}`", value.func_span,
                 did_you_mean(value.func, METRICS) or "metrics: " + ", ".join(METRICS))
    values = bind(ctx, METRICS[value.func], value.args, value.func_span, use, f"{value.func}()")
    if value.func == "answer_logprob" and position is not None and position.kind != "last":
        ctx.fail("E371", f"answer_logprob reads each of the answer's tokens at the position before it, from "
                 f"the prompt's last token on; it is not read at `{position}`", statement.at.span,
                 "leave out `at`, or write `at last`")
    if value.func != "normalized":
        return ir.Metric(statement.name, value.func, position or ir.LAST, span=statement.span)
    base = ctx.metrics.get(values["metric"])
    if base is None:
        raise Reported()
    if base.normalized:
        ctx.fail("E301", f"`{base.name}` is already normalized", value.args[0].span)
    return ir.Metric(statement.name, base.kind, position or base.position, normalized=True,
                     span=statement.span)

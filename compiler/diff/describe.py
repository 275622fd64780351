"""Short spec-like text for fragments of the checked IR, as diffs show them.

`describe(value)` turns any IR fragment a `Change` can hold (datasets, metrics,
analyses, node sets, rules, patch sources, quantities, literal values) into one line
a reviewer can read without knowing the dataclasses. `node_ids(nodes)` gives the
sorted, de-duplicated node ids of a node list; `analysis_arguments(analysis)` its
arguments named as the spec writes them (`target=`, `ablate=`, `at=`).
"""
from __future__ import annotations

import json
import math

from circ.compiler import ir
from circ.compiler.check.signatures import ANALYSES

# Node lists longer than this are shortened in one-line descriptions.
MAX_LISTED_NODES = 12


def node_ids(nodes) -> tuple[str, ...]:
    """Sorted, unique ids of an iterable of `ir.Node`."""
    return tuple(node.id for node in sorted(set(nodes)))


def describe(value) -> str:
    """One line of spec-like text for an IR fragment or a literal value."""
    if value is None:
        return "none"
    for kind, show in _DESCRIBERS:
        if isinstance(value, kind):
            return show(value)
    return str(value)


def _number(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def _literal(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    return describe(value)


def _arguments(pairs) -> str:
    return ", ".join(f"{key}={_literal(val)}" for key, val in sorted(pairs, key=lambda p: p[0]))


def _node_list(value: ir.NodeList) -> str:
    if not value.nodes and value.unexpanded:
        return value.unexpanded
    ids = node_ids(value.nodes)
    if len(ids) > MAX_LISTED_NODES:
        shown = ", ".join(ids[:MAX_LISTED_NODES])
        return f"{len(ids)} nodes: {shown}, … (+{len(ids) - MAX_LISTED_NODES} more)"
    return ", ".join(ids) if ids else "no nodes"


def _side(value) -> str:
    """One side of a `+`/`-`, bracketed when it is itself a combination or filtered."""
    text = describe(value)
    several = isinstance(value, ir.NodeList) and len(value.nodes) > 1
    return f"({text})" if several or isinstance(value, ir.Combine) or getattr(value, "where", None) else text


def _select(value: ir.Select) -> str:
    source = value.analysis if value.category is None else f"{value.analysis}.{value.category}"
    if value.grow is not None:
        text = f"discover({source}, faithfulness={value.grow.target:g})"
    elif value.edges:
        text = f"discover({source}, top={value.top})"
    elif value.best:
        text = f"best({source})"
    elif value.top is not None:
        text = f"top({source}, {value.top})"
    else:
        text = source
    if value.where is not None:
        text += f" where {describe(value.where)}"
    return text


def _rule_part(rule) -> str:
    text = describe(rule)
    return f"({text})" if isinstance(rule, (ir.And, ir.Or)) else text


def _source(value: ir.PatchSource) -> str:
    if value.kind == "dataset":
        return str(value.dataset)
    arguments = [name for name in (value.dataset,) if name is not None]
    if value.seed is not None:
        arguments.append(f"seed={value.seed}")
    return f"{value.kind}({', '.join(arguments)})" if arguments else value.kind


def _dataset(value: ir.Dataset) -> str:
    if value.base is not None:
        return f"{value.base}.{value.kind}({_arguments(value.params)})"
    return f"{value.kind}({_arguments(value.params)})"


def _metric(value: ir.Metric) -> str:
    text = f"{value.kind} at {value.position}"
    return text + " normalized" if value.normalized else text


def as_words(value):
    """Strings (and lists of them) as bare words, the way analysis arguments such as
    `effect=direct` or `parts=[q, k]` are written."""
    if isinstance(value, str):
        return ir.Word(value)
    if isinstance(value, tuple):
        return tuple(as_words(item) for item in value)
    return value


def analysis_arguments(analysis: ir.Analysis) -> tuple[tuple[str, object, bool], ...]:
    """(argument name as the spec writes it, value, whether it is the default) for
    every argument of `analysis` but its node set, in its signature's order."""
    options = dict(analysis.options)
    signature = ANALYSES.get(analysis.kind)
    arguments = []
    for param in signature.params if signature else ():
        if param.into == "nodes":
            continue
        value = getattr(analysis, param.into) if param.into else options.pop(param.store_as, None)
        if value is not None:
            arguments.append((param.name, value, param.into is None and value == param.default))
    if signature is None:
        fields = (("on", analysis.dataset), ("metric", analysis.metric),
                  ("source", analysis.source), ("to", analysis.receivers))
        arguments.extend((name, value, False) for name, value in fields if value is not None)
    arguments.extend((key, value, False) for key, value in sorted(options.items()))
    return tuple(arguments)


def _analysis(value: ir.Analysis) -> str:
    parts = [describe(value.nodes)] + [
        f"{name}={describe(as_words(argument))}"
        for name, argument, is_default in analysis_arguments(value) if not is_default]
    return f"{value.kind}({', '.join(parts)})"


def _quantity(value: ir.Quantity) -> str:
    args = dict(value.args)
    if value.accessor == "node" and set(args) == {"node"}:
        return f"{value.analysis}[{args['node']}]"
    if value.accessor == "recovered" and set(args) == {"dataset", "max_rank"}:
        return f"{value.analysis}.recovered({args['dataset']}, rank <= {args['max_rank']})"
    if value.accessor == "edge":
        return f"{value.analysis}[{args['sender']} -> {args['receiver']}]"
    if value.accessor == "attention":
        return f"{value.analysis}[{args['node']}].to({args['position']})"
    if value.accessor == "rank":
        return f"rank({value.analysis}, {args['node']})"
    if value.accessor == "size_at":
        return f"{value.analysis}.size_at({args['target']:g})"
    text = f"{value.analysis}.{value.accessor}"
    return f"{text}({_arguments(value.args)})" if value.args else text


def _model(value: ir.Model) -> str:
    if value.location is None:
        return value.source
    return f"{value.source} {json.dumps(value.location)}"


def _shape(value: ir.Shape) -> str:
    return (f"{value.n_layers} layers, {value.n_heads} heads, d_model {value.d_model}, "
            f"d_head {value.d_head}, d_vocab {value.d_vocab}, n_ctx {value.n_ctx}")


_DESCRIBERS = (
    (bool, _number),
    (int, _number),
    (float, _number),
    (str, str),
    (ir.Word, lambda value: value.name),
    (tuple, _literal),
    (ir.Position, str),
    (ir.Node, lambda value: value.id),
    (ir.NodeList, _node_list),
    (ir.Select, _select),
    (ir.Combine, lambda value: f"{_side(value.left)} {value.op} {_side(value.right)}"),
    (ir.Field, lambda value: value.name),
    (ir.Attends, lambda value: f"attends({value.position})"),
    (ir.Spread, lambda value: f"spread({value.position})"),
    (ir.Abs, lambda value: f"abs({describe(value.term)})"),
    (ir.Arith, lambda value: f"{describe(value.left)} {value.op} {describe(value.right)}"),
    (ir.Relative, lambda value: value.name),
    (ir.Compare, lambda value: f"{describe(value.left)} {value.op} {describe(value.right)}"),
    (ir.And, lambda value: " and ".join(_rule_part(part) for part in value.parts)),
    (ir.Or, lambda value: " or ".join(_rule_part(part) for part in value.parts)),
    (ir.Not, lambda value: f"not {_rule_part(value.rule)}"),
    (ir.PatchSource, _source),
    (ir.Dataset, _dataset),
    (ir.Metric, _metric),
    (ir.Analysis, _analysis),
    (ir.Circuit, lambda value: describe(value.nodes)),
    (ir.Category, lambda value: describe(value.rule)),
    (ir.Quantity, _quantity),
    (ir.Count, lambda value: f"count({describe(value.nodes)})"),
    (ir.Accuracy, lambda value: f"accuracy({value.dataset})"),
    (ir.MetricMean, lambda value: f"metric({value.metric}, on={value.dataset})"),
    (ir.GrownFaithfulness, lambda value: f"faithfulness({value.circuit})"),
    (ir.Expectation, lambda value: f"{describe(value.left)} {value.op} {describe(value.right)}"),
    (ir.Render, lambda value: f"{value.circuit} to {json.dumps(value.path)}"),
    (ir.Model, _model),
    (ir.Shape, _shape),
)

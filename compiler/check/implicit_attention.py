"""Implicit attention analyses for categories.

A category rule that uses `attends(...)` or `spread(...)` reads attention patterns of
its circuit's heads. If the spec has an attention analysis over exactly that circuit
(or, for a literal circuit, over all of its heads), the categories read it;
otherwise one is added, named `_attn_CIRCUIT`, with query=last, on the circuit's
source dataset: the dataset of the analysis the circuit is selected from, else of
the first analysis its category rules read, else the spec's first dataset."""
from __future__ import annotations

from dataclasses import replace

from circ.compiler import ir
from circ.compiler.check.context import Context


def add_attention_analyses(ctx: Context) -> None:
    for circuit_name in dict.fromkeys(c.circuit for c in ctx.category_list):
        categories = [c for c in ctx.category_list if c.circuit == circuit_name]
        if not any(_reads_attention(c.rule) for c in categories):
            continue
        circuit = ctx.circuits.get(circuit_name)
        if circuit is None:
            continue
        name = _covering_attention(ctx, circuit) or _add_implicit(ctx, circuit, categories)
        if name is None:
            continue
        ctx.category_list = [replace(c, attention=name) if c.circuit == circuit_name else c
                             for c in ctx.category_list]


def _reads_attention(rule) -> bool:
    return any(isinstance(leaf, (ir.Attends, ir.Spread)) for leaf in ir.rule_leaves(rule))


def _covering_attention(ctx: Context, circuit: ir.Circuit) -> str | None:
    for analysis in ctx.analyses.values():
        if analysis.kind != "attention" or analysis.option("score") is not None:
            continue
        nodes = analysis.nodes
        if nodes == ir.Select(circuit.name):
            return analysis.name
        if isinstance(circuit.nodes, ir.NodeList) and isinstance(nodes, ir.NodeList):
            heads = {n for n in circuit.nodes.nodes if n.kind == "head"}
            if heads and heads <= set(nodes.nodes):
                return analysis.name
    return None


def _add_implicit(ctx: Context, circuit: ir.Circuit, categories) -> str | None:
    dataset = _source_dataset(ctx, circuit, categories)
    if dataset is None:
        ctx.error("E302", f"the categories of `{circuit.name}` read attention, but the spec has "
                  "no dataset to compute it on", categories[0].span)
        return None
    name = f"_attn_{circuit.name}"
    nodes = (ir.Select(circuit.name, span=circuit.span)
             if not isinstance(circuit.nodes, ir.NodeList) else circuit.nodes)
    ctx.analyses[name] = ir.Analysis(name, "attention", nodes, dataset,
                                     options=(("query", ir.LAST),), span=categories[0].span)
    ctx.implicit.add(name)
    return name


def _source_dataset(ctx: Context, circuit: ir.Circuit, categories) -> str | None:
    seen = set()
    nodes = circuit.nodes
    while isinstance(nodes, ir.Select) and nodes.analysis not in seen:
        seen.add(nodes.analysis)
        if nodes.analysis in ctx.analyses:
            return ctx.analyses[nodes.analysis].dataset
        if nodes.analysis not in ctx.circuits:
            break
        nodes = ctx.circuits[nodes.analysis].nodes
    for category in categories:
        for field in _fields(category.rule):
            if field in ctx.analyses:
                return ctx.analyses[field].dataset
    return next(iter(ctx.datasets), None)


def _fields(rule):
    return (leaf.name for leaf in ir.rule_leaves(rule) if isinstance(leaf, ir.Field))

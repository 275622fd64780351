"""Show a plan as text, JSON or Graphviz dot. Ops appear in topological order with
ties broken by id, so the same spec always gives the same text."""
from __future__ import annotations

import json

import networkx as nx
from circ.compiler import ir

FORMATS = ("text", "json", "dot")


def ordered_ids(graph: nx.DiGraph) -> list[str]:
    return list(nx.lexicographical_topological_sort(graph))


def _where(op, root: str) -> str:
    span = op.span
    if span.line == 0:
        return ""
    return f"line {span.line}" if span.path == root else f"{span.path}:{span.line}"


def _note(op) -> str:
    if op.kind == "analysis" and op.arg("implicit"):
        name = op.arg("name")
        if name.startswith("_attn_"):
            return f"  (implicit: attention read by the categories of {name[len('_attn_'):]})"
        return "  (implicit: written inline in an expectation)"
    return ""


def plan_text(graph: nx.DiGraph) -> str:
    root = graph.graph.get("path", "")
    ids = ordered_ids(graph)
    lines = [f"plan of {graph.graph.get('spec')} ({root}): {len(ids)} ops"]
    width = max(len(i) for i in ids)
    for op_id in ids:
        op = graph.nodes[op_id]["op"]
        deps = ", ".join(sorted(graph.predecessors(op_id)))
        line = f"{op_id:<{width}}  {op.kind:<10}  {_where(op, root):<9}"
        if deps:
            line += f"  <- {deps}"
        lines.append((line + _note(op)).rstrip())
    return "\n".join(lines) + "\n"


def jsonable(value):
    if isinstance(value, ir.Word):
        return value.name
    if isinstance(value, ir.Position):
        return str(value)
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    return value


def plan_json(graph: nx.DiGraph) -> str:
    nodes = []
    for op_id in ordered_ids(graph):
        op = graph.nodes[op_id]["op"]
        nodes.append({"id": op.id, "kind": op.kind,
                      "args": {k: jsonable(v) for k, v in op.args},
                      "path": op.span.path, "line": op.span.line})
    edges = [{"src": a, "dst": b} for a, b in sorted(graph.edges)]
    document = {"spec": graph.graph.get("spec"), "path": graph.graph.get("path"),
                "nodes": nodes, "edges": edges}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SHAPES = {"model": "house", "dataset": "note", "cache_run": "cylinder", "mean": "cylinder",
           "analysis": "box", "circuit": "hexagon", "categories": "hexagon", "expect": "diamond",
           "render": "parallelogram", "results": "doubleoctagon"}


def plan_dot(graph: nx.DiGraph) -> str:
    lines = ["digraph plan {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for op_id in ordered_ids(graph):
        op = graph.nodes[op_id]["op"]
        style = ", style=dashed" if op.kind == "analysis" and op.arg("implicit") else ""
        label = _quote(op_id)[:-1] + "\\n" + op.kind + '"'
        lines.append(f"  {_quote(op_id)} [label={label}, shape={_SHAPES[op.kind]}{style}];")
    for src, dst in sorted(graph.edges):
        lines.append(f"  {_quote(src)} -> {_quote(dst)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_plan(graph: nx.DiGraph, fmt: str) -> str:
    return {"text": plan_text, "json": plan_json, "dot": plan_dot}[fmt](graph)

"""`circuit x = import("graph.json")`: a literal circuit read at check time from an
EAP-IG graph JSON file (compiler/eap_graph.py describes the layout): the edges
marked in_graph and the nodes at their ends (LOGITS is no node). The file is read
with a size limit; names that are no EAP-IG node or edge, and layers or heads
outside the model, are errors (E382-E384)."""
from __future__ import annotations

import os

from circ.compiler import ir
from circ.compiler.bounded_read import read_json
from circ.compiler.check.arguments import string
from circ.compiler.check.context import Context, Use
from circ.compiler.check.nodesets import node_key
from circ.compiler.eap_graph import circ_id, is_model_edge, split_edge
from circ.compiler.syntax import tree as s

GRAPH_LIMIT = 64 << 20  # bytes of one graph file
KEY_CHARS = 120  # of an edge name shown in a message


def imported_circuit(ctx: Context, name: str, call: s.Call, use: Use, span: ir.Span) -> ir.Circuit:
    if len(call.args) != 1 or call.args[0].name is not None:
        ctx.fail("E382", "import() takes one file path", call.span, 'e.g. import("graph.json")')
    arg = call.args[0]
    path = _resolved(string(ctx, arg.value, None, use), use)
    try:
        graph = read_json(path, GRAPH_LIMIT)
    except FileNotFoundError:
        ctx.fail("E382", f"no such file: {path}", arg.span)
    except ValueError as error:
        ctx.fail("E382", f"cannot read {path}: {error}", arg.span)
    edges = graph.get("edges") if isinstance(graph, dict) else None
    if not isinstance(edges, dict):
        ctx.fail("E383", f"{path} is no EAP-IG graph: it needs an `edges` object", arg.span,
                 'edges look like {"a0.h1->a1.h0<q>": {"score": 0.5, "in_graph": true}}')
    kept, nodes = [], {}
    for key, entry in edges.items():
        if not (isinstance(entry, dict) and entry.get("in_graph") is True):
            continue
        parts = split_edge(key)
        ends = None if parts is None else (circ_id(parts[0]), circ_id(parts[1]))
        if parts is None or None in ends or not is_model_edge(*ends, parts[2]):
            shown = key if len(key) <= KEY_CHARS else key[:KEY_CHARS] + "\u2026"
            ctx.fail("E383", f"{path}: `{shown}` is no EAP-IG edge", arg.span,
                     "edges are PARENT->CHILD or PARENT->a{L}.h{H}<q|k|v>, nodes input, a{L}.h{H}, m{L}, logits, "
                     "from the input or an earlier layer (a head also feeds its own layer's MLP)")
        for node_id in ends:
            if node_id != "LOGITS":
                nodes[node_id] = _node(ctx, node_id, path, arg.span)
        kept.append((ends[0], ends[1], parts[2]))
    ordered = tuple(sorted(nodes.values(), key=node_key))
    return ir.Circuit(name, ir.NodeList(ordered, span=call.span), span, edges=tuple(sorted(kept)))


def _resolved(value: str, use: Use) -> str:
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(use.folder, value))


def _node(ctx: Context, node_id: str, path: str, span: ir.Span) -> ir.Node:
    if node_id == "EMBED":
        return ir.Node(0, "embed")
    layer_text, rest = node_id[1:].split(".", 1)
    layer = int(layer_text)
    head = None if rest == "MLP" else int(rest[1:])
    shape = ctx.shape
    if shape is not None and (layer >= shape.n_layers or (head is not None and head >= shape.n_heads)):
        ctx.fail("E384", f"{path}: node {node_id} is outside the model ({shape.n_layers} layers, "
                 f"{shape.n_heads} heads per layer)", span, "export the graph from a run on this model")
    return ir.Node(layer, "mlp") if head is None else ir.Node(layer, "head", head)


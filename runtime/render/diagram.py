"""Circuit diagrams as Graphviz DOT text, from results.json or from an unrun spec.

Layout: bottom to top (`rankdir=BT`), EMBED on the lowest rank, one rank per layer,
LOGITS on the top rank. Node fill says the category, the border colour the sign of
the node's score (blue helps the correct answer, red hurts) and the border width its
size. Output is deterministic: iteration is sorted and floats have a fixed format,
so the same results give byte-identical text. Pure Python: no Graphviz needed here.
"""
from __future__ import annotations

import html
import re

from circ.compiler import ir
from circ.compiler.escape import visible_text

HELPS = "#2166ac"
HURTS = "#b2182b"
NEUTRAL = "#555555"
UNCATEGORISED = "#e0e0e0"
CONTEXT = "#ffffff"
HYPOTHESIS = "#fff7bc"
CATEGORY_COLOURS = ("#8dd3c7", "#fdb462", "#bebada", "#b3de69", "#fccde5",
                    "#ffffb3", "#ccebc5", "#d9b38c", "#bc80bd", "#ffed6f")
PART_STYLES = {"q": "dashed", "k": "dotted", "v": "solid", None: "solid"}
PART_PORTS = {"q": "sw", "k": "s", "v": "se"}  # where an edge circuit's edge enters a head
SMALL_EDGE = 0.01  # edges under this fraction of the largest |weight| are not drawn
KIND_ORDER = {"embed": 0, "resid": 1, "head": 2, "head_input": 3, "mlp": 4, "logits": 5}

_NODE_ID = re.compile(r"^L([0-9]{1,9})\.(?:H([0-9]{1,9})(?:\.([qkv]))?|(MLP)|(RESID))\Z")


class RenderError(Exception):
    """Results or a spec that cannot be drawn; the message says why."""


def circuit_dot(results: dict, circuit: str | None = None) -> str:
    """DOT text of one circuit of a run (the spec's first circuit by default)."""
    name, body = _pick_circuit(results, circuit)
    nodes = {n["id"]: n for n in _circuit_nodes(name, body)}
    edge_circuit = body.get("granularity") == "edge"
    edges, hidden = (_circuit_edges(name, body), 0) if edge_circuit else _drawn_edges(_circuit_edges(name, body))
    categories = sorted({n["category"] for n in nodes.values() if n.get("category")})
    fills = {c: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, c in enumerate(categories)}
    ids = set(nodes) | {e["src"] for e in edges} | {e["dst"] for e in edges}
    max_score = max([abs(_score(n)) for n in nodes.values()] + [0.0])

    statements = {}
    for node_id in ids - {"EMBED", "LOGITS"}:
        statements[node_id] = _circuit_node(node_id, nodes.get(node_id), fills, max_score)
    embed = _circuit_node("EMBED", nodes.get("EMBED"), fills, max_score)
    if edge_circuit:
        links = _edge_statements(edges, ports=True)
    else:
        links = _edge_statements(edges) + _logit_statements(nodes, edges)
    spec = results.get("spec") or {}
    model = results.get("model") or {}
    kept = f" ({len(edges)} edge{'s' if len(edges) != 1 else ''})" if edge_circuit else ""
    title = f"circuit {name}{kept} | spec {spec.get('name', '?')} | model {model.get('name', '?')}"
    legend = _edge_legend(title, fills, edges) if edge_circuit else _legend(title, fills, bool(edges), hidden)
    return _graph(f"circuit {name}", legend,
                  _n_layers(results, ids), _by_layer(statements), embed, links)


def hypothesis_dot(spec: ir.Spec, circuit: str | None = None) -> str:
    """DOT text of a circuit of a spec that has not run (its first circuit by default).

    Nodes listed literally are drawn in their layers, with the circuit's edges when it
    has them (an imported graph), marked as an edge circuit's; a circuit chosen by a rule
    from results (or a node set not yet expanded for want of the model's shape) is
    drawn as a note, on the last layer's rank, that names the rule.
    The title lists the circuit's category rules.
    """
    if not spec.circuits:
        raise RenderError(f"spec '{spec.name}' defines no circuit to draw")
    names = [c.name for c in spec.circuits]
    if circuit is not None and circuit not in names:
        raise RenderError(f"spec '{spec.name}' has no circuit '{circuit}' "
                          f"(it has: {', '.join(names)})")
    chosen = spec.circuit(circuit or names[0])
    literal = chosen.nodes.nodes if isinstance(chosen.nodes, ir.NodeList) else ()
    by_layer = _by_layer({n.id: _hypothesis_node(n) for n in literal if n.kind != "embed"})
    embed_node = next((n for n in literal if n.kind == "embed"), None)
    embed = _hypothesis_node(embed_node) if embed_node else _frame_node("EMBED")
    n_layers = spec.shape.n_layers if spec.shape else 1 + max(
        [n.layer for n in literal] + [0])
    pending = None
    if isinstance(chosen.nodes, (ir.Select, ir.Combine)):
        pending = (select_text(chosen.nodes), "(chosen from the results when the spec runs)")
    elif not literal and chosen.nodes.unexpanded:
        pending = (chosen.nodes.unexpanded, "(expanded once the model's shape is known)")
    if pending:
        lines = (f"{chosen.name} = {pending[0]}", pending[1])
        by_layer.setdefault(max(n_layers - 1, 0), []).append(
            f'"rule" [shape=note, style=filled, fillcolor="{HYPOTHESIS}", color="{NEUTRAL}", '
            f"label={_q_lines(lines)}];")
    rules = [f"category {c.name}: {rule_text(c.rule)}"
             for c in spec.categories if c.circuit == chosen.name]
    links = _edge_statements([{"src": src, "dst": dst, "part": part, "weight": None}
                              for src, dst, part in chosen.edges], ports=True)
    if links:
        rules.append(f"{len(links)} edges (imported); into a head: q dashed, enters lower left; "
                     "k dotted, below; v solid, lower right")
    title = f"hypothesis {chosen.name} | spec {spec.name} | not run"
    return _graph(f"hypothesis {chosen.name}", _note(title, rules), n_layers,
                  by_layer, embed, links)


def select_text(select: ir.Select | ir.Combine | ir.NodeList) -> str:
    """The selection as the spec would write it, e.g. `top(patched, 10) where ...` or
    `heads - top(ind, 2)`."""
    if isinstance(select, ir.Combine):
        return f"{_side_text(select.left)} {select.op} {_side_text(select.right)}"
    if isinstance(select, ir.NodeList):
        ids = [n.id for n in select.nodes]
        return select.unexpanded or (", ".join(ids) if len(ids) <= 4 else f"{len(ids)} nodes")
    source = f"{select.analysis}.{select.category}" if select.category else select.analysis
    if select.best:
        text = f"best({source})"
    elif select.top is not None:
        text = f"top({source}, {select.top})"
    else:
        text = source
    return f"{text} where {rule_text(select.where)}" if select.where is not None else text


def _side_text(nodes) -> str:
    text = select_text(nodes)
    plain = isinstance(nodes, ir.Select) and nodes.where is None or (
        isinstance(nodes, ir.NodeList) and (nodes.unexpanded or len(nodes.nodes) == 1))
    return text if plain else f"({text})"


def rule_text(rule) -> str:
    """A rule or term written back as spec text."""
    if isinstance(rule, ir.Compare):
        return f"{rule_text(rule.left)} {rule.op} {rule_text(rule.right)}"
    if isinstance(rule, (ir.And, ir.Or)):
        joiner = " and " if isinstance(rule, ir.And) else " or "
        return joiner.join(_grouped(part, rule) for part in rule.parts)
    if isinstance(rule, ir.Not):
        return f"not ({rule_text(rule.rule)})"
    if isinstance(rule, ir.Field):
        return rule.name
    if isinstance(rule, ir.Attends):
        return f"attends({rule.position})"
    if isinstance(rule, ir.Spread):
        return f"spread({rule.position})"
    if isinstance(rule, ir.Abs):
        return f"abs({rule_text(rule.term)})"
    if isinstance(rule, ir.Arith):
        return f"{rule_text(rule.left)} {rule.op} {rule_text(rule.right)}"
    if isinstance(rule, ir.Relative):
        return rule.name
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        return f"{rule:g}"
    raise RenderError(f"cannot write rule element {rule!r} as text")


def parse_node_id(node_id: str) -> tuple[int, str]:
    """(layer, kind) of a node id; EMBED is layer -1 and LOGITS a layer of its own."""
    if node_id == "EMBED":
        return -1, "embed"
    if node_id == "LOGITS":
        return 10**9, "logits"
    match = _NODE_ID.match(node_id)
    if not match:
        raise RenderError(f"'{node_id}' is not a node id (expected L{{layer}}.H{{head}}, "
                          "L{layer}.MLP, L{layer}.RESID, L{layer}.H{head}.q/k/v or EMBED)")
    layer, head, part, mlp, _other = match.groups()
    if head is not None:
        return int(layer), "head_input" if part else "head"
    return int(layer), "mlp" if mlp else "resid"


# --------------------------------------------------------------------------- results
def _pick_circuit(results: dict, circuit: str | None) -> tuple[str, dict]:
    if not isinstance(results, dict):
        raise RenderError("results must be a JSON object")
    circuits = results.get("circuits")
    if not isinstance(circuits, dict) or not circuits:
        raise RenderError("the results hold no circuit to draw (no 'circuits' entry)")
    if circuit is None:
        first = results.get("circuit")
        circuit = first.get("name") if isinstance(first, dict) else None
        circuit = circuit if circuit in circuits else sorted(circuits)[0]
    if circuit not in circuits:
        raise RenderError(f"the results have no circuit '{circuit}' "
                          f"(they have: {', '.join(sorted(circuits))})")
    body = circuits[circuit]
    if not isinstance(body, dict):
        raise RenderError(f"circuit '{circuit}' must be an object with 'nodes' and 'edges'")
    return circuit, body


def _circuit_nodes(name: str, body: dict) -> list[dict]:
    nodes = body.get("nodes") or []
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise RenderError(f"circuit '{name}' has a node without an 'id': {node!r}")
        parse_node_id(node["id"])
        _score(node)
        if not isinstance(node.get("category"), (str, type(None))):
            raise RenderError(f"node '{node['id']}' has a category that is not a name: "
                              f"{node['category']!r}")
    return nodes


def _circuit_edges(name: str, body: dict) -> list[dict]:
    edges = []
    for edge in body.get("edges") or []:
        if not isinstance(edge, dict) or not all(
                isinstance(edge.get(k), str) for k in ("src", "dst")):
            raise RenderError(f"circuit '{name}' has an edge without 'src' and 'dst': {edge!r}")
        dst, part = edge["dst"], edge.get("part")
        if dst.count(".") == 2:  # the part written into the receiver's id: L1.H2.q
            dst, part = dst.rsplit(".", 1)[0], part or dst.rsplit(".", 1)[1]
        for node_id in (edge["src"], dst):
            parse_node_id(node_id)
        if part not in PART_STYLES:
            raise RenderError(f"circuit '{name}' has an edge whose part is not q, k, v or "
                              f"null: {edge!r}")
        weight = edge.get("weight")
        if isinstance(weight, bool) or (weight is not None
                                        and not isinstance(weight, (int, float))):
            raise RenderError(f"circuit '{name}' has an edge with a non-numeric weight: {edge!r}")
        edges.append({"src": edge["src"], "dst": dst, "part": part, "weight": weight})
    return sorted(edges, key=lambda e: (_order(e["src"]), _order(e["dst"]), e["part"] or ""))


def _drawn_edges(edges: list[dict]) -> tuple[list[dict], int]:
    """The edges worth drawing (|weight| at least SMALL_EDGE of the largest; edges
    without a weight are kept) and how many were left out."""
    biggest = max([abs(e["weight"]) for e in edges if e["weight"] is not None] + [0.0])
    kept = [e for e in edges if e["weight"] is None or abs(e["weight"]) >= SMALL_EDGE * biggest]
    return kept, len(edges) - len(kept)


def _score(node: dict) -> float:
    score = node.get("score")
    if score is None:
        return 0.0
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise RenderError(f"node '{node.get('id')}' has a non-numeric score: {score!r}")
    return float(score)


def _n_layers(results: dict, ids) -> int:
    n_layers = (results.get("model") or {}).get("n_layers")
    deepest = 1 + max([parse_node_id(i)[0] for i in ids if i not in ("EMBED", "LOGITS")] + [-1])
    return max(n_layers if isinstance(n_layers, int) else 0, deepest)


# --------------------------------------------------------------------------- statements
def _circuit_node(node_id: str, node: dict | None, fills: dict, max_score: float) -> str:
    if node is None:
        if node_id == "EMBED":
            return _frame_node("EMBED")
        return _node(node_id, label=node_id, fill=CONTEXT, pen=NEUTRAL, width=1.0,
                     style="dashed", tooltip=f"{node_id} (outside the circuit)")
    score = _score(node)
    category = node.get("category")
    pen = HELPS if score > 0 else HURTS if score < 0 else NEUTRAL
    width = 1.0 + 4.0 * abs(score) / max_score if max_score else 1.0
    tooltip = f"{node_id} | {category or 'no category'} | score {_number(score)}"
    return _node(node_id, label=(node_id, _number(score)), fill=fills.get(
        category, UNCATEGORISED), pen=pen, width=width, tooltip=tooltip)


def _hypothesis_node(node: ir.Node) -> str:
    return _node(node.id, label=node.id, fill=HYPOTHESIS, pen=NEUTRAL, width=1.0,
                 tooltip=f"{node.id} (hypothesis)")


def _frame_node(node_id: str) -> str:
    return _node(node_id, label=node_id, fill="#f0f0f0", pen=NEUTRAL, width=1.0,
                 tooltip="token embeddings" if node_id == "EMBED" else "unembedding")


def _node(node_id, *, label, fill, pen, width, tooltip, style="") -> str:
    kind = parse_node_id(node_id)[1]
    shape = {"mlp": "hexagon", "resid": "ellipse", "head_input": "ellipse"}.get(kind, "box")
    styles = ["filled"] + (["rounded"] if kind == "head" else []) + ([style] if style else [])
    lines = label if isinstance(label, tuple) else (label,)
    return (f"{_q(node_id)} [label={_q_lines(lines)}, shape={shape}, "
            f"style={_q(','.join(styles))}, "
            f"fillcolor={_q(fill)}, color={_q(pen)}, penwidth={width:.2f}, "
            f"tooltip={_q(tooltip)}];")


def _edge_statements(edges: list[dict], ports: bool = False) -> list[str]:
    """One statement per edge; with `ports`, an edge into a head's q, k or v enters it
    at the port of that input (PART_PORTS)."""
    biggest = max([abs(e["weight"]) for e in edges if e["weight"] is not None] + [0.0])
    statements = []
    for edge in edges:
        weight = edge["weight"]
        width = 1.0 + 3.0 * abs(weight) / biggest if weight is not None and biggest else 1.0
        colour = NEUTRAL if not weight else HELPS if weight > 0 else HURTS
        label = " ".join(x for x in (edge["part"], _number(weight) if weight is not None else "")
                         if x)
        port = f"headport={PART_PORTS[edge['part']]}, " if ports and edge["part"] else ""
        statements.append(
            f"{_q(edge['src'])} -> {_q(edge['dst'])} [label={_q(label)}, {port}"
            f"style={PART_STYLES.get(edge['part'], 'solid')}, color={_q(colour)}, "
            f"fontcolor={_q(colour)}, penwidth={width:.2f}];")
    return statements


def _logit_statements(nodes: dict, edges: list[dict]) -> list[str]:
    """Edges into LOGITS weighted by score, one from each circuit node that has no
    edge into LOGITS among the drawn edges and whose other drawn edges carry less than
    half its score (otherwise its effect is drawn through them)."""
    sent = {}
    for edge in edges:
        if edge["dst"] == "LOGITS":
            sent[edge["src"]] = float("inf")
        elif edge["weight"] is not None:
            sent[edge["src"]] = sent.get(edge["src"], 0.0) + abs(edge["weight"])
    senders = [nodes[i] for i in sorted(nodes, key=_order)
               if i != "LOGITS" and sent.get(i, 0.0) < abs(_score(nodes[i])) / 2]
    return _edge_statements([{"src": n["id"], "dst": "LOGITS", "part": None,
                              "weight": _score(n)} for n in senders])


def _legend(title: str, fills: dict, has_edges: bool, hidden: int = 0) -> str:
    """The graph's label: the title over a legend of categories, signs and widths."""
    swatches = "".join(
        f'<TD BGCOLOR="{colour}" WIDTH="12"></TD><TD ALIGN="LEFT">{_h(name)}</TD>'
        for name, colour in [*fills.items(), ("no category", UNCATEGORISED)])
    notes = [f'<TABLE BORDER="0" CELLSPACING="2"><TR><TD><FONT COLOR="{HELPS}">blue: helps the '
             f'correct answer</FONT></TD><TD><FONT COLOR="{HURTS}">red: hurts it</FONT></TD>'
             "<TD>line width: size of the score</TD></TR></TABLE>"]
    if has_edges:
        notes.append("edges into a head: q dashed, k dotted, v solid")
    if hidden:
        notes.append(f"{hidden} edge{'s' if hidden > 1 else ''} under {SMALL_EDGE:.0%} of the largest "
                     "not drawn")
    return _table([f"<B>{_h(title)}</B>", f'<TABLE BORDER="0" CELLSPACING="2"><TR>{swatches}'
                   "</TR></TABLE>", *notes])


def _edge_legend(title: str, fills: dict, edges: list[dict]) -> str:
    """The label of an edge circuit's graph: only its kept edges are drawn, and how
    an edge into a head's q, k or v input is marked."""
    swatches = "".join(
        f'<TD BGCOLOR="{colour}" WIDTH="12"></TD><TD ALIGN="LEFT">{_h(name)}</TD>'
        for name, colour in [*fills.items(), ("no category", UNCATEGORISED)])
    notes = [f'<TABLE BORDER="0" CELLSPACING="2"><TR><TD><FONT COLOR="{HELPS}">blue: the edge helps the '
             f'correct answer</FONT></TD><TD><FONT COLOR="{HURTS}">red: hurts it</FONT></TD>'
             "<TD>line width: |weight|</TD></TR></TABLE>",
             "only the circuit's kept edges are drawn; a node's score sums its kept edges' weights",
             "into a head: q dashed, enters lower left; k dotted, below; v solid, lower right"]
    if any(e["weight"] is None for e in edges):
        notes.append(f'<FONT COLOR="{NEUTRAL}">grey: an edge without a weight (imported)</FONT>')
    return _table([f"<B>{_h(title)}</B>", f'<TABLE BORDER="0" CELLSPACING="2"><TR>{swatches}'
                   "</TR></TABLE>", *notes])


def _note(title: str, lines: list[str]) -> str:
    return _table([f"<B>{_h(title)}</B>", *(_h(line) for line in lines)])


def _table(rows: list[str]) -> str:
    cells = "".join(f'<TR><TD ALIGN="LEFT">{row}</TD></TR>' for row in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLPADDING="1">{cells}</TABLE>>'


def _by_layer(statements: dict[str, str]) -> dict[int, list[str]]:
    """Node statements grouped by layer, in node order within each layer."""
    grouped: dict[int, list[str]] = {}
    for node_id in sorted(statements, key=_order):
        grouped.setdefault(parse_node_id(node_id)[0], []).append(statements[node_id])
    return grouped


def _graph(name, label, n_layers, by_layer, embed, links) -> str:
    lines = [f"digraph {_q(name)} {{",
             "  graph [rankdir=BT, newrank=true, nodesep=0.35, ranksep=0.6, "
             f'fontname="Helvetica", fontsize=11, labelloc=t, labeljust=l, label={label}];',
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];',
             "  { rank=min; " + embed + " }"]
    for layer in range(n_layers):
        marker = (f'"rank L{layer}" [shape=plaintext, label="layer {layer}", '
                  f'fontcolor="#888888"];')
        lines.append("  { rank=same; " + " ".join([marker] + by_layer.get(layer, [])) + " }")
    lines.append('  { rank=max; "LOGITS" [label="LOGITS", shape=box, style=filled, '
                 'fillcolor="#f0f0f0", color="#555555", tooltip="unembedding"]; }')
    chain = ['"EMBED"'] + [f'"rank L{layer}"' for layer in range(n_layers)] + ['"LOGITS"']
    lines.append("  " + " -> ".join(chain) + " [style=invis];")
    lines.extend("  " + link for link in links)
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- text
def _order(node_id: str) -> tuple:
    layer, kind = parse_node_id(node_id)
    return layer, KIND_ORDER[kind], len(node_id), node_id


def _grouped(part, parent) -> str:
    text = rule_text(part)
    return f"({text})" if isinstance(part, (ir.And, ir.Or)) and type(part) is not type(
        parent) else text


def _number(value: float) -> str:
    return f"{value:+.2f}" if abs(value) >= 0.005 or value == 0 else f"{value:+.2e}"


def _escape(text: str) -> str:
    return visible_text(str(text)).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _q(text: str) -> str:
    """A DOT double-quoted string holding `text` literally."""
    return f'"{_escape(text)}"'


def _q_lines(lines) -> str:
    """A DOT label of several centred lines."""
    return _q("\n".join(lines))


def _h(text: str) -> str:
    return html.escape(visible_text(str(text)), quote=True)

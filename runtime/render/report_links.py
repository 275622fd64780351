"""Links between the report's views: each circuit node's row jumps to its place in the
diagram and to its cell in every patching heatmap that holds it."""
from __future__ import annotations

import re
from html import unescape

from circ.runtime.render.diagram import RenderError, parse_node_id
from circ.runtime.render.html_parts import anchor, escape


def heatmap_cells(results: dict) -> dict[str, set[str]]:
    """{patch analysis: the circuit nodes that are heads or MLPs in its heatmap}."""
    circuits = results.get("circuits") if isinstance(results.get("circuits"), dict) else {}
    analyses = results.get("analyses") if isinstance(results.get("analyses"), dict) else {}
    members = {str(n.get("id")) for circuit in circuits.values()
               if isinstance(circuit, dict) for n in circuit.get("nodes") or []}
    cells = {}
    for name, analysis in analyses.items():
        if isinstance(analysis, dict) and analysis.get("kind") == "patch" \
                and isinstance(analysis.get("values"), dict):
            cells[name] = {node for node in members & set(analysis["values"]) if _cell_kind(node)}
    return cells


def _cell_kind(node: str) -> bool:
    try:
        return parse_node_id(node)[1] in ("head", "mlp")
    except RenderError:
        return False


def diagram_ids(svg: str) -> tuple[str, set[str]]:
    """The diagram's SVG with each node group's id set to `diagram-<node>`, and the
    node ids drawn (Graphviz names a node's group by its `<title>`)."""
    drawn = set()

    def rename(match) -> str:
        node = unescape(match.group(2))
        drawn.add(node)
        return f'<g id="diagram-{anchor(node)}" class="node">{match.group(1)}{match.group(2)}</title>'

    svg = re.sub(r'<g id="node\d+" class="node">(\s*<title>)([^<]*)</title>', rename, svg)
    return svg, drawn


def jump(element_id: str, label: str) -> str:
    """A link to the element `element_id` on the page."""
    return f'<a class="jump" href="#{escape(element_id)}">{escape(label)}</a>'

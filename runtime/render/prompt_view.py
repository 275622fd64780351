"""The report's per-prompt view of one analysis with a value per node and prompt
(`circ run --per-prompt`, `Results.save`): how each of its main nodes' values spread
over the prompts (a box and strip plot, with the quantiles drawn listed in a table),
and the prompts where those nodes help least, with their text.

The main nodes are the nodes of the spec's circuits that the analysis has values
for, else its `TOP_NODES` strongest by |mean|, at most `TOP_NODES` either way. A
prompt's score is the sum of the main nodes' values on it (how much the nodes the
hypothesis rests on help there, positive helps); the `WORST_PROMPTS` lowest are
listed. The page stays small at any dataset size: quantiles use every prompt, the
strip draws at most `MAX_POINTS` per node, and only the listed prompts' texts (cut to
`TEXT_CHARS` characters) are embedded.
"""
from __future__ import annotations

import math
from html import escape

import numpy

from circ.compiler.escape import visible_text
from circ.runtime.render import charts
from circ.runtime.render.diagram import RenderError
from circ.runtime.render.html_parts import anchor

TOP_NODES = 8
WORST_PROMPTS = 5
MAX_POINTS = 200
TEXT_CHARS = 300
QUANTILES = (("min", 0), ("q1", 25), ("median", 50), ("q3", 75), ("max", 100))


def prompt_view(name: str, lists: dict, members: set[str], texts: list | None) -> str:
    """The HTML of the view: `lists` {node id: [value per prompt]} (per_prompt.json's
    entry of the analysis), `members` the circuits' node ids, `texts` the dataset's
    prompts in order, or None when the run did not keep them."""
    columns = _columns(lists)
    nodes = main_nodes(columns, members)
    if not nodes:
        return ""
    stats = {node: quantiles(columns[node]) for node in nodes}
    points = {node: _thinned(columns[node]) for node in nodes}
    n = len(columns[nodes[0]])
    chart = charts.prompt_distributions(stats, points, title=f"{name}: values over {n} prompts",
                                        xlabel="value on one prompt (+ helps)")
    rows = "".join(
        f'<tr data-node="{escape(node)}">' + f"<td>{escape(node)}</td>"
        + "".join(f'<td class="num" data-{key}="{stats[node][key]!r}">{stats[node][key]:.4g}</td>'
                  for key, _ in QUANTILES) + "</tr>" for node in nodes)
    table = (f'<table class="quantiles" id="quantiles-{anchor(name)}"><thead><tr><th>node</th>'
             + "".join(f"<th>{key}</th>" for key, _ in QUANTILES) + f"</tr></thead><tbody>{rows}</tbody></table>")
    in_circuits = [node for node in columns if node in members]
    chosen = ("the circuit's nodes" if len(nodes) == len(in_circuits)
              else f"the circuit's {len(nodes)} strongest nodes" if in_circuits
              else f"the {len(nodes)} strongest nodes")
    return (f"<h3>per prompt</h3><div class=\"figure\">{chart}</div>{table}"
            + _worst_html(name, columns, nodes, texts, chosen))


def main_nodes(columns: dict, members: set[str]) -> list[str]:
    """The circuit members among `columns`, else the strongest nodes, by |mean|
    (largest first, ties by id), at most TOP_NODES."""
    kept = [node for node in columns if node in members] or [node for node in columns if node != "BIAS"]
    return sorted(kept, key=lambda node: (-abs(float(numpy.mean(columns[node]))), node))[:TOP_NODES]


def quantiles(values) -> dict:
    """{"min", "q1", "median", "q3", "max"} of `values` (numpy's linear percentiles)."""
    found = numpy.percentile(numpy.asarray(values, dtype=float), [q for _, q in QUANTILES])
    return {key: float(value) for (key, _), value in zip(QUANTILES, found)}


def worst_prompts(columns: dict, nodes: list[str], count: int = WORST_PROMPTS) -> list[tuple[int, float]]:
    """(prompt index, sum of `nodes`' values on it) of the `count` prompts with the
    lowest sum, lowest first (ties by index)."""
    scores = numpy.sum([numpy.asarray(columns[node], dtype=float) for node in nodes], axis=0)
    order = numpy.argsort(scores, kind="stable")[:count]
    return [(int(index), float(scores[index])) for index in order]


def _worst_html(name: str, columns: dict, nodes: list[str], texts: list | None, chosen: str) -> str:
    rows = []
    for index, score in worst_prompts(columns, nodes):
        text = texts[index] if texts is not None and index < len(texts) else None
        shown = "" if text is None else escape(visible_text(str(text)[:TEXT_CHARS])
                                                + ("\u2026" if len(str(text)) > TEXT_CHARS else ""))
        rows.append(f'<tr data-prompt="{index}"><td class="num">{index}</td>'
                    f'<td class="num" data-score="{score!r}">{score:.4g}</td><td><pre>{shown}</pre></td></tr>')
    note = "" if texts is not None else "<p class=\"note\">The prompts' texts were not kept with these results.</p>"
    return (f"<h4>prompts where {escape(chosen)} help least</h4>"
            f"<p class=\"note\">Score: the sum of {', '.join(escape(n) for n in nodes)} on the prompt "
            "(positive helps); lowest first.</p>" + note
            + f'<table class="worst" id="worst-{anchor(name)}"><thead><tr><th>prompt</th><th>score</th>'
            f'<th>text</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _columns(lists) -> dict[str, list[float]]:
    """The per-prompt lists, checked: numbers, one count of prompts for every node."""
    if not isinstance(lists, dict):
        raise RenderError("its per-prompt values must be an object keyed by node id")
    columns = {}
    for node, values in lists.items():
        if not isinstance(values, list) or not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise RenderError(f"per-prompt values of '{node}' must be a non-empty list of finite numbers")
        columns[str(node)] = [float(v) for v in values]
    if len({len(values) for values in columns.values()}) > 1:
        raise RenderError("its per-prompt lists have different numbers of prompts")
    return columns


def _thinned(values: list[float]) -> list[float]:
    """At most MAX_POINTS of the values, evenly spaced in prompt order."""
    if len(values) <= MAX_POINTS:
        return values
    step = len(values) / MAX_POINTS
    return [values[int(i * step)] for i in range(MAX_POINTS)]

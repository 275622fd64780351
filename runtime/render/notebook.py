"""The compact report a notebook shows for a `Results` (its `_repr_html_`): the
verdict, the expectations, the circuit diagram and a bar chart of the strongest nodes
of each per-node analysis. The full page is report.html (report.py)."""
from __future__ import annotations

from html import escape

from circ.runtime.render import charts
from circ.runtime.render.diagram import RenderError, circuit_dot
from circ.runtime.render.graphviz import inline_svg

PER_NODE_KINDS = ("attribute", "patch")
TOP_NODES = 12


def compact_report(results: dict) -> str:
    """One `<div>` of HTML: everything escaped, charts and diagram inline as SVG."""
    spec = results.get("spec") or {}
    model = results.get("model") or {}
    parts = [f"<h3>circ: {escape(str(spec.get('name', '')))}</h3>",
             f"<p>model {escape(str(model.get('name', '?')))} · {_verdict(results)}</p>",
             _expectations(results), _diagram(results)]
    for name, analysis in (results.get("analyses") or {}).items():
        if analysis.get("kind") in PER_NODE_KINDS and analysis.get("values"):
            parts.append(_chart(name, analysis))
    return '<div class="circ-results">' + "\n".join(p for p in parts if p) + "</div>"


def _verdict(results: dict) -> str:
    expectations = results.get("expectations") or []
    failed = [e for e in expectations if not e.get("passed")]
    if not expectations:
        return "no expectations"
    if failed:
        return f'<b style="color:#cf222e">{len(failed)} of {len(expectations)} expectations fail</b>'
    return f'<b style="color:#1a7f37">all {len(expectations)} expectations hold</b>'


def _expectations(results: dict) -> str:
    rows = []
    for e in results.get("expectations") or []:
        verdict = "holds" if e.get("passed") else "fails"
        found = e.get("reason") or e.get("detail")
        reason = f" ({escape(str(found))})" if found else ""
        rows.append(f"<tr><td>{escape(str(e.get('line', '')))}</td><td><code>{escape(str(e.get('text', '')))}"
                    f"</code></td><td>{escape(_number(e.get('value')))}</td><td>{verdict}{reason}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>line</th><th>expectation</th><th>value</th><th>result</th></tr>"
            + "".join(rows) + "</table>")


def _diagram(results: dict) -> str:
    if not results.get("circuit"):
        return ""
    try:
        return f"<div>{inline_svg(circuit_dot(results))}</div>"
    except RenderError as error:
        return f"<p>(no diagram: {escape(str(error))})</p>"


def _chart(name: str, analysis: dict) -> str:
    try:
        return charts.signed_bar_chart(analysis["values"], title=f"{name} ({analysis['kind']})",
                                       xlabel="value (positive helps)", limit=TOP_NODES)
    except RenderError as error:
        return f"<p>({escape(name)}: {escape(str(error))})</p>"


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

"""The HTML report of a run: one self-contained page built from results.json.

Everything is inline (CSS, the diagram's SVG, matplotlib charts as SVG, the page's
own script from `page_script`), so the file opens without a network. Every string
taken from the results or the spec is escaped; data the script reads is JSON in script
elements (`explorer.json_script`).
A section appears only for what the results hold; a chart that cannot be drawn from
malformed values shows the reason in its place and the rest of the page still renders.
Given the run's per-prompt values (per_prompt.json) and prompts, each analysis that
has them also shows its per-prompt view (`prompt_view`).
"""
from __future__ import annotations

import json
from pathlib import Path
from string import Template

from circ.compiler.ir import source_lines
from circ.runtime.render import charts
from circ.runtime.render.diagram import RenderError, parse_node_id
from circ.runtime.render.explorer import explorer_html
from circ.runtime.render.graphviz import INSTALL_HINT
from circ.runtime.render.html_parts import anchor, escape, figure, is_number, num, plain, table, with_stderr
from circ.runtime.render.page_script import SCRIPT, STYLE
from circ.runtime.render.prompt_view import prompt_view
from circ.runtime.render.report_links import diagram_ids, heatmap_cells, jump
from circ.runtime.results.safe_write import write_inside

TABLED = 10  # patching nodes of the heatmap also listed with their standard error, largest first
KIND_ORDER = ("attribute", "patch", "path_patch", "edges", "attention", "subspace", "faithfulness", "curve",
              "ablate")
EDGES_SHOWN = 30  # an edge-scores analysis lists every edge; the report charts the strongest
KIND_TITLES = {"attribute": "direct logit attribution", "patch": "activation patching",
               "path_patch": "path patching", "edges": "edge scores", "attention": "attention patterns",
               "subspace": "low-rank q/k/v subspaces", "faithfulness": "faithfulness",
               "curve": "faithfulness curves", "ablate": "nodes ablated together"}

PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; line-height: 1.45; }
header { background: #24292f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header .meta { color: #c9d1d9; font-size: 13px; }
nav { padding: 8px 32px; background: #eef1f4; font-size: 13px; }
nav a { margin-right: 14px; color: #0b5cad; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1200px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px 20px;
          margin: 16px 0; }
h2 { font-size: 19px; margin: 4px 0 8px; } h3 { font-size: 15px; margin: 14px 0 6px; }
.meta, .note { color: #555; font-size: 13px; }
.figure svg { max-width: 100%; height: auto; display: block; margin: 6px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 10px; text-align: left;
         vertical-align: top; }
.num { font-family: "DejaVu Sans Mono", monospace; }
.pass { color: #fff; background: #1a7f37; padding: 1px 8px; border-radius: 10px; }
.fail { color: #fff; background: #cf222e; padding: 1px 8px; border-radius: 10px; }
.badge { font-size: 14px; margin-left: 10px; }
.source { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.source td { border: 0; padding: 0 10px; white-space: pre; }
.source td.ln { color: #999; text-align: right; user-select: none; }
.source tr.passed { background: #e6f4ea; } .source tr.failed { background: #fde8e8; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
.error { color: #cf222e; }
$style
</style></head>
<body>
<header><h1>$title</h1><div class="meta">$meta</div></header>
<nav>$nav</nav>
<main>
$sections
</main>
<script>$script</script>
</body></html>
""")




def write_report(results: dict, spec_source: str, out_path: Path, *,
                 diagram_svg: str | None, per_prompt: dict | None = None, prompts: dict | None = None) -> Path:
    """Write the report of `results` to `out_path` (an .html file) atomically, never
    through a link (`safe_write`); return the path."""
    out_path = Path(out_path)
    page = report_html(results, spec_source, diagram_svg=diagram_svg, per_prompt=per_prompt, prompts=prompts)
    return write_inside(out_path.parent, out_path.name, page)


def report_html(results: dict, spec_source: str, *, diagram_svg: str | None, per_prompt: dict | None = None,
                prompts: dict | None = None) -> str:
    """The report page as one HTML string; `per_prompt` is per_prompt.json's
    {analysis: {node id: [values]}}, `prompts` {dataset: [prompt text]}."""
    _check_structure(results)
    spec = _mapping(results, "spec")
    sections = [_expectations(results), _warnings(results), _circuit(results, diagram_svg),
                *_analyses(results, per_prompt or {}, prompts or {}), _source(spec_source, results),
                _model_and_data(results), _settings(results)]
    sections = [s for s in sections if s]
    nav = " ".join(f'<a href="#{anchor}">{escape(label)}</a>' for anchor, label, _ in sections)
    timing = _mapping(results, "timing")
    meta = " · ".join(escape(str(x)) for x in (
        spec.get("path", "?"), f"model {_mapping(results, 'model').get('name', '?')}",
        f"circ {results.get('circ_version', '?')}", f"started {timing.get('started', '?')}")
    ) + _verdict(results)
    return PAGE.substitute(title=escape(f"circ report: {spec.get('name', 'unnamed spec')}"),
                           meta=meta, nav=nav, sections="\n".join(s[2] for s in sections),
                           style=STYLE, script=SCRIPT)


def _check_structure(results) -> None:
    """Refuse results whose lists and objects are not where results.json has them."""
    if not isinstance(results, dict):
        raise RenderError("results must be a JSON object")
    expectations = results.get("expectations") or []
    if not isinstance(expectations, list) or not all(isinstance(e, dict) for e in expectations):
        raise RenderError("results 'expectations' must be a list of objects")
    for name, circuit in _mapping(results, "circuits").items():
        for key in ("nodes", "edges"):
            items = (circuit.get(key) or []) if isinstance(circuit, dict) else None
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise RenderError(f"circuit '{name}' must have '{key}' as a list of objects")


# --------------------------------------------------------------------------- sections
def _section(anchor: str, title: str, body: str) -> tuple[str, str, str]:
    return anchor, title, f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}</section>'


def _verdict(results: dict) -> str:
    expectations = results.get("expectations") or []
    if not expectations:
        return ""
    failed = sum(1 for e in expectations if not e.get("passed"))
    if failed:
        return f'<span class="badge fail">{failed} of {len(expectations)} expectations fail</span>'
    return f'<span class="badge pass">all {len(expectations)} expectations hold</span>'


def _expectations(results: dict):
    expectations = results.get("expectations") or []
    if not expectations:
        return None
    rows = [[_link_line(e.get("line")), escape(str(e.get("text", ""))),
             escape(str(e.get("detail") or e.get("reason"))) if e.get("detail") or e.get("reason")
             else num(e.get("value")),
             escape(f"{e.get('op', '')} {e.get('threshold', '')}" if e.get("threshold") is not None
                    else "to hold"), _verdict_cell(e)]
            for e in expectations]
    return _section("expectations", "Expectations",
                    table(["line", "expectation", "value", "needs", "result"], rows))


def _warnings(results: dict):
    """Statements that ran but said nothing (an empty circuit, an unmatched category)."""
    listed = results.get("warnings")
    warnings = [w for w in listed if isinstance(w, dict)] if isinstance(listed, list) else []
    if not warnings:
        return None
    rows = [[_link_line(w.get("line")), escape(plain(w.get("code"))), escape(plain(w.get("message")))]
            for w in warnings]
    return _section("warnings", "Warnings", table(["line", "code", "warning"], rows))


def _circuit(results: dict, diagram_svg: str | None):
    circuits = results.get("circuits")
    if not isinstance(circuits, dict) or not circuits:
        return None
    diagram_nodes = set()
    if diagram_svg:
        diagram_svg, diagram_nodes = diagram_ids(diagram_svg)
        body = f'<div class="figure diagram">{diagram_svg}</div>'
    else:
        body = ('<p class="note">The circuit diagram needs Graphviz\'s <code>dot</code>, which '
                f"was not found: {escape(INSTALL_HINT)}.</p>")
    drawn = _mapping(results, "circuit").get("name")  # the circuit in the diagram
    cells = heatmap_cells(results)
    for name in sorted(circuits, key=lambda n: (n != drawn, n)):
        circuit = circuits[name]
        rows = []
        for n in circuit.get("nodes") or []:
            node = str(n.get("id"))
            links = ([jump(f"diagram-{anchor(node)}", "diagram")] if node in diagram_nodes else []) + [
                jump(f"cell-{anchor(analysis)}-{anchor(node)}", f"heatmap {analysis}")
                for analysis, nodes in sorted(cells.items()) if node in nodes]
            score = n.get("score")
            score_cell = (f'<td data-sort="{score!r}">{num(score)}</td>'
                          if is_number(score) else f"<td>{num(score)}</td>")
            rows.append(f'<tr id="node-{anchor(name)}-{anchor(node)}"><td>{escape(node)}</td>'
                        f'<td>{escape(str(n.get("kind", "")))}</td>'
                        f'<td>{escape(str(n.get("category") or ""))}</td>{score_cell}'
                        f'<td>{" ".join(links)}</td></tr>')
        body += f"<h3>circuit {escape(name)}: {len(rows)} nodes</h3>" + _growth_note(circuit.get("faithfulness"))
        head = "".join(f"<th>{h}</th>" for h in ("node", "kind", "category", "score", "go to"))
        body += (f'<table class="sortable" id="nodes-{anchor(name)}"><thead><tr>{head}</tr></thead>'
                 f'<tbody>{"".join(rows)}</tbody></table>'
                 '<p class="note">Click a header to sort; a link jumps to the node in the '
                 "diagram or in a patching heatmap and highlights it.</p>")
        edges = [[escape(f"{e.get('src')} \u2192 {e.get('dst')}"), escape(str(e.get("part") or "")),
                  num(e.get("weight"))] for e in circuit.get("edges") or []]
        if edges:
            body += table(["edge", "part", "weight"], edges)
    return _section("circuit", "Circuit", body)


def _growth_note(growth) -> str:
    """What discover(A, faithfulness=F) measured for the circuit it grew."""
    if not isinstance(growth, dict):
        return ""
    reached = "reaching" if growth.get("reached") else "short of"
    return (f"<p>Grown along the ranking of {escape(plain(growth.get('level')))} to "
            f"{num(growth.get('size'))} kept: faithfulness {num(growth.get('value'))}, {reached} the "
            f"target {num(growth.get('target'))}.</p>")


def _analyses(results: dict, per_prompt: dict, prompts: dict) -> list:
    analyses = {name: a if isinstance(a, dict) else {}
                for name, a in _mapping(results, "analyses").items()}
    members = _members(results)
    kinds = {name: str(a.get("kind", "?")) for name, a in analyses.items()}
    sections = []
    for name in sorted(analyses, key=lambda n: (
            KIND_ORDER.index(kinds[n]) if kinds[n] in KIND_ORDER else len(KIND_ORDER), n)):
        analysis, kind = analyses[name], kinds[name]
        drawer = KIND_BODIES.get(kind, _raw_body)
        try:
            body = drawer(name, analysis, results)
        except RenderError as error:
            body = f'<p class="error">cannot show this analysis: {escape(str(error))}</p>'
        if name in per_prompt:
            try:
                body += prompt_view(name, per_prompt[name], members, prompts.get(analysis.get("dataset")))
            except RenderError as error:
                body += f'<p class="error">cannot show the per-prompt values: {escape(str(error))}</p>'
        body = f'<p class="meta">{_describe(analysis)}</p>{body}'
        sections.append(_section(f"analysis-{anchor(name)}",
                                 f"{name}: {KIND_TITLES.get(kind, kind)}", body))
    return sections


def _source(spec_source: str, results: dict):
    if not spec_source:
        return None
    marks = {e.get("line"): "passed" if e.get("passed") else "failed"
             for e in results.get("expectations") or []}
    rows = "".join(
        f'<tr id="src-L{n}" class="{marks.get(n, "")}"><td class="ln">{n}</td>'
        f"<td>{escape(line)}</td></tr>"
        for n, line in enumerate(source_lines(spec_source), start=1))
    return _section("source", "Spec source", f'<table class="source">{rows}</table>')


def _model_and_data(results: dict):
    model = _mapping(results, "model")
    body = table([escape(k) for k in sorted(model)],
                  [[num(v) for _, v in sorted(model.items())]]) if model else ""
    datasets = _mapping(results, "datasets")
    if datasets:
        rows = [[escape(name), escape(str(d.get("kind", ""))), num(d.get("n")),
                 num(d.get("params", {})), f'<pre>{escape(str(d.get("example", "")))}</pre>']
                for name, d in sorted(datasets.items()) if isinstance(d, dict)]
        body += "<h3>datasets</h3>" + table(["dataset", "kind", "prompts", "parameters",
                                              "first prompt"], rows)
    metrics = _mapping(results, "metrics")
    if metrics:
        body += "<h3>metrics</h3>" + table(["metric", "definition"], [
            [escape(name), escape(plain(m))] for name, m in sorted(metrics.items())])
    return _section("model", "Model and data", body) if body else None


def _settings(results: dict):
    run, model, timing = (_mapping(results, k) for k in ("run", "model", "timing"))
    rows = [("seed", run.get("seed")), ("batch size", run.get("batch_size")),
            ("device", model.get("device")), ("dtype", model.get("dtype")),
            ("numerics", model.get("numerics")), ("started", timing.get("started")),
            ("seconds", timing.get("seconds")),
            ("spec sha256", _mapping(results, "spec").get("sha256"))]
    rows += [(f"{name} version", version) for name, version in
             sorted((run.get("versions") or {}).items())]
    rows = [[escape(k), escape(plain(v))] for k, v in rows if v is not None]
    return _section("settings", "Run settings", table(["setting", "value"], rows))


# --------------------------------------------------------------------------- per kind
def _attribute_body(name: str, analysis: dict, results: dict) -> str:
    values = _values(analysis)
    chart = figure(charts.signed_bar_chart(
        values, title=f"{name}: contribution to {analysis.get('metric', 'the metric')}",
        xlabel="direct contribution", stderr=_stderr(analysis)))
    total = analysis.get("total")
    summed = sum(v for v in values.values() if v is not None)
    check = (f"<p>The values sum to {num(summed)}; the metric is "
             f"{num(total)}.</p>" if total is not None else "")
    return check + chart + _position_figure(name, analysis, "direct contribution by position",
                                            "The metric read at each token position on its own; the chart "
                                            "above is at the metric's own position.")


def _position_figure(name: str, analysis: dict, what: str, note: str) -> str:
    """The layer x token heatmap of an analysis at each position (BIAS, no node, left
    out), or nothing when it has none."""
    positions = analysis.get("positions")
    if not isinstance(positions, dict) or not positions:
        return ""
    nodes = {node: row for node, row in positions.items() if node != "BIAS"}
    return f"<p>{escape(note)}</p>" + figure(charts.position_heatmap(
        nodes, list(analysis.get("tokens") or []), title=f"{name}: {what}"))


def _patch_body(name: str, analysis: dict, results: dict) -> str:
    values = _values(analysis)
    model = _mapping(results, "model")
    ids = [parse_node_id(i) + (i,) for i in values]
    n_layers = model.get("n_layers") or 1 + max(layer for layer, _, _ in ids)
    n_heads = model.get("n_heads") or 1 + max(
        [int(i.split(".H")[1]) for _, kind, i in ids if kind == "head"] + [0])
    baseline = analysis.get("baseline") or {}
    text = ", ".join(f"{escape(str(k))} {num(v)}" for k, v in sorted(baseline.items()))
    others = {i: v for (_, kind, i), v in zip(ids, values.values()) if kind not in ("head", "mlp")}
    body = f"<p>Baseline: {text}.</p>" if text else ""
    body += _position_figure(name, analysis, "effect by position", "Patched at each token position on its "
                             "own; a node's value below is the sum over positions.")
    if len(others) < len(values):
        cell_ids = {node: f"cell-{anchor(name)}-{anchor(node)}"
                    for node in heatmap_cells(results).get(name, ())}
        body += figure(charts.patch_heatmap(values, n_layers=n_layers, n_heads=n_heads,
                                             title=f"{name}: patching effect", cell_ids=cell_ids))
    gridded = {i: v for (_, kind, i), v in zip(ids, values.values())
               if kind in ("head", "mlp") and isinstance(v, (int, float))}
    largest = sorted(gridded, key=lambda k: (-abs(gridded[k]), k))[:TABLED]
    listed = {**others, **{k: gridded[k] for k in largest}}
    if listed:
        errors = _stderr(analysis)
        caption = f"<p>Effects over {num(analysis.get('n'))} prompts (positive: the node helps).</p>"
        body += caption + table(["node", "effect", "\u00b1 stderr"],
                                 [[escape(k), num(v), num(errors.get(k))] for k, v in sorted(listed.items())])
    return body


def _path_patch_body(name: str, analysis: dict, results: dict) -> str:
    receivers = ", ".join(escape(str(r)) for r in analysis.get("receivers") or [])
    body = f"<p>Receivers: {receivers}.</p>" if receivers else ""
    return body + figure(charts.signed_bar_chart(
        _values(analysis), title=f"{name}: effect through each edge", xlabel="path effect",
        stderr=_stderr(analysis)))


def _edges_body(name: str, analysis: dict, results: dict) -> str:
    values = _values(analysis)
    strongest = dict(sorted(values.items(), key=lambda kv: -abs(kv[1]) if isinstance(kv[1], (int, float)) else 0)
                     [:EDGES_SHOWN])
    body = f"<p>The {len(strongest)} strongest of {len(values)} edges.</p>"
    return body + figure(charts.signed_bar_chart(
        strongest, title=f"{name}: estimated effect through each edge", xlabel="edge effect"))


def _attention_body(name: str, analysis: dict, results: dict) -> str:
    values = _values(analysis)
    if analysis.get("score"):
        return (f"<p>Mean over {num(analysis.get('n'))} prompts and {num(analysis.get('queries'))} "
                "query positions.</p>" + figure(charts.signed_bar_chart(
                    values, title=f"{name}: {analysis['score']} score", xlabel="attention mass")))
    positions = sorted({p for row in values.values() if isinstance(row, dict) for p in row})
    rows = [[escape(head)] + [num(row.get(p) if isinstance(row, dict) else None)
                              for p in positions]
            for head, row in sorted(values.items())]
    body = table(["head"] + [escape(p) for p in positions], rows)
    patterns = analysis.get("patterns")
    if patterns:
        title = f"{name}: attention from the {analysis.get('query', 'query')} position (first prompt)"
        if not isinstance(patterns, dict):
            raise RenderError("its 'patterns' must be an object keyed by head")
        if len(patterns) <= charts.MAX_STRIPS:
            body += figure(charts.attention_strips(patterns, title=title))
        else:
            body += "".join(figure(svg) for svg in charts.attention_grids(patterns, title=title))
    return body + explorer_html(anchor(name), analysis)


def _subspace_body(name: str, analysis: dict, results: dict) -> str:
    values = _values(analysis)
    body = figure(charts.rank_sweep(values, analysis.get("ranks"),
                                     title=f"{name}: metric recovered"))
    ranks = [str(r) for r in analysis.get("ranks") or []] or sorted(
        {r for per in values.values() for sweep in per.values() for r in sweep})
    rows = [[escape(key), escape(dataset)] + [num(sweep.get(r)) for r in ranks]
            for key, per in sorted(values.items()) for dataset, sweep in sorted(per.items())]
    return body + table(["node", "dataset"] + [f"rank {escape(r)}" for r in ranks], rows)


def _faithfulness_body(name: str, analysis: dict, results: dict) -> str:
    rows = [[escape(label), num(analysis.get(key))] for key, label in (
        ("value", "faithfulness"), ("clean", "metric, clean run"),
        ("circuit_only", "metric, all but the circuit ablated"),
        ("all_ablated", "metric, everything ablated")) if key in analysis]
    return ("<p>faithfulness = (circuit only \u2212 all ablated) / (clean \u2212 all ablated)</p>"
            + table(["quantity", "value"], rows))


def _curve_body(name: str, analysis: dict, results: dict) -> str:
    baseline = analysis.get("random") if isinstance(analysis.get("random"), dict) else {}
    rows = [["ranking by |" + escape(str(analysis.get("ranked_by"))) + "|", num(analysis.get("cpr")),
             num(analysis.get("cmd")), num(analysis.get("size_at_target"))],
            [f"random ({escape(plain(baseline.get('orders')))} orders, seed {escape(plain(baseline.get('seed')))})",
             with_stderr(baseline.get("cpr"), baseline.get("cpr_stderr")),
             with_stderr(baseline.get("cmd"), baseline.get("cmd_stderr")), num(baseline.get("size_at_target"))]]
    return (figure(charts.faithfulness_curve(analysis, title=f"{name}: faithfulness by circuit size"))
            + "<p>faithfulness = (kept − none kept) / (clean − none kept); CPR: area under the curve "
            "(higher is better), CMD: area between it and 1 (lower is better), over the fraction kept</p>"
            + table(["order", "CPR", "CMD", f"smallest size at {escape(plain(analysis.get('target')))}"], rows))



def _ablate_body(name: str, analysis: dict, results: dict) -> str:
    stderr = analysis.get("stderr") if isinstance(analysis.get("stderr"), dict) else {}
    rows = [[escape(label), num(analysis.get(key)), num(stderr.get(key))] for key, label in (
        ("clean", "metric, clean run"), ("ablated", "metric, nodes ablated"),
        ("value", "how much the nodes help")) if key in analysis]
    nodes = ", ".join(escape(str(n)) for n in analysis.get("nodes") or [])
    return (f"<p>Ablated together: {nodes}; {num(analysis.get('n'))} prompts.</p>"
            + table(["quantity", "mean", "standard error"], rows))


def _raw_body(name: str, analysis: dict, results: dict) -> str:
    return f"<pre>{escape(json.dumps(analysis, indent=2, sort_keys=True))}</pre>"


KIND_BODIES = {"attribute": _attribute_body, "patch": _patch_body,
               "path_patch": _path_patch_body, "edges": _edges_body, "attention": _attention_body,
               "subspace": _subspace_body, "faithfulness": _faithfulness_body,
               "curve": _curve_body, "ablate": _ablate_body}


# --------------------------------------------------------------------------- helpers
def _describe(analysis: dict) -> str:
    parts = [f"{label} {_listed(analysis[key])}" for key, label in (
        ("kind", "kind"), ("dataset", "on"), ("metric", "metric"), ("effect", "effect"),
        ("method", "method"), ("query", "query"), ("circuit", "circuit"),
        ("parts", "parts")) if analysis.get(key) is not None]
    source = analysis.get("source")
    if isinstance(source, dict):
        parts.append("source " + " ".join(str(source[k]) for k in ("kind", "dataset", "seed")
                                          if source.get(k) is not None))
    return escape(" · ".join(parts))


def _stderr(analysis: dict) -> dict:
    """The analysis's standard errors by node, {} for results written without them."""
    errors = analysis.get("stderr")
    return errors if isinstance(errors, dict) else {}


def _values(analysis: dict) -> dict:
    values = analysis.get("values")
    if not isinstance(values, dict):
        raise RenderError("its 'values' must be an object keyed by node id")
    return values


def _members(results: dict) -> set[str]:
    """The circuits' node ids and the keys of their kept edges (`L0.H1->L1.H0.q`, as an
    edges analysis keys its values), for the per-prompt views' main nodes."""
    members = set()
    for circuit in _mapping(results, "circuits").values():
        if not isinstance(circuit, dict):
            continue
        members |= {str(node.get("id")) for node in circuit.get("nodes") or [] if isinstance(node, dict)}
        members |= {f'{edge.get("src")}->{edge.get("dst")}' + (f'.{edge["part"]}' if edge.get("part") else "")
                    for edge in circuit.get("edges") or [] if isinstance(edge, dict)}
    return members


def _mapping(results: dict, key: str) -> dict:
    value = results.get(key)
    return value if isinstance(value, dict) else {}










def _verdict_cell(expectation: dict) -> str:
    if expectation.get("passed"):
        return '<span class="pass">pass</span>'
    why = expectation.get("reason")
    return '<span class="fail">fail</span>' + (f": cannot be computed: {escape(plain(why))}" if why else "")


def _link_line(line) -> str:
    return f'<a href="#src-L{line}">{line}</a>' if isinstance(line, int) else ""




def _listed(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else plain(value)

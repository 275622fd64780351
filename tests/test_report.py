"""The HTML report built from the fixture results: sections, values, charts, escaping,
omitted sections, self-containment and determinism."""
from __future__ import annotations

import copy
import json
import re
import shutil
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

import pytest
from circ.runtime.render.charts import DATASET_COLOURS, signed_bar_chart
from circ.runtime.render.diagram import RenderError, circuit_dot
from circ.runtime.render.graphviz import inline_svg
from circ.runtime.render.report import report_html, write_report

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "results" / "mcq_2l4h.json"
SVG = "{http://www.w3.org/2000/svg}"
SPEC_SOURCE = """\
# Correct-letter heads in multiple-choice answering, on the demo model.
spec "mcq-correct-letter"
model demo

data clean   = mcq(n=200, labels="ABCD", seed=0)
data letters = mcq(n=200, labels=random_letters, seed=1)
data numbers = mcq(n=200, labels="1234", seed=2)
data moved   = clean.move_answer(seed=3)

metric ld = logit_diff(answer, wrong) at last

analysis dla       = attribute(heads + mlps, on=clean, metric=ld)
analysis patched   = patch(heads + mlps, source=moved, target=clean, metric=ld, effect=direct)
analysis resampled = patch(heads + mlps, source=resample(letters, seed=4), target=clean,
                           metric=ld, effect=total, method=attribution)
analysis attn      = attention(top(dla, 2), on=clean, query=last)

circuit output = top(patched, 5) where abs(effect) > 0.2
circuit movers = top(dla, 3) where abs(dla) > 0.3
categories output {
  correct_letter = attends(answer_label) > 0.5 and dla > 0
  uniform        = attention_spread(labels) > 0.8
}
analysis paths   = path_patch(output, receivers=[L1.H2, L1.MLP], source=moved, on=clean, metric=ld)
analysis lowrank = subspace(best(output.correct_letter), parts=[q, k, v], ranks=[1, 2, 4, 8, full],
                            fit=clean, eval=[clean, letters, numbers], metric=ld)

expect faithfulness(output, on=clean, ablate=mean(clean), metric=ld) >= 0.8
expect lowrank.recovered(clean, rank <= 4) >= 0.9
expect lowrank.recovered(numbers, rank <= 4) >= 0.9
render output to "circuit.svg"
"""
ALL_SECTIONS = ["expectations", "circuit", "analysis-dla", "analysis-patched",
                "analysis-resampled", "analysis-paths", "analysis-attn", "analysis-lowrank",
                "analysis-faith", "source", "model", "settings"]


@pytest.fixture(scope="module")
def fixture_results():
    return json.loads(FIXTURE.read_text())


@pytest.fixture
def results(fixture_results):
    return copy.deepcopy(fixture_results)


@pytest.fixture(scope="module")
def page(fixture_results):
    return report_html(fixture_results, SPEC_SOURCE, diagram_svg="<svg><!-- diagram --></svg>")


def section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, flags=re.S)
    assert match, f"section {anchor} is missing"
    return match.group(1)


def svg_texts(html: str) -> list[str]:
    """The text of every <text> element of every inline SVG, in document order."""
    texts = []
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        root = ET.fromstring(svg)
        texts += ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]
    return texts


def test_every_section_is_present_in_order(page):
    anchors = re.findall(r'<section id="([^"]+)">', page)
    assert anchors == ALL_SECTIONS
    for anchor in ALL_SECTIONS:
        assert f'<a href="#{anchor}">' in page


def test_expectations_show_values_and_verdicts(page, fixture_results):
    body = section(page, "expectations")
    rows = re.findall(r"<tr>(.*?)</tr>", body)[1:]
    assert len(rows) == len(fixture_results["expectations"])
    for row, expectation in zip(rows, fixture_results["expectations"]):
        assert escape(expectation["text"]) in row
        assert f'href="#src-L{expectation["line"]}"' in row
        assert f'{expectation["value"]:.4g}' in row
        verdict = '<span class="pass">pass</span>' if expectation["passed"] else \
            '<span class="fail">fail</span>'
        assert verdict in row
    assert '<span class="badge fail">1 of 3 expectations fail</span>' in page


def test_spec_source_is_numbered_and_marks_expectation_lines(page):
    body = section(page, "source")
    lines = SPEC_SOURCE.splitlines()
    numbered = re.findall(r'<tr id="src-L(\d+)" class="(\w*)"><td class="ln">(\d+)</td>'
                          r"<td>(.*?)</td></tr>", body)
    assert [int(n) for n, _, _, _ in numbered] == list(range(1, len(lines) + 1))
    assert [text for _, _, _, text in numbered] == [escape(line) for line in lines]
    classes = {int(n): cls for n, cls, _, _ in numbered if cls}
    assert classes == {28: "passed", 29: "passed", 30: "failed"}


def test_diagram_is_inlined_or_replaced_by_a_note(page, fixture_results):
    assert "<svg><!-- diagram --></svg>" in section(page, "circuit")
    without = report_html(fixture_results, SPEC_SOURCE, diagram_svg=None)
    body = section(without, "circuit")
    assert "<svg" not in body and "apt-get install graphviz" in body
    for node in fixture_results["circuits"]["output"]["nodes"]:
        assert f"<td>{node['id']}</td>" in body


def test_dla_chart_is_sorted_and_signed(page, fixture_results):
    values = fixture_results["analyses"]["dla"]["values"]
    body = section(page, "analysis-dla")
    total = fixture_results["analyses"]["dla"]["total"]
    assert (f'The values sum to <span class="num">{sum(values.values()):.4g}</span>; '
            f'the metric is <span class="num">{total:.4g}</span>') in body
    texts = svg_texts(body)
    ticks = [t for t in texts if t in values]
    assert ticks == sorted(values, key=lambda k: (-values[k], k))  # largest on top
    assert [t for t in texts if re.fullmatch(r"[+-]\d\.\d\d", t)] == [
        f"{v:+.2f}" for v in sorted(values.values(), reverse=True)]
    assert body.count('style="fill: #2166ac"') == sum(v >= 0 for v in values.values())
    assert body.count('style="fill: #b2182b"') == sum(v < 0 for v in values.values())


def test_bar_chart_of_a_large_model_keeps_the_largest_bars():
    values = {f"L{layer}.H{head}": (layer * 16 + head - 200) / 100
              for layer in range(24) for head in range(16)}
    texts = svg_texts(signed_bar_chart(values, title="dla", xlabel="x", limit=30))
    expected = sorted(values, key=lambda k: (-abs(values[k]), k))[:30]
    assert [t for t in texts if t in values] == sorted(expected, key=lambda k: -values[k])
    assert "dla (the 30 largest of 384)" in texts


@pytest.mark.parametrize("name", ["patched", "resampled"])
def test_patch_heatmap_shows_every_head_and_mlp(page, fixture_results, name):
    values = fixture_results["analyses"][name]["values"]
    texts = svg_texts(section(page, f"analysis-{name}"))
    for label in ["H0", "H1", "H2", "H3", "MLP", "L0", "L1"]:
        assert label in texts
    cells = [t for t in texts if re.fullmatch(r"[+-]\d\.\d\d", t)]
    assert sorted(cells) == sorted(f"{v:+.2f}" for v in values.values())


def test_attention_patterns_are_drawn_over_tokens(page, fixture_results):
    analysis = fixture_results["analyses"]["attn"]
    body = section(page, "analysis-attn")
    texts = svg_texts(body)
    for head, pattern in analysis["patterns"].items():
        assert head in texts
        labels = [t.replace(" ", "\u2423").replace("\n", "\\n") for t in pattern["tokens"]]
        assert set(labels) <= set(texts)
    assert f"{max(analysis['patterns']['L1.H2']['weights']):.2f}" in texts
    for head, row in analysis["values"].items():
        assert f"<td>{head}</td>" + "".join(
            f'<td><span class="num">{row[p]:.4g}</span></td>' for p in sorted(row)) in body


def test_rank_sweep_has_a_line_per_dataset_and_part(page, fixture_results):
    analysis = fixture_results["analyses"]["lowrank"]
    body = section(page, "analysis-lowrank")
    texts = svg_texts(body)
    for rank in analysis["ranks"]:
        assert str(rank) in texts
    for dataset in analysis["eval"]:
        for part in analysis["parts"]:
            assert f"{dataset} {part}" in texts
    lines = [d for d, colour in re.findall(
        r'<path d="(M [^"]*)" clip-path="[^"]*" style="fill: none;[^"]*stroke: (#\w+)', body)
        if colour in DATASET_COLOURS]
    assert len(lines) == len(analysis["eval"]) * len(analysis["parts"])
    assert all(len(re.findall(r"\bL ", line)) == len(analysis["ranks"]) - 1 for line in lines)
    row = re.search(r"<td>L1.H2.q</td><td>numbers</td>(.*?)</tr>", body).group(1)
    assert re.findall(r'"num">([^<]+)<', row) == ["0.22", "0.49", "0.71", "0.88", "1"]


def test_faithfulness_and_settings(page, fixture_results):
    faith = section(page, "analysis-faith")
    assert '<td>faithfulness</td><td><span class="num">0.93</span></td>' in faith
    settings = section(page, "settings")
    run, model = fixture_results["run"], fixture_results["model"]
    for key, value in [("seed", run["seed"]), ("device", model["device"]),
                       ("numerics", model["numerics"]), ("torch version", "2.13.0"),
                       ("transformer_lens version", "4.3.0")]:
        assert f"<td>{key}</td><td>{value}</td>" in settings


def test_model_and_datasets_summary(page, fixture_results):
    body = section(page, "model")
    for name, dataset in fixture_results["datasets"].items():
        assert f"<td>{name}</td><td>{dataset['kind']}</td>" in body
        assert f"<pre>{escape(dataset['example'])}</pre>" in body
    assert '<span class="num">128</span>' in body


def test_text_from_results_and_spec_is_escaped(results):
    results["spec"]["name"] = "<script>alert(1)</script>"
    results["datasets"]["clean"]["example"] = '<img src=x onerror="alert(2)">'
    results["circuits"]["output"]["nodes"][0]["category"] = "a&b<i>"
    results["analyses"]["x<y>"] = results["analyses"].pop("faith")
    html = report_html(results, 'data d = jsonl("<b>&</b>")\n', diagram_svg=None)
    assert "<script>alert" not in html and "<img" not in html and "<i>" not in html
    assert re.findall(r"<script\b[^>]*>", html) == ["<script>"]  # the page's own script only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html
    assert "<td>a&amp;b&lt;i&gt;</td>" in html
    assert "x&lt;y&gt;: faithfulness" in html
    assert "jsonl(&quot;&lt;b&gt;&amp;&lt;/b&gt;&quot;)" in html


def test_page_needs_no_network(page):
    assert not re.search(r"<(link|img|iframe)\b", page)
    assert set(re.findall(r"<script\b[^>]*>", page)) <= {
        "<script>", '<script type="application/json" id="explorer-data-attn">'}
    assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|import)\s*\(", page)
    references = re.findall(r'\b(?:href|src)="([^"]*)"', page)
    assert references and all(ref.startswith(("#", "data:image/png;base64,"))
                              for ref in references)
    assert "@import" not in page and "url(http" not in page


def test_sections_for_absent_analyses_are_omitted(results):
    for name in ["attn", "lowrank", "paths", "resampled", "patched"]:
        del results["analyses"][name]
    del results["expectations"]
    del results["circuits"]
    html = report_html(results, "", diagram_svg=None)
    assert re.findall(r'<section id="([^"]+)">', html) == [
        "analysis-dla", "analysis-faith", "model", "settings"]
    assert len(re.findall(r"<svg", html)) == 1


def test_a_malformed_analysis_is_reported_in_place(results):
    results["analyses"]["dla"]["values"] = {"L0.H0": "lots"}
    results["analyses"]["patched"]["values"] = "not an object"
    html = report_html(results, SPEC_SOURCE, diagram_svg=None)
    assert "cannot show this analysis: &#x27;L0.H0&#x27; has a non-numeric value" in \
        section(html, "analysis-dla")
    assert "cannot show this analysis: its &#x27;values&#x27; must be an object" in \
        section(html, "analysis-patched")
    assert "<svg" in section(html, "analysis-resampled")


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(expectations="all good"), "'expectations' must be a list of objects"),
    (lambda r: r["circuits"]["output"].update(nodes=["L1.H2"]),
     "circuit 'output' must have 'nodes' as a list of objects"),
    (lambda r: r["circuits"].update(movers=[]), "circuit 'movers' must have 'nodes'"),
])
def test_misplaced_structure_is_a_clear_error(results, change, message):
    change(results)
    with pytest.raises(RenderError, match=message):
        report_html(results, "", diagram_svg=None)
    with pytest.raises(RenderError, match="must be a JSON object"):
        report_html([], "", diagram_svg=None)


def test_unknown_analysis_kind_is_shown_as_data(results):
    results["analyses"]["probe"] = {"kind": "probe", "dataset": "clean", "values": {"L0.H1": 1}}
    body = section(report_html(results, "", diagram_svg=None), "analysis-probe")
    assert "&quot;L0.H1&quot;: 1" in body


def test_null_values_are_left_blank(results):
    results["analyses"]["patched"]["values"]["L1.H1"] = None
    results["analyses"]["dla"]["values"]["L0.H0"] = None
    html = report_html(results, "", diagram_svg=None)
    assert "cannot show" not in html
    assert "L0.H0" not in svg_texts(section(html, "analysis-dla"))
    cells = [t for t in svg_texts(section(html, "analysis-patched"))
             if re.fullmatch(r"[+-]\d\.\d\d", t)]
    assert len(cells) == len(results["analyses"]["patched"]["values"]) - 1


def test_written_report_is_deterministic_and_self_contained(tmp_path, fixture_results):
    diagram = inline_svg(circuit_dot(fixture_results)) if shutil.which("dot") else None
    first = write_report(fixture_results, SPEC_SOURCE, tmp_path / "a" / "report.html",
                         diagram_svg=diagram)
    second = write_report(fixture_results, SPEC_SOURCE, tmp_path / "b" / "report.html",
                          diagram_svg=diagram)
    assert first == tmp_path / "a" / "report.html"
    assert first.read_bytes() == second.read_bytes()
    assert first.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_curve_is_plotted_against_its_random_baseline_with_the_target(results):
    results["analyses"]["fc"] = {
        "kind": "curve", "dataset": "clean", "metric": "ld", "line": 9, "level": "nodes", "ranked_by": "patched",
        "ranked": 10, "sizes": [0, 2, 5, 8, 10], "fractions": [0.0, 0.2, 0.5, 0.8, 1.0], "target": 0.9,
        "faithfulness": [0.0, 0.4, 0.95, 0.97, 1.0], "stderr": [0.0, 0.05, 0.02, 0.01, 0.0],
        "cpr": 0.7475, "cmd": 0.2525, "size_at_target": 5,
        "random": {"faithfulness": [0.0, 0.1, 0.3, 0.6, 1.0], "stderr": [0.0, 0.02, 0.05, 0.08, 0.0],
                   "cpr": 0.4, "cpr_stderr": 0.03, "cmd": 0.6, "cmd_stderr": 0.03, "size_at_target": 10,
                   "orders": 5, "seed": 0},
        "clean": 3.0, "all_ablated": 0.5, "n": 16}
    body = section(report_html(results, SPEC_SOURCE, diagram_svg=None), "analysis-fc")
    texts = svg_texts(body)
    assert "fc: faithfulness by circuit size" in texts
    assert "by |patched| (CPR 0.75)" in texts and "random, 5 orders (CPR 0.40)" in texts
    assert "target 0.9" in texts
    assert "5" in texts and "10" in texts  # the sizes at the target, marked on each line
    rows = re.findall(r"<tr>(.*?)</tr>", body)
    assert '<td>ranking by |patched|</td><td><span class="num">0.7475</span></td>' in rows[1]
    assert '<td><span class="num">5</span></td>' in rows[1]
    assert '<span class="num">0.4</span> ± <span class="num">0.03</span>' in rows[2]


def test_a_grown_circuit_shows_what_its_growth_measured(results):
    results["circuits"]["output"]["faithfulness"] = {"target": 0.9, "size": 5, "value": 0.97, "reached": True,
                                                     "level": "nodes", "measured": []}
    body = section(report_html(results, SPEC_SOURCE, diagram_svg=None), "circuit")
    assert ('<p>Grown along the ranking of nodes to <span class="num">5</span> kept: faithfulness '
            '<span class="num">0.97</span>, reaching the target <span class="num">0.9</span>.</p>') in body


@pytest.mark.parametrize("field, value", [
    ("cpr", "high"), ("ranked", "ten"), ("size_at_target", [5]), ("fractions", ["a", "b"]),
    ("faithfulness", [0.0, "x"]), ("random", {"cpr": {}, "orders": "<b>", "faithfulness": [None, None]}),
])
def test_a_malformed_curve_is_shown_or_reported_in_place(results, field, value):
    results["analyses"]["fc"] = {"kind": "curve", "ranked_by": "p", "ranked": 2, "sizes": [0, 2],
                                 "fractions": [0.0, 1.0], "faithfulness": [0.0, 1.0], "target": 0.9,
                                 "cpr": 0.5, "cmd": 0.5, "size_at_target": 2, "random": {}}
    results["analyses"]["fc"][field] = value
    body = section(report_html(results, SPEC_SOURCE, diagram_svg=None), "analysis-fc")
    assert "<svg" in body or "cannot show this analysis" in body
    assert "<b>" not in body

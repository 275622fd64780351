"""The report's explorer data, sortable node tables and in-page links, read from the
HTML (the browser test drives them): data round-trips through its JSON script
element, hostile tokens cannot end it, every link has exactly one target."""
from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
from circ.runtime.render.diagram import circuit_dot
from circ.runtime.render.graphviz import inline_svg
from circ.runtime.render.report import report_html

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "mcq_2l4h.json"
HOSTILE = '</script><script>alert("x")</script>&amp;'


def with_explorer(results: dict) -> dict:
    """The fixture with an explorer as the attention kernel writes it: two prompts,
    every query row, row q of a uniform pattern over keys 0..q."""
    results = copy.deepcopy(results)
    attention = results["analyses"]["attn"]
    tokens = attention["patterns"]["L1.H2"]["tokens"]
    examples = []
    for prompt in (tokens, tokens[:5] + [HOSTILE]):
        rows = list(range(len(prompt)))
        examples.append({"tokens": prompt, "rows": rows, "query": [len(prompt) - 1], "patterns": {
            head: [[round(1 / (q + 1), 3)] * (q + 1) for q in rows] for head in ("L1.H2", "L1.H0")}})
    attention["explorer"] = {"prompts": 2, "of": 200, "explore": 2, "rows": "all", "decimals": 3,
                             "heads": ["L1.H2", "L1.H0"], "examples": examples}
    return results


@pytest.fixture(scope="module")
def results():
    return with_explorer(json.loads(FIXTURE.read_text()))


def explorer_data(html: str, name: str = "attn") -> dict:
    match = re.search(rf'<script type="application/json" id="explorer-data-{name}">(.*?)</script>',
                      html, flags=re.S)
    assert match
    return json.loads(match.group(1))


def test_explorer_data_round_trips_and_no_token_ends_its_script(results):
    html = report_html(results, "", diagram_svg=None)
    data = explorer_data(html)
    explorer = results["analyses"]["attn"]["explorer"]
    assert data["heads"] == explorer["heads"] and data["scale"] == 1000
    assert [e["tokens"] for e in data["examples"]] == [e["tokens"] for e in explorer["examples"]]
    for shown, kept in zip(data["examples"], explorer["examples"]):
        assert (shown["rows"], shown["query"]) == (kept["rows"], kept["query"])
        for head in explorer["heads"]:  # weights in thousandths: exact integers
            assert [[w / 1000 for w in row] for row in shown["patterns"][head]] == kept["patterns"][head]
    assert data["examples"][1]["tokens"][-1] == HOSTILE
    assert HOSTILE not in html and "<script>alert" not in html
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script type="application/json" id="explorer-data-attn">', "<script>"]
    assert "first 2 of 200 prompts (<code>explore=2</code>), for 2 of 2 heads, rows at every " \
           "query position" in html


@pytest.mark.parametrize("change, message", [
    (lambda e: e.update(examples="all"), "must be an object with &#x27;heads&#x27; and &#x27;examples&#x27;"),
    (lambda e: e["examples"][0]["patterns"]["L1.H2"].pop(), "the pattern of &#x27;L1.H2&#x27; must hold"),
    (lambda e: e["examples"][1]["patterns"]["L1.H0"][2].append(0.5), "the pattern of &#x27;L1.H0&#x27;"),
    (lambda e: e["examples"][1]["rows"].__setitem__(0, -1), "not a natural number: -1"),
    (lambda e: e["examples"][1]["patterns"]["L1.H0"][0].__setitem__(0, "1"), "&#x27;L1.H0&#x27; must hold"),
    (lambda e: e.update(decimals=True), "&#x27;decimals&#x27; must be a whole number"),
])
def test_a_malformed_explorer_is_reported_in_its_section(results, change, message):
    broken = copy.deepcopy(results)
    change(broken["analyses"]["attn"]["explorer"])
    html = report_html(broken, "", diagram_svg=None)
    attention = re.search(r'<section id="analysis-attn">(.*?)</section>', html, flags=re.S).group(1)
    assert "cannot show this analysis" in attention and message in attention
    assert 'id="explorer-data-attn"' not in html and "<svg" in html


def test_results_without_an_explorer_show_none(results):
    older = copy.deepcopy(results)
    del older["analyses"]["attn"]["explorer"]
    html = report_html(older, "", diagram_svg=None)
    assert 'class="explorer"' not in html and "application/json" not in html


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_each_node_row_links_to_its_diagram_node_and_heatmap_cells(results):
    html = report_html(results, "", diagram_svg=inline_svg(circuit_dot(results)))
    ids = re.findall(r'\bid="([^"]+)"', html)
    circuit = results["circuits"]["output"]
    patch_analyses = [n for n, a in results["analyses"].items() if a["kind"] == "patch"]
    assert patch_analyses == ["patched", "resampled"]
    for node in circuit["nodes"]:
        anchor = node["id"].replace(".", "-")
        row = re.search(rf'<tr id="node-output-{anchor}">(.*?)</tr>', html).group(1)
        targets = re.findall(r'<a class="jump" href="#([^"]+)">', row)
        assert targets == [f"diagram-{anchor}"] + [f"cell-{name}-{anchor}" for name in patch_analyses]
        for target in targets:
            assert ids.count(target) == 1
        diagram_node = re.search(rf'<g id="diagram-{anchor}" class="node">\s*<title>([^<]*)</title>', html)
        assert diagram_node.group(1) == node["id"]
    for movers in results["circuits"]["movers"]["nodes"]:
        assert f'<tr id="node-movers-{movers["id"].replace(".", "-")}">' in html
    assert len(re.findall(r'<table class="sortable"', html)) == len(results["circuits"])


def test_scores_carry_their_exact_value_for_sorting(results):
    html = report_html(results, "", diagram_svg=None)
    for node in results["circuits"]["output"]["nodes"]:
        row = re.search(rf'<tr id="node-output-{node["id"].replace(".", "-")}">(.*?)</tr>', html).group(1)
        assert float(re.search(r'data-sort="([^"]+)"', row).group(1)) == node["score"]

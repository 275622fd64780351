"""The report's per-prompt views: the quantiles drawn equal numpy's on the per-prompt
values, the prompts listed as worst are those with the lowest summed value of the
main nodes, their texts are escaped, and the page stays bounded however many prompts
and nodes there are."""
from __future__ import annotations

import io
import json
import random
import re
from html import unescape

import numpy
import pytest
from circ.runtime.render import prompt_view
from circ.runtime.render.report import report_html
from matplotlib.axes import Axes


def _results(values: dict, members=()) -> dict:
    circuits = {"c": {"nodes": [{"id": m, "kind": "head"} for m in members], "edges": []}} if members else {}
    return {"model": {"n_layers": 3, "n_heads": 4}, "expectations": [], "circuits": circuits,
            "analyses": {"dla": {"kind": "attribute", "dataset": "clean", "metric": "ld", "values": values,
                                 "total": sum(values.values())}}}


def _lists(n: int, nodes: list[str], seed: int = 0) -> dict:
    rng = random.Random(seed)
    return {node: [rng.gauss(index - 2, 1 + index) for _ in range(n)] for index, node in enumerate(nodes)}


def _means(lists: dict) -> dict:
    return {node: float(numpy.mean(values)) for node, values in lists.items()}


@pytest.fixture
def boxes(monkeypatch):
    drawn = []
    original = Axes.bxp

    def record(self, stats, *args, **kwargs):
        drawn.append([dict(s) for s in stats])
        return original(self, stats, *args, **kwargs)

    monkeypatch.setattr(Axes, "bxp", record)
    return drawn


def _table(page: str, kind: str, name: str) -> str:
    return re.search(rf'<table class="{kind}" id="{kind}-{name}">(.*?)</table>', page, re.S).group(1)


def test_drawn_and_listed_quantiles_equal_numpys(boxes):
    nodes = ["L0.H0", "L0.H1", "L1.H2", "L2.MLP"]
    lists = _lists(37, nodes)
    page = report_html(_results(_means(lists)), "", diagram_svg=None, per_prompt={"dla": lists})
    (stats,), table = boxes, _table(page, "quantiles", "dla")
    assert len(stats) == len(nodes)
    for box in stats:
        node = box["label"]
        q0, q1, q2, q3, q4 = numpy.percentile(lists[node], [0, 25, 50, 75, 100])
        assert (box["whislo"], box["q1"], box["med"], box["q3"], box["whishi"]) == pytest.approx((q0, q1, q2, q3, q4))
        row = re.search(rf'<tr data-node="{re.escape(node)}">(.*?)</tr>', table).group(1)
        listed = [float(v) for v in re.findall(r'data-(?:min|q1|median|q3|max)="([^"]+)"', row)]
        assert listed == pytest.approx([q0, q1, q2, q3, q4], rel=1e-12)


def test_worst_prompts_are_the_lowest_sums_of_the_main_nodes():
    nodes = ["L0.H0", "L0.H1", "L1.H2", "L2.MLP"]
    lists = _lists(50, nodes, seed=1)
    texts = [f"prompt number {i}" for i in range(50)]
    page = report_html(_results(_means(lists)), "", diagram_svg=None, per_prompt={"dla": lists},
                       prompts={"clean": texts})
    sums = numpy.sum([lists[node] for node in nodes], axis=0)
    listed = [int(i) for i in re.findall(r'data-prompt="(\d+)"', _table(page, "worst", "dla"))]
    assert listed == list(numpy.argsort(sums)[:prompt_view.WORST_PROMPTS])
    assert listed[0] == int(numpy.argmin(sums))
    assert f"prompt number {listed[0]}<" in page


def test_circuit_members_are_the_main_nodes_when_the_analysis_has_them():
    nodes = ["L0.H0", "L0.H1", "L1.H2", "L2.MLP", "BIAS"]
    lists = _lists(20, nodes, seed=2)
    page = report_html(_results(_means(lists), members=["L0.H0", "L1.H2"]), "", diagram_svg=None,
                       per_prompt={"dla": lists})
    assert re.findall(r'<tr data-node="([^"]+)"', page) == sorted(
        ["L0.H0", "L1.H2"], key=lambda n: -abs(numpy.mean(lists[n])))
    sums = numpy.add(lists["L0.H0"], lists["L1.H2"])
    assert re.findall(r'data-prompt="(\d+)"', page)[0] == str(int(numpy.argmin(sums)))
    assert "the circuit&#x27;s nodes help least" in page


def test_without_members_the_strongest_nodes_but_never_bias_are_shown():
    nodes = [f"L{layer}.H{head}" for layer in range(3) for head in range(4)] + ["BIAS"]
    lists = _lists(10, nodes, seed=3)
    lists["BIAS"] = [100.0] * 10
    page = report_html(_results(_means(lists)), "", diagram_svg=None, per_prompt={"dla": lists})
    shown = re.findall(r'<tr data-node="([^"]+)"', page)
    strongest = sorted((n for n in nodes if n != "BIAS"), key=lambda n: -abs(numpy.mean(lists[n])))
    assert shown == strongest[:prompt_view.TOP_NODES]


def test_prompt_text_is_escaped_and_cut():
    lists = {"L0.H0": [0.0, -1.0, 2.0]}
    hostile = "<script>alert(1)</script>" + "x" * 1000
    page = report_html(_results({"L0.H0": 0.33}), "", diagram_svg=None, per_prompt={"dla": lists},
                       prompts={"clean": ["fine", hostile, "fine too"]})
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "x" * (prompt_view.TEXT_CHARS + 1) not in page


def test_size_stays_bounded_with_many_prompts_and_nodes():
    nodes = [f"L{layer}.H{head}" for layer in range(10) for head in range(10)]
    lists = _lists(20000, nodes, seed=4)
    texts = [f"text {i} " + "y" * 200 for i in range(20000)]
    page = report_html(_results(_means(lists)), "", diagram_svg=None, per_prompt={"dla": lists},
                       prompts={"clean": texts})
    without = report_html(_results(_means(lists)), "", diagram_svg=None)
    assert len(page) - len(without) < 400_000
    assert len(re.findall(r"<pre>text \d+ y", page)) == prompt_view.WORST_PROMPTS


@pytest.mark.parametrize("lists", [{"L0.H0": [1.0, "x"]}, {"L0.H0": [1.0, float("nan")]},
                                   {"L0.H0": [1.0], "L0.H1": [1.0, 2.0]}, ["L0.H0"]])
def test_malformed_per_prompt_values_show_a_reason_and_the_rest_renders(lists):
    page = report_html(_results({"L0.H0": 1.0}), "", diagram_svg=None, per_prompt={"dla": lists})
    assert "cannot show the per-prompt values" in page
    assert "dla: contribution to ld" in page


def test_without_prompt_texts_the_worst_prompts_are_listed_by_index():
    lists = {"L0.H0": [0.5, -2.0, 1.0]}
    page = report_html(_results({"L0.H0": -0.17}), "", diagram_svg=None, per_prompt={"dla": lists})
    assert re.findall(r'data-prompt="(\d+)"', page) == ["1", "0", "2"]
    assert "texts were not kept" in page


def test_circ_run_per_prompt_report_matches_per_prompt_json(tiny_dir, tmp_path):
    from circ.cli.run import run_spec
    from conftest import mcq_examples, write_jsonl

    examples = mcq_examples(12, ragged=True)
    write_jsonl(tmp_path / "data.jsonl", examples)
    (tmp_path / "s.circ").write_text(
        f'model hf("{tiny_dir}")\ndata clean = jsonl("data.jsonl")\n'
        "metric ld = logit_diff(answer, wrong) at last\n"
        "analysis dla = attribute(heads + mlps, on=clean, metric=ld)\n"
        "circuit c = top(dla, 2)\n")
    out = io.StringIO()
    code = run_spec(str(tmp_path / "s.circ"), str(tmp_path / "out"), model=None, device=None, batch_size=5,
                    seed=0, trust_remote_code=False, progress=False, per_prompt=True, stdout=out, stderr=out)
    assert code == 0, out.getvalue()
    lists = json.loads((tmp_path / "out" / "per_prompt.json").read_text())["dla"]
    members = [n["id"] for n in json.loads((tmp_path / "out" / "results.json").read_text())["circuit"]["nodes"]]
    page = (tmp_path / "out" / "report.html").read_text()
    for node in members:
        row = re.search(rf'<tr data-node="{re.escape(node)}">(.*?)</tr>', page).group(1)
        listed = [float(v) for v in re.findall(r'data-(?:min|q1|median|q3|max)="([^"]+)"', row)]
        assert listed == pytest.approx(list(numpy.percentile(lists[node], [0, 25, 50, 75, 100])), rel=1e-9)
    worst = int(numpy.argmin(numpy.sum([lists[node] for node in members], axis=0)))
    first = re.search(r'<tr data-prompt="(\d+)">.*?<pre>(.*?)</pre>', page, re.S)
    assert int(first.group(1)) == worst
    assert unescape(first.group(2)) == examples[worst].prompt

    code = run_spec(str(tmp_path / "s.circ"), str(tmp_path / "plain"), model=None, device=None, batch_size=5,
                    seed=0, trust_remote_code=False, progress=False, stdout=out, stderr=out)
    assert code == 0 and "data-prompt=" not in (tmp_path / "plain" / "report.html").read_text()


def test_an_edges_analysis_shows_the_circuits_kept_edges():
    lists = _lists(20, ["L0.H1->L1.H0.q", "L1.H0->LOGITS", "EMBED->L0.MLP", "L0.MLP->LOGITS"])
    lists["EMBED->L0.MLP"] = [100.0 * v for v in lists["EMBED->L0.MLP"]]  # the strongest, but not kept
    results = _results({key: 0.0 for key in lists})
    results["analyses"]["e"] = dict(results["analyses"].pop("dla"), kind="edges")
    results["circuits"] = {"found": {"nodes": [{"id": "L0.H1"}, {"id": "L1.H0"}], "granularity": "edge",
                                     "edges": [{"src": "L0.H1", "dst": "L1.H0", "part": "q", "weight": 1.0},
                                               {"src": "L1.H0", "dst": "LOGITS", "part": None, "weight": 1.0}]}}
    page = report_html(results, "", diagram_svg=None, per_prompt={"e": lists})
    shown = re.findall(r'<tr data-node="([^"]*)"', _table(page, "quantiles", "e"))
    assert sorted(unescape(node) for node in shown) == ["L0.H1->L1.H0.q", "L1.H0->LOGITS"]
    assert "help least" in page and "the circuit&#x27;s nodes help least" in page

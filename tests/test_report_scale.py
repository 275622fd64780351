"""The report at model scale: many heads' attention patterns drawn as one image per
chart (not a strip and a text label per head), split by layer range, and a page that
stays small."""
from __future__ import annotations

import copy
import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from circ.runtime.render import charts
from circ.runtime.render.report import report_html

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "mcq_2l4h.json"
SVG = "{http://www.w3.org/2000/svg}"
TOKENS = ["<bos>"] + [f" w{i}" for i in range(40)]


def scaled(n_layers: int, n_heads: int) -> dict:
    """The fixture's results with patching and attention over every head of a bigger model."""
    rng = random.Random(0)
    results = copy.deepcopy(json.loads(FIXTURE.read_text()))
    heads = [f"L{layer}.H{head}" for layer in range(n_layers) for head in range(n_heads)]
    nodes = heads + [f"L{layer}.MLP" for layer in range(n_layers)]
    for name in ("dla", "patched", "resampled"):
        results["analyses"][name]["values"] = {n: rng.gauss(0, 0.3) for n in nodes}
    results["analyses"]["attn"]["values"] = {h: {"bos": rng.random(), "labels": rng.random()} for h in heads}
    results["analyses"]["attn"]["patterns"] = {
        h: {"tokens": TOKENS, "weights": [rng.random() / len(TOKENS) for _ in TOKENS]} for h in heads}
    results["model"].update(n_layers=n_layers, n_heads=n_heads)
    return results


def attention_svgs(page: str) -> list[str]:
    body = re.search(r'<section id="analysis-attn">(.*?)</section>', page, flags=re.S).group(1)
    return re.findall(r"<svg.*?</svg>", body, flags=re.S)


def texts(svg: str) -> list[str]:
    return ["".join(t.itertext()).strip() for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_270_heads_make_one_attention_image_and_a_small_page():
    page = report_html(scaled(30, 9), "", diagram_svg=None)
    assert len(page.encode("utf-8")) < 1_000_000
    (svg,) = attention_svgs(page)
    assert len(ET.fromstring(svg).findall(f".//{SVG}image")) == 2  # the cells and the colour bar, as images
    labels = texts(svg)
    assert [t for t in labels if re.fullmatch(r"L\d+", t)] == [f"L{layer}" for layer in range(30)]
    assert not any(re.fullmatch(r"L\d+\.H\d+", t) for t in labels)  # no label per head
    assert [t for t in labels if t.startswith("w") or t.startswith("\u2423w")] == [
        t.replace(" ", "\u2423") for t in TOKENS[1:]]
    # every head's named-position scores stay in the table
    assert page.count("<td>L29.H8</td>") == 1


def test_attention_grids_split_between_layers(monkeypatch):
    monkeypatch.setattr(charts, "MAX_GRID_ROWS", 20)
    patterns = scaled(7, 9)["analyses"]["attn"]["patterns"]
    svgs = charts.attention_grids(patterns, title="attn")
    # 9 heads a layer: a chart closes at the first layer boundary after 20 rows
    assert len(svgs) == 3
    firsts = [[t for t in texts(svg) if re.fullmatch(r"L\d+\.H\d+|L\d+", t)] for svg in svgs]
    assert [labels[:1] for labels in firsts] == [["L0.H0"], ["L3.H0"], ["L6.H0"]]
    assert [t for t in texts(svgs[0]) if t.startswith("attn")] == ["attn, layers 0\u20132"]


@pytest.mark.parametrize("n_heads", [charts.MAX_STRIPS, charts.MAX_STRIPS + 1])
def test_few_heads_keep_their_strips(n_heads):
    results = scaled(1, n_heads)
    (svg,) = attention_svgs(report_html(results, "", diagram_svg=None))
    strips = len(ET.fromstring(svg).findall(f".//{SVG}image"))
    assert strips == (n_heads if n_heads <= charts.MAX_STRIPS else 2)  # a grid: cells and colour bar

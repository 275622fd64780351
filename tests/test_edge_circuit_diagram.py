"""Diagrams of edge circuits (granularity "edge": discovered or imported): only the
kept edges are drawn, each edge into a head enters at its q, k or v port with that
part's line style and label, colour by sign (blue helps), width by |weight|, no edge
added into LOGITS; and Graphviz draws the result."""
from __future__ import annotations

import copy
import json
import re
import shutil

import pytest
from circ.compiler.api import compile_file
from circ.runtime.render.diagram import HELPS, HURTS, NEUTRAL, circuit_dot, hypothesis_dot
from circ.runtime.render.graphviz import inline_svg

KEPT = [
    {"src": "EMBED", "dst": "L0.H1", "part": "q", "weight": 0.5},
    {"src": "L0.H1", "dst": "L1.H0", "part": "k", "weight": -0.2},
    {"src": "L0.H1", "dst": "L1.H0", "part": "v", "weight": 0.001},
    {"src": "L0.MLP", "dst": "L1.MLP", "part": None, "weight": 0.3},
    {"src": "L1.H0", "dst": "LOGITS", "part": None, "weight": 1.0},
]


def results(granularity: str = "edge", edges=KEPT) -> dict:
    scores = {}
    for edge in edges:
        for end in (edge["src"], edge["dst"]):
            if end != "LOGITS":
                scores[end] = scores.get(end, 0.0) + (edge["weight"] or 0.0)
    nodes = [{"id": node_id, "score": score, "category": None} for node_id, score in scores.items()]
    return {"spec": {"name": "found"}, "model": {"name": "demo", "n_layers": 2},
            "circuits": {"found": {"nodes": nodes, "edges": copy.deepcopy(edges), "granularity": granularity}}}


def edges_drawn(dot: str) -> dict[tuple, dict]:
    """{(src, dst, part from the label): attributes} of every edge statement."""
    drawn = {}
    for src, dst, body in re.findall(r'^  "([^"]+)" -> "([^"]+)" \[(.*)\];$', dot, flags=re.M):
        if "style=invis" in body:
            continue
        attributes = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s]+)', body))
        label = attributes["label"].strip('"').split()
        part = label[0] if label and label[0] in "qkv" else None
        drawn[(src, dst, part)] = attributes
    return drawn


def with_score(body: dict, node_id: str, score: float) -> dict:
    for node in body["circuits"]["found"]["nodes"]:
        if node["id"] == node_id:
            node["score"] = score
    return body


def test_only_the_kept_edges_are_drawn():
    drawn = edges_drawn(circuit_dot(with_score(results(), "L0.H1", 2.0)))
    assert set(drawn) == {(e["src"], e["dst"], e["part"]) for e in KEPT}
    # a node circuit of the same nodes and edges draws more and fewer: an edge into
    # LOGITS from L0.H1 (its score not carried by its edges) and not the tiny v edge
    as_nodes = edges_drawn(circuit_dot(with_score(results("node"), "L0.H1", 2.0)))
    assert ("L0.H1", "LOGITS", None) in as_nodes and ("L0.H1", "L1.H0", "v") not in as_nodes


def test_q_k_v_marked_by_port_style_and_label():
    drawn = edges_drawn(circuit_dot(results()))
    q, k, v = (drawn[key] for key in [("EMBED", "L0.H1", "q"), ("L0.H1", "L1.H0", "k"), ("L0.H1", "L1.H0", "v")])
    assert (q["headport"], q["style"], q["label"]) == ("sw", "dashed", '"q +0.50"')
    assert (k["headport"], k["style"], k["label"]) == ("s", "dotted", '"k -0.20"')
    assert (v["headport"], v["style"]) == ("se", "solid") and v["label"].startswith('"v ')
    assert "headport" not in drawn[("L0.MLP", "L1.MLP", None)]
    assert "headport" not in drawn[("L1.H0", "LOGITS", None)]
    dot = circuit_dot(results())
    assert "into a head: q dashed, enters lower left; k dotted, below; v solid, lower right" in dot
    assert "only the circuit&#x27;s kept edges are drawn" in dot or "only the circuit's kept edges are drawn" in dot


def test_colour_by_sign_and_width_by_weight():
    drawn = edges_drawn(circuit_dot(results()))
    biggest = max(abs(e["weight"]) for e in KEPT)
    for edge in KEPT:
        attributes = drawn[(edge["src"], edge["dst"], edge["part"])]
        assert attributes["color"] == f'"{HELPS if edge["weight"] > 0 else HURTS}"'
        assert float(attributes["penwidth"]) == pytest.approx(1 + 3 * abs(edge["weight"]) / biggest, abs=0.005)


def test_logits_is_a_node_and_titles_count_the_edges():
    dot = circuit_dot(results())
    assert re.search(r'"LOGITS" \[label="LOGITS"', dot)
    assert "circuit found (5 edges)" in dot


def test_imported_edges_without_weight_are_grey():
    imported = [{**edge, "weight": None} for edge in KEPT]
    dot = circuit_dot(results(edges=imported))
    drawn = edges_drawn(dot)
    assert set(drawn) == {(e["src"], e["dst"], e["part"]) for e in KEPT}
    assert {a["color"] for a in drawn.values()} == {f'"{NEUTRAL}"'}
    assert {a["penwidth"] for a in drawn.values()} == {"1.00"}
    assert "an edge without a weight (imported)" in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_draws_the_edge_circuit():
    svg = inline_svg(circuit_dot(results()))
    assert svg.lstrip().startswith("<svg")
    titles = re.findall(r'<g id="edge\d+" class="edge">\s*<title>([^<]*)</title>', svg)
    assert sorted(t.replace("&#45;&gt;", "->") for t in titles) == [  # Graphviz names each edge's port
        "EMBED->L0.H1:sw", "L0.H1->L1.H0:s", "L0.H1->L1.H0:se", "L0.MLP->L1.MLP", "L1.H0->LOGITS"]
    assert svg.count('stroke-dasharray="5,2"') >= 1 and svg.count('stroke-dasharray="1,5"') >= 1


def test_an_imported_circuit_is_drawn_by_its_edges_before_the_run(tmp_path):
    graph = {"edges": {"input->a0.h1<q>": {"score": 0.5, "in_graph": True},
                       "a0.h1->a1.h0<k>": {"score": 0.2, "in_graph": True},
                       "a1.h0->logits": {"score": 1.0, "in_graph": True},
                       "a0.h2->a1.h0<v>": {"score": 9.0, "in_graph": False}}}
    (tmp_path / "graph.json").write_text(json.dumps(graph))
    (tmp_path / "x.circ").write_text('spec "x"\nmodel demo\ncircuit x = import("graph.json")\n')
    dot = hypothesis_dot(compile_file(tmp_path / "x.circ"))
    drawn = edges_drawn(dot)
    assert set(drawn) == {("EMBED", "L0.H1", "q"), ("L0.H1", "L1.H0", "k"), ("L1.H0", "LOGITS", None)}
    assert drawn[("EMBED", "L0.H1", "q")]["headport"] == "sw" and drawn[("L0.H1", "L1.H0", "k")]["headport"] == "s"
    assert "3 edges (imported)" in dot

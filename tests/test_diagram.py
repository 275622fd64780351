"""Circuit diagrams as DOT text: golden files, determinism, layering, emphasis, escaping.

Set CIRC_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change
(then look at the rendered diagrams before committing them).
"""
from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from circ.compiler import ir
from circ.runtime.render.diagram import (
    CATEGORY_COLOURS,
    HELPS,
    HURTS,
    RenderError,
    circuit_dot,
    hypothesis_dot,
    parse_node_id,
    rule_text,
    select_text,
)

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "results" / "mcq_2l4h.json"
GOLDEN = HERE / "golden"
SHAPE = ir.Shape(n_layers=2, n_heads=4, d_model=128, d_head=32, d_vocab=300, n_ctx=64)

CORRECT_LETTER = ir.And((ir.Compare(ir.Attends("answer_label"), ">", 0.5),
                         ir.Compare(ir.Field("dla"), ">", 0.0)))
UNIFORM = ir.Compare(ir.Spread("labels"), ">", 0.8)


@pytest.fixture
def results():
    return json.loads(FIXTURE.read_text())


def literal_spec() -> ir.Spec:
    nodes = ir.NodeList((ir.Node(0, "embed"), ir.Node(0, "head", head=3),
                         ir.Node(1, "head", head=2), ir.Node(1, "mlp"),
                         ir.Node(1, "head_input", head=0, part="q")))
    return ir.Spec(name="planted", path="specs/planted.circ", model=ir.Model(), shape=SHAPE,
                   circuits=(ir.Circuit("planted", nodes),),
                   categories=(ir.Category("planted", "correct_letter", CORRECT_LETTER),))


def select_spec() -> ir.Spec:
    chosen = ir.Select("patched", top=10, where=ir.Compare(ir.Abs(ir.Field("effect")), ">", 0.05))
    return ir.Spec(name="mcq-correct-letter", path="specs/mcq.circ", model=ir.Model(),
                   shape=SHAPE, circuits=(ir.Circuit("output", chosen),),
                   categories=(ir.Category("output", "correct_letter", CORRECT_LETTER),
                               ir.Category("output", "uniform", UNIFORM)))


def check_golden(name: str, text: str):
    path = GOLDEN / name
    if os.environ.get("CIRC_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file"


def node_attributes(dot: str, node_id: str) -> dict:
    match = re.search(rf'"{re.escape(node_id)}" \[(.*?)\];', dot)
    assert match, f"{node_id} is not drawn"
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s]+)', match.group(1)))


def edge_lines(dot: str) -> dict:
    return {(a, b): line for a, b, line in
            re.findall(r'^  "([^"]+)" -> "([^"]+)" \[(.*)\];$', dot, flags=re.M)}


def rank_groups(dot: str) -> list[list[str]]:
    """The node ids of each `rank=same` group, in the order the groups are written."""
    groups = re.findall(r"\{ rank=same; (.*) \}", dot)
    return [re.findall(r'(?:^|\]; )"([^"]+)" \[', g) for g in groups]


# --------------------------------------------------------------------------- golden
def test_output_circuit_matches_golden(results):
    check_golden("circuit_output.dot", circuit_dot(results))


def test_circuit_without_edges_matches_golden(results):
    check_golden("circuit_movers.dot", circuit_dot(results, "movers"))


def test_hypothesis_diagrams_match_golden():
    check_golden("hypothesis_literal.dot", hypothesis_dot(literal_spec()))
    check_golden("hypothesis_select.dot", hypothesis_dot(select_spec()))


def test_same_results_in_any_order_give_identical_text(results):
    shuffled = copy.deepcopy(results)
    rng = random.Random(7)
    for circuit in shuffled["circuits"].values():
        rng.shuffle(circuit["nodes"])
        rng.shuffle(circuit["edges"])
    shuffled["circuits"] = dict(reversed(list(shuffled["circuits"].items())))
    assert circuit_dot(shuffled, "output") == circuit_dot(results, "output")
    assert circuit_dot(shuffled, "movers") == circuit_dot(results, "movers")


# --------------------------------------------------------------------------- layout
def test_default_is_the_first_circuit_of_the_spec(results):
    assert circuit_dot(results) == circuit_dot(results, "output")
    results["circuit"]["name"] = "movers"
    assert circuit_dot(results) == circuit_dot(results, "movers")


def test_one_rank_per_layer_between_embed_and_logits(results):
    dot = circuit_dot(results)
    assert "rankdir=BT" in dot
    assert re.search(r'\{ rank=min; "EMBED" \[', dot)
    assert re.search(r'\{ rank=max; "LOGITS" \[', dot)
    groups = rank_groups(dot)
    assert len(groups) == results["model"]["n_layers"]
    drawn = {e["src"] for e in results["circuits"]["output"]["edges"]} | {
        n["id"] for n in results["circuits"]["output"]["nodes"]}
    for layer, group in enumerate(groups):
        assert group[0] == f"rank L{layer}"
        expected = sorted(i for i in drawn if i != "EMBED" and parse_node_id(i)[0] == layer)
        assert sorted(group[1:]) == expected


def test_emphasis_scales_with_score_and_colour_shows_sign(results):
    dot = circuit_dot(results)
    nodes = results["circuits"]["output"]["nodes"]
    biggest = max(abs(n["score"]) for n in nodes)
    for node in nodes:
        attributes = node_attributes(dot, node["id"])
        assert float(attributes["penwidth"]) == pytest.approx(
            1 + 4 * abs(node["score"]) / biggest, abs=0.006)
        assert attributes["color"] == f'"{HELPS if node["score"] > 0 else HURTS}"'
        assert f'{node["score"]:+.2f}' in attributes["label"]


def test_fill_by_category_with_a_legend(results):
    dot = circuit_dot(results)
    nodes = results["circuits"]["output"]["nodes"]
    categories = sorted({n["category"] for n in nodes if n["category"]})
    fills = {n["id"]: node_attributes(dot, n["id"])["fillcolor"].strip('"') for n in nodes}
    by_category = {}
    for node in nodes:
        by_category.setdefault(node["category"], set()).add(fills[node["id"]])
    assert all(len(colours) == 1 for colours in by_category.values())
    assert len({c for colours in by_category.values() for c in colours}) == len(by_category)
    for index, category in enumerate(categories):
        assert f'<TD BGCOLOR="{CATEGORY_COLOURS[index]}" WIDTH="12"></TD>' \
               f'<TD ALIGN="LEFT">{category}</TD>' in dot
        assert by_category[category] == {CATEGORY_COLOURS[index]}


def test_path_patching_edges_carry_their_part(results):
    dot = circuit_dot(results)
    edges = edge_lines(dot)
    styles = {"q": "dashed", "k": "dotted", "v": "solid", None: "solid"}
    for edge in results["circuits"]["output"]["edges"]:
        line = edges[(edge["src"], edge["dst"])]
        expected_label = " ".join(x for x in (edge["part"], f"{edge['weight']:+.2f}") if x)
        assert f'label="{expected_label}"' in line
        assert f"style={styles[edge['part']]}" in line
        assert f'color="{HELPS if edge["weight"] > 0 else HURTS}"' in line
    # L0.H1 and L0.MLP only send edges: drawn as context, not as circuit members
    assert "dashed" in node_attributes(dot, "L0.H1")["style"]
    assert "outside the circuit" in node_attributes(dot, "L0.MLP")["tooltip"]


def test_circuit_nodes_reach_logits_weighted_by_score(results):
    """In `output`, L0.H3 (score +0.27) sends an edge of weight 0.31 to L1.H2: its
    effect is drawn through that edge."""
    for name, drawn_through_edges in (("output", {"L0.H3"}), ("movers", set())):
        edges = edge_lines(circuit_dot(results, name))
        nodes = results["circuits"][name]["nodes"]
        into_logits = {src for (src, dst) in edges if dst == "LOGITS"}
        assert into_logits == {n["id"] for n in nodes} - drawn_through_edges
        for node in nodes:
            if node["id"] in into_logits:
                assert f'label="{node["score"]:+.2f}"' in edges[(node["id"], "LOGITS")]


def test_a_node_whose_edges_carry_half_its_score_does_not_reach_logits(results):
    score = next(n["score"] for n in results["circuits"]["output"]["nodes"] if n["id"] == "L0.H3")
    for share, reaches in ((0.49, True), (0.51, False)):
        results["circuits"]["output"]["edges"] = [
            {"src": "L0.H3", "dst": "L1.H2", "part": "q", "weight": share * score / 2},
            {"src": "L0.H3", "dst": "L1.MLP", "part": None, "weight": -share * score / 2}]
        assert (("L0.H3", "LOGITS") in edge_lines(circuit_dot(results))) == reaches


def test_edges_under_one_percent_of_the_largest_are_not_drawn(results):
    results["circuits"]["output"]["edges"] = [
        {"src": "L0.H1", "dst": "L1.H2", "part": "q", "weight": 2.0},
        {"src": "L0.H3", "dst": "L1.H2", "part": "v", "weight": -0.0199},
        {"src": "L0.H3", "dst": "L1.H2", "part": "k", "weight": 0.021}]
    dot = circuit_dot(results)
    edges = edge_lines(dot)
    assert 'label="q +2.00"' in edges[("L0.H1", "L1.H2")]
    assert 'label="k +0.02"' in edges[("L0.H3", "L1.H2")] and "v -0.02" not in dot
    assert "1 edge under 1% of the largest not drawn" in dot


def test_receiver_written_with_its_part_is_split(results):
    results["circuits"]["output"]["edges"] = [
        {"src": "L0.H1", "dst": "L1.H2.k", "part": None, "weight": 0.5}]
    line = edge_lines(circuit_dot(results))[("L0.H1", "L1.H2")]
    assert 'label="k +0.50"' in line and "style=dotted" in line


def test_text_from_results_is_escaped(results):
    results["spec"]["name"] = "<b>&amp</b>"
    results["circuits"]["output"]["nodes"][0]["category"] = 'say "hi" \\ bye'
    dot = circuit_dot(results)
    assert "&lt;b&gt;&amp;amp&lt;/b&gt;" in dot and "<b>&amp</b>" not in dot
    tooltip = node_attributes(dot, results["circuits"]["output"]["nodes"][0]["id"])["tooltip"]
    assert tooltip == '"L0.H3 | say \\"hi\\" \\\\ bye | score +0.27"'
    assert '<TD ALIGN="LEFT">say &quot;hi&quot; \\ bye</TD>' in dot


# --------------------------------------------------------------------------- hypotheses
def test_hypothesis_draws_literal_nodes_in_their_layers():
    dot = hypothesis_dot(literal_spec())
    groups = rank_groups(dot)
    assert groups == [["rank L0", "L0.H3"], ["rank L1", "L1.H2", "L1.H0.q", "L1.MLP"]]
    assert "(hypothesis)" in node_attributes(dot, "EMBED")["tooltip"]
    assert "category correct_letter: attends(answer_label) &gt; 0.5 and dla &gt; 0" in dot
    assert not edge_lines(dot)


def test_hypothesis_chosen_by_rule_is_a_note_naming_the_rule():
    dot = hypothesis_dot(select_spec())
    note = node_attributes(dot, "rule")
    assert note["shape"] == "note"
    assert note["label"] == ('"output = top(patched, 10) where abs(effect) > 0.05\\n'
                             '(chosen from the results when the spec runs)"')
    assert "category uniform: spread(labels) &gt; 0.8" in dot
    assert rank_groups(dot) == [["rank L0"], ["rank L1", "rule"]]


def test_unexpanded_node_set_is_a_note():
    spec = ir.Spec(name="gguf", path="g.circ", model=ir.Model(source="gguf"), shape=None,
                   circuits=(ir.Circuit("all", ir.NodeList((), unexpanded="heads + mlps")),))
    dot = hypothesis_dot(spec)
    assert node_attributes(dot, "rule")["label"] == (
        '"all = heads + mlps\\n(expanded once the model\'s shape is known)"')
    assert rank_groups(dot) == [["rank L0", "rule"]]


def test_rule_text_groups_mixed_connectives():
    rule = ir.Or((ir.And((UNIFORM, ir.Compare(ir.Field("dla"), "<", -0.25))),
                  ir.Not(ir.Compare(ir.Field("effect"), "==", 0))))
    assert rule_text(rule) == ("(spread(labels) > 0.8 and dla < -0.25) "
                               "or not (effect == 0)")
    assert select_text(ir.Select("output", best=True)) == "best(output)"
    assert select_text(ir.Select("output", best=True, category="correct_letter")) == \
        "best(output.correct_letter)"
    assert select_text(ir.Select("dla")) == "dla"


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("circuits"), "no circuit to draw"),
    (lambda r: r["circuits"]["output"]["nodes"].append({"id": "L1.X9", "score": 1}),
     "'L1.X9' is not a node id"),
    (lambda r: r["circuits"]["output"]["nodes"][0].update(score="big"), "non-numeric score"),
    (lambda r: r["circuits"]["output"]["edges"].append({"src": "L0.H0"}), "without 'src'"),
    (lambda r: r["circuits"]["output"]["edges"][0].update(part="z"), "part is not q, k, v"),
    (lambda r: r["circuits"]["output"]["edges"][0].update(weight=True), "non-numeric weight"),
    (lambda r: r["circuits"]["output"]["nodes"][0].update(category=3), "not a name"),
    (lambda r: r["circuits"].update(output=[]), "must be an object"),
])
def test_bad_results_give_a_clear_error(results, change, message):
    change(results)
    with pytest.raises(RenderError, match=message):
        circuit_dot(results, "output")


def test_unknown_circuit_names_the_known_ones(results):
    with pytest.raises(RenderError, match="no circuit 'nope' .*movers, output"):
        circuit_dot(results, "nope")
    with pytest.raises(RenderError, match="no circuit 'nope' .*planted"):
        hypothesis_dot(literal_spec(), "nope")


def test_spec_without_circuits_is_an_error():
    spec = ir.Spec(name="empty", path="e.circ", model=ir.Model(), shape=SHAPE)
    with pytest.raises(RenderError, match="defines no circuit"):
        hypothesis_dot(spec)


def test_diagram_and_graphviz_import_no_heavy_modules():
    code = ("import sys, circ.runtime.render.diagram, circ.runtime.render.graphviz; "
            "print(sorted(m for m in ('torch', 'transformer_lens', 'matplotlib') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"

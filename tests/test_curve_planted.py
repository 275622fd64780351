"""On the circuit planted by hand in tests/planted_model.py (L0.H2 then L1.H1), the
ranking by patching effects puts the planted heads first: its faithfulness curve
reaches 1 at two nodes, its area beats the random baseline's, and growing to a
faithfulness of 0.9 keeps exactly the planted heads."""
import pytest
from planted_model import PLANTED, run_planted_spec

SPEC = '''spec "planted-curve"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis p = patch(heads + mlps, source=corrupt, target=clean, metric=ld)
analysis fc = curve(p, on=clean, ablate=corrupt, metric=ld, points=10, random=8)
circuit found = discover(p, faithfulness=0.9)
analysis two = faithfulness(top(p, 2), on=clean, ablate=corrupt, metric=ld)
analysis one = faithfulness(top(p, 1), on=clean, ablate=corrupt, metric=ld)
analysis again = faithfulness(found, on=clean, ablate=corrupt, metric=ld)
expect fc.cpr > 0.8
expect fc.size_at(0.9) <= 2
expect faithfulness(found) > 0.9
'''


@pytest.fixture(scope="module")
def planted(tmp_path_factory, one_thread):
    return run_planted_spec(tmp_path_factory.mktemp("planted_curve"), SPEC)


def test_the_curve_reaches_one_at_the_planted_path(planted):
    _, results = planted
    curve = results["analyses"]["fc"]
    assert set(curve["ranking"][:2]) == set(PLANTED)
    assert curve["sizes"] == list(range(11)) and curve["ranked"] == 10
    assert curve["faithfulness"][1] == pytest.approx(0.0, abs=1e-6)  # one planted head alone carries nothing
    assert all(f == pytest.approx(1.0, abs=1e-6) for f in curve["faithfulness"][2:])
    assert curve["size_at_target"] == 2
    # the exact step from 0 at one node to 1 at two, over fractions of ten nodes
    assert curve["cpr"] == pytest.approx(0.1 * 0.5 + 0.8, abs=1e-6)
    assert curve["cmd"] == pytest.approx(1 - curve["cpr"], abs=1e-6)


def test_the_ranking_beats_the_random_baseline(planted):
    _, results = planted
    curve = results["analyses"]["fc"]
    baseline = curve["random"]
    assert baseline["orders"] == 8
    assert curve["cpr"] > baseline["cpr"] + 3 * baseline["cpr_stderr"]
    assert curve["cmd"] < baseline["cmd"] - 3 * baseline["cmd_stderr"]
    assert baseline["size_at_target"] > 2


def test_points_equal_the_faithfulness_kernel(planted):
    _, results = planted
    curve, analyses = results["analyses"]["fc"], results["analyses"]
    assert curve["faithfulness"][2] == pytest.approx(analyses["two"]["value"], abs=1e-6)
    assert curve["faithfulness"][1] == pytest.approx(analyses["one"]["value"], abs=1e-6)
    assert curve["clean"] == pytest.approx(analyses["two"]["clean"], rel=1e-5)
    assert curve["all_ablated"] == pytest.approx(analyses["two"]["all_ablated"], rel=1e-5)


def test_growth_keeps_exactly_the_planted_heads(planted):
    code, results = planted
    found = results["circuits"]["found"]
    assert [n["id"] for n in found["nodes"]] == list(PLANTED)
    growth = found["faithfulness"]
    assert growth["reached"] and growth["size"] == 2 and growth["target"] == 0.9
    read = {e["text"]: e for e in results["expectations"]}["expect faithfulness(found) > 0.9"]
    assert read["value"] == growth["value"]
    assert growth["value"] == pytest.approx(results["analyses"]["again"]["value"], abs=1e-6)  # the kernel agrees
    assert code == 0 and all(e["passed"] for e in results["expectations"])


EDGE_SPEC = '''spec "planted-edge-curve"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis e = edges(heads + mlps + embed, source=corrupt, target=clean, metric=ld, method=eap_ig, steps=20)
analysis fc = curve(e, on=clean, ablate=corrupt, metric=ld, sizes=[1, 2, 3, 10, 50], random=3)
circuit found = discover(e, faithfulness=0.9)
expect fc.cpr > 0.95
expect faithfulness(found) > 0.9
'''

PLANTED_PATH = {("EMBED", "L0.H2", "v"), ("L0.H2", "L1.H1", "k"), ("L1.H1", "LOGITS", None)}


@pytest.fixture(scope="module")
def planted_edges(tmp_path_factory, one_thread):
    return run_planted_spec(tmp_path_factory.mktemp("planted_edge_curve"), EDGE_SPEC)


def test_the_edge_curve_beats_random_and_growth_keeps_the_planted_edges(planted_edges):
    code, results = planted_edges
    curve = results["analyses"]["fc"]
    assert curve["level"] == "edges" and curve["ranked"] == len(results["analyses"]["e"]["values"])
    assert set(curve["ranking"][:3]) == {"EMBED->L0.H2.v", "L0.H2->L1.H1.k", "L1.H1->LOGITS"}
    total = curve["ranked"]
    assert curve["sizes"] == [0, 1, 2, 3, 10, 50, total]
    assert curve["faithfulness"][2] == pytest.approx(0.0, abs=1e-6)  # two of the three planted edges carry nothing
    assert all(f == pytest.approx(1.0, abs=1e-6) for f in curve["faithfulness"][3:])  # the planted path's size
    assert curve["size_at_target"] == 3
    assert curve["cpr"] == pytest.approx((0.5 + total - 3) / total, abs=1e-6)
    assert curve["cpr"] > curve["random"]["cpr"] + 3 * curve["random"]["cpr_stderr"]
    found = results["circuits"]["found"]
    growth = found["faithfulness"]
    assert growth["level"] == "edges" and growth["size"] == 3 and growth["value"] == pytest.approx(1.0, abs=1e-6)
    assert {m["faithfulness"] < 0.9 for m in growth["measured"] if m["size"] < 3} == {True}
    assert {(e["src"], e["dst"], e["part"]) for e in found["edges"]} == PLANTED_PATH
    assert code == 0

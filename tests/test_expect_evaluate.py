"""Expectations evaluated on results built by hand: each form reads the number or the
node sets it names, a number that does not exist fails with a reason, and the
summary shows what was found."""
from circ.compiler import ir
from circ.runtime.execute.expectations import Readings, evaluate
from circ.runtime.render.summary import summarize

ANALYSES = {
    "dla": {"kind": "attribute", "values": {"L0.H0": 0.5, "L1.H0": -4.0, "L1.MLP": 10.0, "BIAS": 99.0}},
    "paths": {"kind": "path_patch", "values": {"L0.MLP->L1.H0.q": -7.0}},
    "attn": {"kind": "attention", "values": {"L1.H0": {"answer_text": 0.97, "bos": 0.01}}},
}
DATASETS = {"clean": {"metrics": {"ld": 14.5}, "accuracy": 0.75}}
SETS = {"output": ["L1.H0", "L1.MLP"], "strong": ["L0.H0", "L1.H0", "L1.MLP"]}


CATEGORIES = {"output": {"L1.H0": "correct_letter", "L1.MLP": None}}


def readings():
    def node_ids(nodes):
        members = SETS[nodes.analysis]
        if nodes.category is None:
            return members
        return [m for m in members if CATEGORIES[nodes.analysis].get(m) == nodes.category]
    return Readings(ANALYSES, DATASETS, node_ids, CATEGORIES)


def check(left, op, right):
    return evaluate(ir.Expectation(left, op, right), readings(), "  expect something  ")


def test_numbers_read_the_value_they_name():
    assert check(ir.Quantity("paths", "edge", (("sender", "L0.MLP"), ("receiver", "L1.H0.q"))),
                 "<", -5.0)["value"] == -7.0
    attention = ir.Quantity("attn", "attention", (("node", "L1.H0"), ("position", "answer_text")))
    assert check(attention, ">", 0.9)["value"] == 0.97
    assert check(ir.Accuracy("clean"), ">=", 0.98) == {
        "text": "expect something", "line": 0, "op": ">=", "value": 0.75, "threshold": 0.98,
        "passed": False}
    assert check(ir.MetricMean("ld", "clean"), ">", 5.0)["value"] == 14.5
    assert check(ir.Count(ir.Select("strong")), "<=", 4.0)["value"] == 3.0


def test_rank_is_by_magnitude_and_leaves_out_the_bias():
    ranks = [check(ir.Quantity("dla", "rank", (("node", node),)), "<=", 2.0)["value"]
             for node in ("L1.MLP", "L1.H0", "L0.H0")]
    assert ranks == [1.0, 2.0, 3.0]


def test_a_number_that_does_not_exist_fails_with_a_reason():
    missing = check(ir.Quantity("attn", "attention", (("node", "L1.H0"), ("position", "answr"))), ">", 0.5)
    assert (missing["value"], missing["passed"]) == (None, False)
    assert missing["reason"] == "the prompts of `attn` have no position `answr`; positions: answer_text, bos"
    edge = check(ir.Quantity("paths", "edge", (("sender", "L0.H0"), ("receiver", "L1.H0.q"))), "<", 0.0)
    assert edge["reason"] == "`paths` measured no edge L0.H0 -> L1.H0.q"
    assert "reason" not in check(ir.Quantity("dla", "node", (("node", "L1.H0"),)), "<", 0.0)


def test_membership_and_relations_hold_or_not_and_name_the_nodes():
    inside = check(ir.Node(1, "head", 0), "in", ir.Select("output"))
    assert (inside["value"], inside["passed"], inside["threshold"]) == (True, True, None)
    outside = check(ir.Node(0, "head", 0), "in", ir.Select("output"))
    assert outside["passed"] is False
    assert outside["detail"] == "L0.H0 is not in the set: L1.H0, L1.MLP"
    assert outside["nodes"] == {"left": ["L0.H0"], "right": ["L1.H0", "L1.MLP"]}
    category = ir.Select("output", category="correct_letter")
    assert check(ir.Node(1, "head", 0), "in", category)["passed"] is True
    assert check(ir.Node(1, "mlp"), "in", category)["detail"] == (
        "L1.MLP is not in the set: L1.H0 (L1.MLP is in output without a category)")
    assert check(ir.Node(0, "head", 0), "in", category)["detail"] == (
        "L0.H0 is not in the set: L1.H0 (L0.H0 is not in output)")
    results = {op: check(ir.Select("output"), op, ir.Select("strong"))["passed"]
               for op in ("==", "!=", "<=", "<", ">=", ">")}
    assert results == {"==": False, "!=": True, "<=": True, "<": True, ">=": False, ">": False}
    broken = check(ir.Select("strong"), "<=", ir.Select("output"))
    assert broken["detail"] == ("left is not a subset of right: 3 and 2 nodes; only left: L0.H0; "
                                "only right: none")


def test_the_summary_shows_what_each_expectation_found():
    entries = [check(ir.Node(0, "head", 0), "in", ir.Select("output")),
               check(ir.Quantity("paths", "edge", (("sender", "L0.H0"), ("receiver", "L1.H0.q"))), "<", 0.0),
               check(ir.Accuracy("clean"), ">=", 0.5)]
    lines = summarize({"expectations": entries}).splitlines()
    assert lines[1:] == [
        "  FAIL  expect something  (L0.H0 is not in the set: L1.H0, L1.MLP, line 0)",
        "  FAIL  expect something  (value n/a, line 0)",
        "        cannot be computed: `paths` measured no edge L0.H0 -> L1.H0.q",
        "  PASS  expect something  (value +0.7500, line 0)",
    ]

"""Results diff on fixture results.json files: every difference, worked out by hand
from the fixtures, the threshold, and malformed input rejected with one clear error."""
import json
from pathlib import Path

import pytest
from circ.compiler.diff.results import (
    Faithfulness,
    ResultChange,
    ResultsError,
    diff_results,
)

FIXTURES = Path(__file__).parent / "fixtures" / "results_diff"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


EXPECTED = [
    ResultChange("setup_changed", "spec", "sha256", "aa11", "bb22"),
    ResultChange("setup_changed", "model", "numerics", "raw", "compat"),
    ResultChange("value_changed", "attn", "L1.H2/labels", 0.9, 0.85),
    ResultChange("value_changed", "dla", "total", 2.75, 2.9),
    ResultChange("value_changed", "dla", "L0.MLP", -0.2, -0.25),
    ResultChange("value_added", "dla", "L1.MLP", None, 0.2),
    ResultChange("analysis_added", "dla_letters", None, None, "attribute"),
    ResultChange("value_changed", "faith", "circuit_only", 2.9687, 2.41),
    ResultChange("faithfulness_changed", "faith", "value", 0.93, 0.7492),
    ResultChange("analysis_removed", "lowrank", None, "subspace", None),
    ResultChange("setting_changed", "patched", "effect", "direct", "total"),
    ResultChange("value_removed", "patched", "L0.H0", 0.01, None),
    ResultChange("value_changed", "patched", "L1.H3", 0.4, 0.02),
    ResultChange("node_entered", "output", "L0.H1", None, "uniform"),
    ResultChange("category_changed", "output", "L1.H2", "correct_letter", "single_letter"),
    ResultChange("node_left", "output", "L1.H3", "uniform", None),
    ResultChange("edge_removed", "output", "L0.H1->L1.H2.k"),
    ResultChange("edge_added", "output", "L0.H1->L1.H2.q"),
    ResultChange("expectation_removed", "lowrank.recovered(clean, rank <= 2) >= 0.9", None, True),
    ResultChange("expectation_flipped", "faith.value >= 0.8", "passed", True, False),
    ResultChange("expectation_value_changed", "faith.value >= 0.8", "value", 0.93, 0.7492),
    ResultChange("expectation_flipped", "dla.total > 2.8", "passed", False, True),
    ResultChange("expectation_value_changed", "dla.total > 2.8", "value", 2.75, 2.9),
    ResultChange("expectation_added", "dla_letters.total > 0", None, None, True),
]


def test_every_difference_of_the_fixture_pair():
    diff = diff_results(load("old.json"), load("new.json"))
    assert list(diff.changes) == EXPECTED
    assert diff.faithfulness == (Faithfulness("faith", 0.93, 0.7492),)


def test_identical_results_and_timing_paths_examples_patterns_are_not_differences():
    old = load("old.json")
    assert diff_results(old, load("old.json")).changes == ()
    moved = load("old.json")
    moved["timing"]["seconds"] = 99.0
    moved["spec"]["path"] = "/somewhere/else.circ"
    moved["datasets"]["clean"]["example"] = "x"
    moved["analyses"]["attn"]["patterns"]["L1.H2"]["weights"] = [1.0, 0.0]
    moved["analyses"]["attn"]["explorer"] = {"heads": ["L1.H2"], "examples": []}
    assert diff_results(old, moved).changes == ()


def test_threshold_is_absolute_and_strict():
    old, near = load("old.json"), load("same_within_threshold.json")
    assert diff_results(old, near).changes == ()  # |0.3099 - 0.3| = 0.0099 <= 0.01
    changed = diff_results(old, near, threshold=0.005).changes
    assert [(c.kind, c.subject, c.key) for c in changed] == [("value_changed", "dla", "L0.H0")]
    assert changed[0].delta == pytest.approx(0.0099)


def test_a_larger_threshold_hides_smaller_moves_but_not_flips():
    diff = diff_results(load("old.json"), load("new.json"), threshold=0.2)
    kept = {(c.kind, c.subject, c.key) for c in diff.changes}
    assert ("value_changed", "dla", "total") not in kept  # moved 0.15
    assert ("faithfulness_changed", "faith", "value") not in kept  # moved 0.1808
    assert ("value_changed", "faith", "circuit_only") in kept  # moved 0.5587
    assert ("expectation_flipped", "faith.value >= 0.8", "passed") in kept
    assert diff.faithfulness == (Faithfulness("faith", 0.93, 0.7492),)


def test_nan_against_a_number_is_a_change_and_nan_against_nan_is_not():
    old, new = load("old.json"), load("old.json")
    new["analyses"]["dla"]["values"]["EMBED"] = float("nan")
    assert [(c.kind, c.key) for c in diff_results(old, new).changes] == [("value_changed", "EMBED")]
    assert diff_results(new, json.loads(json.dumps(new))).changes == ()


def test_node_order_sorts_layers_numerically():
    old, new = load("old.json"), load("old.json")
    for node in ("L2.H0", "L10.H0"):
        new["analyses"]["patched"]["values"][node] = 1.0
    assert [c.key for c in diff_results(old, new).changes] == ["L2.H0", "L10.H0"]


@pytest.mark.parametrize("mangle, message", [
    (lambda r: [], "the top level must be a JSON object"),
    (lambda r: {k: v for k, v in r.items() if k != "analyses"}, "no 'analyses' object"),
    (lambda r: {**r, "analyses": {"dla": 3}}, "analysis 'dla' must be an object"),
    (lambda r: {**r, "circuits": {"output": {"nodes": [{"kind": "head"}]}}},
     "'nodes' of circuit 'output' must be a list of objects with 'id'"),
    (lambda r: {**r, "expectations": {"a": 1}}, "'expectations' must be a list of objects"),
])
def test_malformed_results_give_one_clear_error(mangle, message):
    with pytest.raises(ResultsError) as error:
        diff_results(load("old.json"), mangle(load("new.json")), labels=("a.json", "b.json"))
    assert str(error.value) == f"b.json: not a circ results file ({message})"


def test_negative_threshold_is_rejected():
    with pytest.raises(ResultsError, match="threshold"):
        diff_results(load("old.json"), load("old.json"), threshold=-1)


def _run_like(**analyses) -> dict:
    """A results object as `circ run` writes it: setup with measured metric means."""
    return {"spec": {"name": "s"}, "model": {"name": "demo", "n_layers": 2},
            "datasets": {"clean": {"kind": "mcq", "n": 16, "metrics": {"ld": 14.7612345}},
                         "moved": {"kind": "move_answer", "n": 16, "metrics": {"ld": -4.8712345}}},
            "metrics": {"ld": {"kind": "logit_diff", "better": "higher"}},
            "analyses": analyses, "circuits": {}, "expectations": []}


PATCH = {"kind": "patch", "dataset": "clean", "metric": "ld", "line": 7, "baseline": {"clean": 14.76},
         "values": {"L1.H0": 5.49, "L1.MLP": 13.27}, "stderr": {"L1.H0": 0.1, "L1.MLP": 0.2}, "n": 16}


def test_float_noise_in_measured_setup_numbers_and_stderr_is_within_the_threshold():
    old = _run_like(direct=PATCH)
    new = json.loads(json.dumps(old))
    new["datasets"]["clean"]["metrics"]["ld"] += 3e-7  # another machine's float rounding
    new["datasets"]["moved"]["metrics"]["ld"] -= 2e-7
    new["analyses"]["direct"]["stderr"]["L1.H0"] = 0.1000004
    new["analyses"]["direct"]["values"]["L1.H0"] += 1e-7
    assert diff_results(old, new, 0.01).changes == ()
    new["datasets"]["clean"]["metrics"]["ld"] = 12.0
    new["datasets"]["clean"]["n"] = 17
    assert [(c.kind, c.subject, c.key) for c in diff_results(old, new, 0.01).changes] == [
        ("setup_changed", "datasets", "clean/metrics/ld"), ("setup_changed", "datasets", "clean/n")]


def test_a_renamed_analysis_is_one_rename_then_compared_under_its_new_name():
    old = _run_like(direct=PATCH)
    moved = dict(PATCH, line=9, values={"L1.H0": 5.49, "L1.MLP": 10.0})
    changes = diff_results(old, _run_like(direct_effects=moved), 0.01).changes
    assert changes == (ResultChange("analysis_renamed", "direct_effects", None, "direct", "direct_effects"),
                       ResultChange("value_changed", "direct_effects", "L1.MLP", 13.27, 10.0))


def test_renames_found_by_the_spec_diff_are_used_for_results():
    old = _run_like(direct=PATCH)
    other = dict(PATCH, metric="nld")  # a setting changed too: only the spec diff can tell it is a rename
    alone = diff_results(old, _run_like(direct_effects=other), 0.01).changes
    assert [c.kind for c in alone] == ["analysis_removed", "analysis_added"]
    told = diff_results(old, _run_like(direct_effects=other), 0.01,
                        renames={"analyses": {"direct": "direct_effects"}}).changes
    assert [(c.kind, c.key) for c in told] == [("analysis_renamed", None), ("setting_changed", "metric")]


def test_spec_and_results_diff_report_a_rename_alike(tmp_path):
    from circ.compiler.diff.inputs import build_report
    from circ.compiler.diff.rows import result_groups, spec_groups

    spec = ('model demo\ndata clean = mcq(n=8)\ndata moved = clean.move_answer()\nmetric ld = logit_diff at last\n'
            'analysis {name} = patch(heads, source=moved, target=clean, metric=ld)\n')
    (tmp_path / "old.circ").write_text(spec.format(name="direct"))
    (tmp_path / "new.circ").write_text(spec.format(name="direct_effects"))
    (tmp_path / "old.json").write_text(json.dumps(_run_like(direct=PATCH)))
    (tmp_path / "new.json").write_text(json.dumps(_run_like(direct_effects=dict(PATCH, metric="other"))))
    report = build_report(str(tmp_path / "old.circ"), str(tmp_path / "new.circ"),
                          results=(str(tmp_path / "old.json"), str(tmp_path / "new.json")))
    spec_rows = [row for _, rows in spec_groups(report.spec_changes) for row in rows]
    result_rows = [row for _, rows in result_groups(report.results) for row in rows]
    renamed = [(row.mark, row.what, row.old, row.new) for row in spec_rows + result_rows if "renamed" in row.what]
    assert renamed == [("~", "analysis renamed", "direct", "direct_effects")] * 2


def test_set_relations_and_membership_expectations_are_read_and_compared():
    """A relation or membership expectation records whether it holds as its value
    (true or false), as circ run writes it; diff reads it and reports a flip."""
    relation = {"text": "expect output <= found", "line": 9, "op": "<=", "value": True, "passed": True,
                "threshold": None, "nodes": {"left": ["L1.H0"], "right": ["L1.H0", "L1.MLP"]}}
    old = load("old.json")
    old["expectations"] = old["expectations"] + [relation]
    assert diff_results(old, old).changes == ()
    new = json.loads(json.dumps(old))
    new["expectations"][-1].update(value=False, passed=False)
    changes = [c for c in diff_results(old, new).changes if c.subject == "expect output <= found"]
    assert [(c.kind, c.old, c.new) for c in changes] == [("expectation_flipped", True, False),
                                                          ("expectation_value_changed", True, False)]

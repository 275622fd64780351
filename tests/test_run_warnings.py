"""Nothing wrong passes in silence at run time: an empty circuit, an unmatched
category and an expectation over an empty circuit are warnings (results.json, the
summary, the report); an expectation whose number cannot be computed fails with a
reason; a dataset whose later lines lack a mark stops the run with exit 2 at the
spec's `data` line; a `.pdf` render target is written."""
import io
import json
import math
from dataclasses import replace

import pytest
from conftest import mcq_examples, write_jsonl

from circ.cli.run import run_spec
from circ.compiler import ir
from circ.runtime.execute.expectations import Readings, evaluate
from circ.runtime.render.report import report_html

SPEC = '''model hf("{model}")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
circuit nothing = top(dla, 3) where abs(effect) > 1000000
circuit two = top(dla, 2)
categories two {{
  any   = abs(effect) >= 0
  never = dla > 1000000
}}
analysis one = patch(top(dla, 1), source=corrupt, target=clean, metric=ld)
expect faithfulness(nothing, on=clean, metric=ld) <= 0.5
expect one[L0.H0] > -1000
expect one[L0.H1] > -1000
render two to "two.pdf"
'''


def run(folder, text):
    (folder / "s.circ").write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = run_spec(str(folder / "s.circ"), str(folder / "out"), model=None, device=None,
                    batch_size=4, seed=0, trust_remote_code=False, progress=False,
                    stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_dir):
    folder = tmp_path_factory.mktemp("warnings")
    write_jsonl(folder / "data.jsonl", mcq_examples(6, seed=1))
    code, summary, stderr = run(folder, SPEC.format(model=tiny_dir))
    return folder, code, summary, stderr, json.loads((folder / "out" / "results.json").read_text())


def test_silent_statements_are_warnings_with_their_lines(finished):
    _, _, summary, _, results = finished
    assert [(w["code"], w["line"]) for w in results["warnings"]] == [
        ("W001", 5), ("W002", 9), ("W003", 12)]
    assert "warnings\n  W001  line 5: circuit `nothing` selects no node" in summary
    assert "W002  line 9: category `two.never` matches no node of `two`" in summary
    html = report_html(results, SPEC, diagram_svg=None)
    assert '<section id="warnings">' in html and "two.never" in html


def test_a_value_that_cannot_be_computed_fails_with_a_reason(finished):
    _, code, summary, _, results = finished
    assert code == 1
    by_line = {e["line"]: e for e in results["expectations"]}
    missing = [by_line[13], by_line[14]]
    chosen = next(iter(results["analyses"]["one"]["values"]))
    for expectation in missing:
        node = expectation["text"].split("[")[1].split("]")[0]
        if node == chosen:
            assert expectation["passed"] and "reason" not in expectation
        else:
            assert expectation["value"] is None and not expectation["passed"]
            assert expectation["reason"] == f"`one` has no value for {node}"
            assert f"cannot be computed: `one` has no value for {node}" in summary
            assert f"fail</span>: cannot be computed: `one` has no value for {node}" in report_html(
                results, SPEC, diagram_svg=None)
    assert chosen in ("L0.H0", "L0.H1") or all(not e["passed"] for e in missing)


def test_a_pdf_render_target_is_written(finished):
    folder = finished[0]
    assert (folder / "out" / "two.pdf").read_bytes().startswith(b"%PDF-")


def _readings(analyses: dict) -> Readings:
    return Readings(analyses, {}, lambda nodes: [])


@pytest.mark.parametrize("raw, reason", [
    (math.nan, "the value of L0.H0 in `a` is NaN"),
    (None, "`a` has no value for L0.H0"),
])
def test_nan_and_missing_node_values_fail_with_a_reason(raw, reason):
    quantity = ir.Quantity("a", "node", (("node", "L0.H0"),))
    result = evaluate(ir.Expectation(quantity, "<", 5.0, ir.Span("s", 3, 1, 3, 9)),
                      _readings({"a": {"kind": "patch", "values": {} if raw is None else {"L0.H0": raw}}}),
                      "expect a[L0.H0] < 5")
    assert result["passed"] is False and result["value"] is None and result["reason"] == reason


def test_faithfulness_without_a_gap_fails_with_a_reason():
    quantity = ir.Quantity("f", "value")
    result = evaluate(ir.Expectation(quantity, ">=", 0.0), _readings({"f": {"kind": "faithfulness", "value": None}}), "")
    assert not result["passed"] and "every node ablated" in result["reason"]


def test_a_later_line_without_the_mark_stops_the_run_at_the_data_line(tmp_path, tiny_dir):
    examples = mcq_examples(20, seed=2)
    examples[17] = replace(examples[17], marks=(("labels", examples[17].mark("labels")),))
    write_jsonl(tmp_path / "data.jsonl", examples)
    code, _, stderr = run(tmp_path, f'model hf("{tiny_dir}")\ndata clean = jsonl("data.jsonl")\n'
                          "metric ld = logit_diff(answer, wrong) at answer_label\n"
                          "analysis dla = attribute(heads, on=clean, metric=ld)\n")
    assert code == 2, stderr
    assert stderr.startswith(f"{tmp_path / 's.circ'}:2:1: error[E600]: "), stderr
    assert f"{tmp_path / 'data.jsonl'}:18: the prompt has no position named \"answer_label\"" in stderr
    assert not (tmp_path / "out" / "results.json").exists()

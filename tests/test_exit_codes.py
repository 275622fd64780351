"""Exit codes that CI can act on (README, command table): `circ run` 0 when every
expectation holds, 1 when one fails, 2 when the spec, its data or its model is broken
or the run could not finish; `circ check` 0 / 1 / 2 (usage); `circ diff` and
`circ render` 2 on broken input."""
import io
import json

import pytest
from click.testing import CliRunner

from circ.cli.main import main
from circ.cli.run import run_spec
from conftest import mcq_examples, write_jsonl

SPEC = '''spec "codes"
model demo
data clean = {data}
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads, on=clean, metric=ld)
expect dla.total {expectation}
'''
DEMO = 'mcq(n=4, labels="ABCD", seed=0)'


def _run(tmp_path, *, data=DEMO, expectation="> -1000", model=None, text=None):
    spec = tmp_path / "codes.circ"
    spec.write_text(text if text is not None else SPEC.format(data=data, expectation=expectation))
    err = io.StringIO()
    code = run_spec(str(spec), str(tmp_path / "out"), model=model, device=None, batch_size=4, seed=0,
                    trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def test_run_exits_0_when_every_expectation_holds(tmp_path):
    assert _run(tmp_path)[0] == 0


def test_run_exits_1_when_an_expectation_fails(tmp_path):
    assert _run(tmp_path, expectation="> 1000")[0] == 1
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [e["passed"] for e in results["expectations"]] == [False]


def test_run_exits_2_on_a_check_error(tmp_path):
    code, err = _run(tmp_path, data="mcq(n=4, labels=\"ABCD\", sed=0)")
    assert (code, "error[E303]" in err) == (2, True)
    assert not (tmp_path / "out" / "results.json").exists()


def test_run_exits_2_on_a_dataset_broken_past_what_check_reads(tmp_path):
    write_jsonl(tmp_path / "data.jsonl", mcq_examples(60, seed=1))
    lines = (tmp_path / "data.jsonl").read_text().splitlines()
    (tmp_path / "data.jsonl").write_text("\n".join(lines[:50] + ['{"prompt": "unclosed'] + lines[50:]) + "\n")
    code, err = _run(tmp_path, data='jsonl("data.jsonl")')
    assert (code, "error[E600]" in err) == (2, True)
    assert not (tmp_path / "out" / "results.json").exists()


def test_run_exits_2_when_the_model_cannot_load(tmp_path):
    code, err = _run(tmp_path, model=str(tmp_path / "no_such_model"))
    assert (code, "error[E" in err, "Traceback" in err) == (2, True, False)


def test_check_exits_0_1_or_2(tmp_path):
    good, bad = tmp_path / "good.circ", tmp_path / "bad.circ"
    good.write_text(SPEC.format(data=DEMO, expectation="> 0"))
    bad.write_text(SPEC.format(data="mcq(n=4, labelz=\"ABCD\")", expectation="> 0"))
    runner = CliRunner()
    assert runner.invoke(main, ["check", str(good)]).exit_code == 0
    assert runner.invoke(main, ["check", str(bad)]).exit_code == 1
    assert runner.invoke(main, ["check"]).exit_code == 2
    assert runner.invoke(main, ["check", "--no-such-flag", str(good)]).exit_code == 2


def test_render_and_diff_exit_2_on_broken_input(tmp_path):
    broken = tmp_path / "results.json"
    broken.write_text("{not json")
    runner = CliRunner()
    assert runner.invoke(main, ["render", str(broken), "-o", str(tmp_path / "c.dot")]).exit_code == 2
    assert runner.invoke(main, ["diff", str(broken), str(broken)]).exit_code == 2
    bad_spec = tmp_path / "bad.circ"
    bad_spec.write_text("spec \"x\"\nmodel demo\ndata d = mqc(n=4)\n")
    assert runner.invoke(main, ["render", str(bad_spec), "-o", str(tmp_path / "c.dot")]).exit_code == 2


@pytest.mark.parametrize("threshold", ["-1", "nan"])
def test_diff_exits_2_on_a_bad_threshold(tmp_path, threshold):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"analyses": {}}))
    assert CliRunner().invoke(main, ["diff", str(results), str(results), "--threshold", threshold]).exit_code == 2

"""Every expectation form on the demo model: one spec whose claims all hold (exit 0)
and one whose claims all fail (exit 1), each value checked against the analysis it
reads or against a hand-written forward pass. The failing run resumes the passing
run's analyses, which are the same."""
import json
from pathlib import Path

import pytest
import torch

from circ.cli.run import run_spec

HEAD = '''spec "expect-forms"
model demo
data clean   = mcq(n=16, labels="ABCD", seed=0)
data letters = mcq(n=16, labels=random_letters, seed=1)
metric ld = logit_diff(answer, wrong) at last
analysis dla   = attribute(heads + mlps, on=clean, metric=ld)
analysis attn  = attention(heads, on=clean, query=last)
analysis paths = path_patch([L0.H0, L0.MLP], to=[L1.H0.v], source=mean(clean), target=clean, metric=ld)
circuit output = top(dla, 2)
categories output {
  correct_letter = attends(answer_text) > 0.5 and dla > 0
  other          = dla > 0
}
circuit strong = top(dla, 3)
'''

HOLDING = [
    "expect paths[L0.MLP -> L1.H0.v] < 100",
    "expect attn[L1.H0].to(answer_text) > 0.9",
    "expect L1.H0 in output.correct_letter",
    "expect output == [L1.H0, L1.MLP]",
    "expect output <= strong",
    "expect count(output) == 2",
    "expect accuracy(clean) >= 0.98",
    "expect metric(ld, on=letters) > 5",
    "expect rank(dla, L1.H0) <= 2",
]

FAILING = [
    "expect paths[L0.MLP -> L1.H0.v] > 100",
    "expect attn[L1.H0].to(answer_label) > 0.5",
    "expect L1.MLP in output.correct_letter",
    "expect output == strong",
    "expect strong <= output",
    "expect count(output) > 2",
    "expect accuracy(clean) < 0.5",
    "expect metric(ld, on=letters) > 100",
    "expect rank(dla, L1.H0) == 1",
]


def run_holding_and_failing(folder, head: str, holding: list[str], failing: list[str], batch_size: int) -> dict:
    """{"holding" | "failing": (exit code, results)} of `head` followed by each list of
    expectations; the failing run resumes the holding one's analyses."""
    out = folder / "out"
    found = {}
    for name, lines, resume in (("holding", holding, False), ("failing", failing, True)):
        path = folder / f"{name}.circ"
        path.write_text(head + "\n".join(lines) + "\n")
        code = run_spec(str(path), str(out), model=None, device=None, batch_size=batch_size, seed=0,
                        trust_remote_code=False, progress=False, resume=resume)
        found[name] = (code, json.loads((out / "results.json").read_text()))
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    return run_holding_and_failing(tmp_path_factory.mktemp("expect_forms"), HEAD, HOLDING, FAILING, 16)


def _by_text(results):
    return {e["text"]: e for e in results["expectations"]}


def test_every_holding_form_passes_and_the_run_exits_0(runs):
    code, results = runs["holding"]
    assert [e["text"] for e in results["expectations"]] == HOLDING
    assert [e["text"] for e in results["expectations"] if not e["passed"]] == []
    assert code == 0


def test_every_failing_form_fails_and_the_run_exits_1(runs):
    code, results = runs["failing"]
    assert [e["text"] for e in results["expectations"] if e["passed"]] == []
    assert len(results["expectations"]) == len(FAILING)
    assert code == 1


def test_edge_reads_the_path_patching_value(runs):
    for name, line in (("holding", HOLDING[0]), ("failing", FAILING[0])):
        _, results = runs[name]
        edge = results["analyses"]["paths"]["values"]["L0.MLP->L1.H0.v"]
        assert _by_text(results)[line]["value"] == pytest.approx(edge, abs=1e-12)


def test_attention_to_a_position_matches_a_hand_written_hook(runs, demo):
    loaded, prompts = demo
    pattern = {}
    hook = ("blocks.1.attn.hook_pattern", lambda act, hook: pattern.setdefault("p", act.detach()))
    with torch.no_grad():
        loaded.bridge.run_with_hooks(prompts.tokens, fwd_hooks=[hook])
    rows = torch.arange(len(prompts))
    from_last = pattern["p"][rows, 0, prompts.lengths - 1]  # [n, key]
    marks = prompts.marks["answer_text"]
    mass = (from_last.gather(1, marks.index) * marks.valid).sum(1).mean().item()
    _, results = runs["holding"]
    assert _by_text(results)[HOLDING[1]]["value"] == pytest.approx(mass, abs=1e-5)
    _, failing = runs["failing"]
    assert _by_text(failing)[FAILING[1]]["value"] == pytest.approx(
        results["analyses"]["attn"]["values"]["L1.H0"]["answer_label"], abs=1e-12)


def test_membership_and_relations_read_the_circuits(runs):
    _, results = runs["failing"]
    circuits = results["circuits"]
    output = [n["id"] for n in circuits["output"]["nodes"]]
    strong = [n["id"] for n in circuits["strong"]["nodes"]]
    categories = {n["id"]: n["category"] for n in circuits["output"]["nodes"]}
    assert output == ["L1.H0", "L1.MLP"] and categories == {"L1.H0": "correct_letter", "L1.MLP": "other"}
    assert set(output) < set(strong)
    entries = _by_text(results)
    assert entries[FAILING[2]]["nodes"] == {"left": ["L1.MLP"], "right": ["L1.H0"]}
    assert entries[FAILING[2]]["detail"] == "L1.MLP is not in the set: L1.H0 (L1.MLP is in output as `other`)"
    assert entries[FAILING[3]]["nodes"] == {"left": output, "right": strong}
    assert entries[FAILING[4]]["nodes"] == {"left": strong, "right": output}
    assert entries[FAILING[5]]["value"] == len(output)


def test_rank_is_the_place_by_magnitude(runs):
    _, results = runs["holding"]
    values = {k: v for k, v in results["analyses"]["dla"]["values"].items() if k != "BIAS"}
    order = sorted(values, key=lambda k: -abs(values[k]))
    assert _by_text(results)[HOLDING[8]]["value"] == order.index("L1.H0") + 1 == 2


def test_accuracy_and_metric_mean_match_a_hand_written_forward(runs, demo, demo_letters):
    _, results = runs["holding"]
    entries = _by_text(results)
    loaded, prompts = demo
    with torch.no_grad():
        logits = loaded.bridge(prompts.tokens)
    rows = torch.arange(len(prompts))
    final = logits[rows, prompts.lengths - 1]
    answer = final[rows, prompts.answer]
    wrong = final.gather(1, prompts.wrong).masked_fill(~prompts.wrong_valid, float("-inf"))
    accuracy = (answer > wrong.max(1).values).float().mean().item()
    assert entries[HOLDING[6]]["value"] == pytest.approx(accuracy) == results["datasets"]["clean"]["accuracy"]
    letters = demo_letters
    with torch.no_grad():
        final = loaded.bridge(letters.tokens)[rows, letters.lengths - 1]
    wrong_mean = (final.gather(1, letters.wrong) * letters.wrong_valid).sum(1) / letters.wrong_valid.sum(1)
    ld = (final[rows, letters.answer] - wrong_mean).mean().item()
    assert entries[HOLDING[7]]["value"] == pytest.approx(ld, abs=1e-4)


@pytest.fixture(scope="module")
def demo_spec(tmp_path_factory):
    from circ.compiler.api import compile_file

    path = tmp_path_factory.mktemp("expect_demo") / "demo.circ"
    path.write_text(HEAD)
    return compile_file(str(path))


def _prompts(spec, loaded, name):
    from circ.runtime.data.datasets import build_examples
    from circ.runtime.data.prompts import tokenize

    return tokenize(loaded, build_examples(spec.dataset(name), spec), source_name=name)


@pytest.fixture(scope="module")
def demo(demo_spec):
    from circ.runtime.models.loading import load_model

    loaded = load_model(demo_spec.model, spec_dir=Path(demo_spec.path).parent)
    return loaded, _prompts(demo_spec, loaded, "clean")


@pytest.fixture(scope="module")
def demo_letters(demo_spec, demo):
    return _prompts(demo_spec, demo[0], "letters")


def test_circ_run_exits_1_when_a_claim_on_a_dataset_run_fails(tmp_path):
    from click.testing import CliRunner

    from circ.cli.main import main

    spec = tmp_path / "cheap.circ"
    spec.write_text('spec "cheap"\nmodel demo\ndata clean = mcq(n=8, seed=0)\n'
                    "expect accuracy(clean) < 0.5\nexpect [L1.H0] <= [L1.H0, L1.MLP]\n")
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    entries = json.loads((tmp_path / "out" / "results.json").read_text())["expectations"]
    assert [(e["value"], e["passed"]) for e in entries] == [(1.0, False), (True, True)]

"""`circ run` end to end on a tiny model saved to disk, read the way a user's is:
spec -> plan -> executor -> results.json, diagram and report; numbers checked
against independent computations."""
import json

import pytest
import torch
from conftest import build_tiny_model_dir, mcq_examples, write_jsonl

from circ.cli.run import run_spec

SPEC = '''
spec "tiny"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(EMBED + heads + mlps, on=clean, metric=ld)
analysis patched = patch(heads + mlps, source=corrupt, target=clean, metric=ld)
analysis attn = attention(top(dla, 2), on=clean, query=last)
circuit top2 = top(patched, 2)
categories top2 {
  strong = abs(effect) > 0.0 and attends(labels) > 0.0
}
expect dla.total > -1000
expect patched[L1.MLP] > 1000
render top2 to "top2.dot"
'''


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    build_tiny_model_dir(folder / "model")
    write_jsonl(folder / "data.jsonl", mcq_examples(12, seed=3))
    (folder / "tiny.circ").write_text(SPEC)
    code = run_spec(str(folder / "tiny.circ"), str(folder / "out"), model=None, device=None,
                    batch_size=5, seed=0, trust_remote_code=False, progress=False)
    return folder, code, json.loads((folder / "out" / "results.json").read_text())


def test_failing_expectation_gives_exit_1_and_is_recorded(run_dir):
    _, code, results = run_dir
    assert code == 1
    passed = {e["line"]: e["passed"] for e in results["expectations"]}
    assert list(passed.values()) == [True, False]


def test_attributions_sum_to_the_metric(run_dir):
    _, _, results = run_dir
    dla = results["analyses"]["dla"]
    assert abs(sum(dla["values"].values()) - dla["total"]) < 1e-4
    assert abs(results["datasets"]["clean"]["metrics"]["ld"] - dla["total"]) < 1e-5


def test_patching_matches_a_hand_written_hook(run_dir):
    from circ.compiler import ir
    from circ.runtime.data.prompts import tokenize
    from circ.runtime.data.readers import read_jsonl
    from circ.runtime.models.loading import load_model

    folder, _, results = run_dir
    loaded = load_model(ir.Model(source="hf", location=str(folder / "model")), spec_dir=folder)
    prompts = tokenize(loaded, read_jsonl(folder / "data.jsonl"), source_name="data.jsonl")
    bridge = loaded.bridge
    rows = torch.arange(len(prompts))
    last = prompts.lengths - 1

    def ld(logits):
        final = logits[rows, last]
        return (final[rows, prompts.answer] - final[rows, prompts.wrong[:, 0]]).mean().item()

    with torch.no_grad():
        clean = ld(bridge(prompts.tokens))
        _, corrupt_cache = bridge.run_with_cache(prompts.corrupt, names_filter=lambda n: n == "blocks.1.hook_mlp_out")
        hook = ("blocks.1.hook_mlp_out", lambda act, hook: corrupt_cache["blocks.1.hook_mlp_out"])
        patched = ld(bridge.run_with_hooks(prompts.tokens, fwd_hooks=[hook]))
    # positive when the node helps: clean - patched for a logit difference
    assert abs(results["analyses"]["patched"]["values"]["L1.MLP"] - (clean - patched)) < 1e-5


def test_circuit_is_the_top_two_by_magnitude_and_categorised(run_dir):
    _, _, results = run_dir
    values = results["analyses"]["patched"]["values"]
    expected = sorted(values, key=lambda k: -abs(values[k]))[:2]
    nodes = results["circuits"]["top2"]["nodes"]
    assert sorted(n["id"] for n in nodes) == sorted(expected)
    assert results["circuit"]["name"] == "top2"
    attn = results["analyses"]["_attn_top2"]["values"]
    for node in nodes:
        strong = node["id"] in attn and attn[node["id"]]["labels"] > 0
        assert node["category"] == ("strong" if strong else None)


def test_outputs_written(run_dir):
    folder, _, _ = run_dir
    out = folder / "out"
    assert (out / "top2.dot").read_text().startswith("digraph")
    assert "<svg" in (out / "report.html").read_text()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_the_report_draws_the_circuit_the_spec_renders_first(run_dir):
    folder, _, _ = run_dir
    body = SPEC.replace('render top2 to "top2.dot"', 'circuit first = top(dla, 1)\nrender first to "first.svg"')
    (folder / "renders.circ").write_text(body)
    run_spec(str(folder / "renders.circ"), str(folder / "out-renders"), model=None, device=None, batch_size=5,
             seed=0, trust_remote_code=False, progress=False)
    report = (folder / "out-renders" / "report.html").read_text()
    assert "circuit first | spec tiny" in report and "circuit top2 | spec tiny" not in report


def test_a_spec_named_by_a_relative_path_finds_its_model_and_data(run_dir, monkeypatch):
    folder, _, first = run_dir
    monkeypatch.chdir(folder.parent)
    code = run_spec(f"{folder.name}/tiny.circ", f"{folder.name}/out-relative", model=None, device=None,
                    batch_size=5, seed=0, trust_remote_code=False, progress=False)
    again = json.loads((folder / "out-relative" / "results.json").read_text())
    assert code == 1  # the same failing expectation, not a loading error
    assert again["analyses"]["dla"]["values"] == first["analyses"]["dla"]["values"]

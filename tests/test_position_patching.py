"""patch(at=each): one value per node and token position, checked against
TransformerLens's own patching functions on the demo model."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.patching import patch
from circ.runtime.data.induction import induction_examples
from circ.runtime.data.prompts import tokenize
from circ.runtime.models.loading import load_model
from conftest import mcq_examples
from transformer_lens import patching as tl_patching

LP = ir.Metric("lp", "logprob")
LENGTH = 6


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return load_model(ir.Model(source="demo"), spec_dir=tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="module")
def run(demo):
    """Each-position patching of every resid, head and MLP node from `other` into `seqs`."""
    seqs = tokenize(demo, induction_examples(5, LENGTH, 0), source_name="seqs")
    other = tokenize(demo, induction_examples(5, LENGTH, 1), source_name="other")
    source = make_source(demo, seqs, ir.PatchSource("dataset", "other"), {"seqs": seqs, "other": other})
    nodes = ([ir.Node(layer, "resid") for layer in range(2)] + [ir.Node(layer, "mlp") for layer in range(2)]
             + [ir.Node(layer, "head", head) for layer in range(2) for head in range(4)])
    result = patch(demo, seqs, nodes, LP, source, position=ir.EACH, batch_size=2, show_progress=False)
    with torch.no_grad():
        clean_logits = demo.bridge(seqs.tokens)
        _, other_cache = demo.bridge.run_with_cache(other.tokens)

    def metric(logits):
        return metric_values(logits, seqs, LP, clean_logits=clean_logits).mean()

    return result, seqs, other_cache, metric, float(metric(clean_logits))


def _grid(result, ids):
    width = LENGTH + 1  # the BOS token first
    return torch.tensor([[result["positions"][node_id][str(p)] for p in range(width)] for node_id in ids])


def test_resid_pre_equals_transformer_lens(demo, run):
    result, seqs, other_cache, metric, clean = run
    with torch.no_grad():
        expected = clean - tl_patching.get_act_patch_resid_pre(demo.bridge, seqs.tokens, other_cache, metric)
    got = _grid(result, ["L0.RESID", "L1.RESID"])
    assert expected.shape == got.shape == (2, LENGTH + 1)
    assert torch.allclose(got, expected.cpu().float(), atol=1e-5)
    assert got.abs().max() > 0.05  # the comparison is not between zeros


def test_mlp_out_equals_transformer_lens(demo, run):
    result, seqs, other_cache, metric, clean = run
    with torch.no_grad():
        expected = clean - tl_patching.get_act_patch_mlp_out(demo.bridge, seqs.tokens, other_cache, metric)
    assert torch.allclose(_grid(result, ["L0.MLP", "L1.MLP"]), expected.cpu().float(), atol=1e-5)


def test_head_outputs_by_position_equal_transformer_lens(demo, run):
    result, seqs, other_cache, metric, clean = run
    with torch.no_grad():
        expected = tl_patching.get_act_patch_attn_head_out_by_pos(demo.bridge, seqs.tokens, other_cache, metric)
    expected = clean - expected.cpu().float()  # [layer, position, head]; positive helps
    for layer in range(2):
        got = _grid(result, [f"L{layer}.H{head}" for head in range(4)])
        assert torch.allclose(got, expected[layer].T, atol=1e-5)


def test_values_are_the_sum_over_positions_and_tokens_are_the_first_prompt(demo, run):
    result, seqs, *_ = run
    for node_id, by_position in result["positions"].items():
        assert result["values"][node_id] == pytest.approx(sum(by_position.values()), abs=1e-6)
    assert result["tokens"] == demo.tokenizer.convert_ids_to_tokens(seqs.tokens[0].tolist())
    assert len(result["tokens"]) == LENGTH + 1


def test_prompts_of_different_lengths_are_refused(demo):
    clean = tokenize(demo, mcq_examples(4, ragged=True), source_name="dataset `clean`")
    source = make_source(demo, clean, ir.PatchSource("corrupt"), {})
    with pytest.raises(AnalysisError, match="one token length.*dataset `clean` has prompts of"):
        patch(demo, clean, [ir.Node(0, "resid")], ir.Metric("ld", "logit_diff"), source,
              position=ir.EACH, show_progress=False)
    with pytest.raises(AnalysisError, match="needs method=exact"):
        patch(demo, clean, [ir.Node(0, "resid")], ir.Metric("ld", "logit_diff"), source,
              position=ir.EACH, method="attribution", show_progress=False)


def test_python_api_rows_have_a_position_and_token_column(run):
    from circ.results import AnalysisResult

    result = run[0]
    analysis = AnalysisResult("p", {"kind": "patch", "position": "each", **result})
    rows = analysis.rows()
    assert len(rows) == len(result["positions"]) * (LENGTH + 1)
    row = next(r for r in rows if r["node"] == "L1.RESID" and r["position"] == 3)
    assert row == {"node": "L1.RESID", "position": 3, "token": result["tokens"][3],
                   "value": result["positions"]["L1.RESID"]["3"]}
    assert analysis.positions["L0.MLP"][0] == result["positions"]["L0.MLP"]["0"]


def test_at_each_compiles_prints_back_and_reaches_the_results_entry():
    from circ.compiler.api import compile_source
    from circ.compiler.syntax.fmt import format_source

    text = ("data seqs = induction(n=4, length=6, seed=0)\ndata other = induction(n=4, length=6, seed=1)\n"
            "metric lp = logprob(answer) at last\n"
            "analysis p = patch(resid, source=other, target=seqs, metric=lp, at=each)\n")
    spec = compile_source(text)
    assert spec.analyses[0].option("position") == ir.EACH
    assert "at=each" in format_source(text)


def test_listed_positions_each_equal_a_hand_written_patch_there(demo):
    from test_patching import hand_patch

    clean = tokenize(demo, mcq_examples(4, ragged=True), source_name="clean")  # lengths differ: names still apply
    source = make_source(demo, clean, ir.PatchSource("corrupt"), {})
    listed = ir.Position("each", items=(ir.Position("named", name="labels"), ir.LAST))
    nodes = [ir.Node(1, "resid"), ir.Node(0, "head", 2)]
    result = patch(demo, clean, nodes, ir.Metric("ld", "logit_diff"), source, position=listed, show_progress=False)
    assert result["tokens"] is None
    for node in nodes:
        for key, position in (("labels", listed.items[0]), ("last", ir.LAST)):
            expected = hand_patch(demo, clean, node, clean.corrupt, position_mask=clean.position_mask(position))
            assert result["positions"][node.id][key] == pytest.approx(expected, abs=1e-5), (node.id, key)
        assert result["values"][node.id] == pytest.approx(sum(result["positions"][node.id].values()), abs=1e-6)
    assert abs(result["positions"]["L1.RESID"]["last"]) > 0.01


def test_listed_positions_in_the_language_and_the_python_api():
    from circ.compiler.api import compile_source
    from circ.results import AnalysisResult

    text = ("data clean = mcq(n=4)\nmetric ld = logit_diff(answer, wrong) at last\n"
            "analysis p = patch(resid, source=corrupt, target=clean, metric=ld, at=[answer_label, last, -2])\n")
    position = compile_source(text).analyses[0].option("position")
    assert position == ir.Position("each", items=(ir.Position("named", name="answer_label"), ir.LAST,
                                                  ir.Position("index", index=-2)))
    assert str(position) == "[answer_label, last, -2]"
    rows = AnalysisResult("p", {"kind": "patch", "tokens": None, "positions": {
        "L0.RESID": {"answer_label": 0.5, "last": 1.5, "-2": 0.25}}}).rows()
    assert [(r["position"], r["token"], r["value"]) for r in rows] == [
        (-2, None, 0.25), ("answer_label", None, 0.5), ("last", None, 1.5)]


def test_a_run_keeps_positions_through_results_json_the_report_and_to_pandas(tmp_path):
    import json

    import circ

    spec = ("model demo\ndata seqs = induction(n=4, length=4, seed=0)\n"
            "data other = induction(n=4, length=4, seed=1)\nmetric lp = logprob(answer) at last\n"
            "analysis by_position = patch(resid, source=other, target=seqs, metric=lp, at=each)\n"
            "circuit strongest = top(by_position, 1)\n")
    results = circ.run(spec, progress=False, out=tmp_path)
    entry = json.loads((tmp_path / "results.json").read_text())["analyses"]["by_position"]
    assert entry["position"] == "each" and len(entry["tokens"]) == 5
    assert set(entry["positions"]) == set(entry["values"]) == {"L0.RESID", "L1.RESID"}
    table = results.analysis("by_position").to_pandas()
    assert list(table.columns) == ["node", "position", "value", "token"] and len(table) == 2 * 5
    strongest = max(entry["values"], key=lambda n: abs(entry["values"][n]))  # top: the largest |score|
    assert results.circuit("strongest").members == [strongest]
    assert "by_position: effect by position" in (tmp_path / "report.html").read_text()

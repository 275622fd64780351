"""One sign convention everywhere, and standard errors over prompts.

A spec runs on the demo model; the head L1.H0, whose knock-out lowers the logit
difference by a hand-written TransformerLens hook, must be positive ("helps") in
results.json, the summary, a rule's selection, an expectation, the diagram's colour
and the report chart's colour; with a loss metric (lower is better) the same head,
whose knock-out raises the loss, must be positive too. Standard errors are checked
against numpy over the hand-written per-prompt values."""
import base64
import io
import json
import math
import re

import numpy as np
import pytest
import torch

from circ.cli.run import run_spec

SPEC = '''spec "signs"
model demo
data clean = mcq(n=16, labels="ABCD", seed=0)
data moved = clean.move_answer(seed=3)
metric {metric}
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
analysis patched = patch(heads + mlps, source=moved, target=clean, metric={name})
analysis paths = path_patch(L0.* + L0.MLP, to=[L1.H0], source=moved, target=clean, metric={name})
circuit helpers = top(patched, 3) where effect > 0.2 * max
expect patched[L1.H0] > 0
render helpers to "helpers.dot"
'''
LD = "ld = logit_diff(answer, wrong) at last"
LOSS = "nll = loss at last\nmetric ld = logit_diff(answer, wrong) at last"
HEAD = "L1.H0"


def _run(folder, metric: str, name: str, per_prompt: bool = True):
    (folder / "signs.circ").write_text(SPEC.format(metric=metric, name=name))
    code = run_spec(str(folder / "signs.circ"), str(folder / "out"), model=None, device=None,
                    batch_size=8, seed=0, trust_remote_code=False, progress=False, per_prompt=per_prompt)
    out = folder / "out"
    return code, json.loads((out / "results.json").read_text()), out


@pytest.fixture(scope="module")
def ld_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("signs_ld"), LD, "ld")


@pytest.fixture(scope="module")
def loss_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("signs_loss"), LOSS, "nll")


@pytest.fixture(scope="module")
def knocked_out(ld_run):
    """Per prompt, with L1.H0's z taken from the moved prompts by a hand-written hook:
    (clean logit diff, patched logit diff, clean loss, patched loss) at the last token."""
    from circ.compiler import ir
    from circ.compiler.api import compile_file
    from circ.runtime.data.datasets import build_examples
    from circ.runtime.data.prompts import tokenize
    from circ.runtime.models.loading import load_model

    _, results, out = ld_run
    spec = compile_file(out.parent / "signs.circ")
    loaded = load_model(ir.Model(source="demo"), spec_dir=out.parent)
    clean, moved = (tokenize(loaded, build_examples(spec.dataset(name), spec), source_name=name)
                    for name in ("clean", "moved"))
    bridge, rows, last = loaded.bridge, torch.arange(len(clean)), clean.lengths - 1
    hook = "blocks.1.attn.hook_z"

    def scores(logits):
        final = logits[rows, last]
        wrong = torch.stack([final[rows, clean.wrong[:, i]] for i in range(clean.wrong.shape[1])], 1)
        valid = clean.wrong_valid.float()
        ld = final[rows, clean.answer] - (wrong * valid).sum(1) / valid.sum(1)
        loss = -final.log_softmax(-1)[rows, clean.answer]
        return ld.numpy().astype(np.float64), loss.numpy().astype(np.float64)

    def write(z, hook):
        z = z.clone()
        z[:, :, 0] = moved_z[:, :, 0]
        return z

    with torch.no_grad():
        _, cache = bridge.run_with_cache(moved.tokens, names_filter=[hook])
        moved_z = cache[hook]
        clean_ld, clean_loss = scores(bridge(clean.tokens))
        patched_ld, patched_loss = scores(bridge.run_with_hooks(clean.tokens, fwd_hooks=[(hook, write)]))
    return clean_ld, patched_ld, clean_loss, patched_loss


def test_the_head_helps_by_a_hand_written_knock_out(knocked_out):
    clean_ld, patched_ld, clean_loss, patched_loss = knocked_out
    assert (patched_ld - clean_ld).mean() < -0.5  # knocking it out lowers the logit difference
    assert (patched_loss - clean_loss).mean() > 0.1  # and raises the loss


def test_results_value_stderr_and_n_match_the_hand_written_hook(ld_run, knocked_out):
    code, results, out = ld_run
    clean_ld, patched_ld, _, _ = knocked_out
    helps = clean_ld - patched_ld
    patched = results["analyses"]["patched"]
    assert code == 0
    assert patched["values"][HEAD] == pytest.approx(helps.mean(), abs=1e-4)
    assert patched["values"][HEAD] > 0
    assert patched["n"] == len(helps) == 16
    assert patched["stderr"][HEAD] == pytest.approx(np.std(helps, ddof=1) / math.sqrt(len(helps)), abs=1e-4)
    per_prompt = json.loads((out / "per_prompt.json").read_text())
    assert np.allclose(per_prompt["patched"][HEAD], helps, atol=1e-4)
    assert set(patched["stderr"]) == set(patched["values"])
    assert "per_prompt" not in patched  # kept in the side file only


def test_every_node_value_has_a_stderr_that_numpy_agrees_with(ld_run):
    _, results, out = ld_run
    per_prompt = json.loads((out / "per_prompt.json").read_text())
    for name in ("dla", "patched", "paths"):
        analysis = results["analyses"][name]
        assert analysis["n"] == 16
        for node, values in per_prompt[name].items():
            column = np.array(values)
            assert analysis["values"][node] == pytest.approx(column.mean(), abs=1e-9), (name, node)
            assert analysis["stderr"][node] == pytest.approx(column.std(ddof=1) / 4.0, abs=1e-9), (name, node)


def test_one_sign_in_summary_rule_expectation_diagram_and_charts(ld_run):
    from circ.runtime.render import charts
    from circ.runtime.render.diagram import HELPS, circuit_dot
    from circ.runtime.render.summary import summarize

    _, results, out = ld_run
    value = results["analyses"]["patched"]["values"][HEAD]
    stderr = results["analyses"]["patched"]["stderr"][HEAD]
    assert f"  {HEAD:<12} {value:+.4f} \u00b1 {stderr:.4f}" in summarize(results).splitlines()
    members = {n["id"]: n["score"] for n in results["circuits"]["helpers"]["nodes"]}
    assert members[HEAD] == value  # selected by `effect > 0.2 * max`, score = value
    assert all(score > 0 for score in members.values())
    assert [e["passed"] for e in results["expectations"]] == [True]
    dot = (out / "helpers.dot").read_text()
    assert dot == circuit_dot(results, "helpers")
    assert re.search(rf'"{re.escape(HEAD)}" \[label=[^\]]*, color="{HELPS}"', dot)
    assert _heatmap_cell_is_blue(charts.patch_heatmap(results["analyses"]["patched"]["values"],
                                                     n_layers=2, n_heads=4, title="t"), layer=1, column=0)
    planted = charts.patch_heatmap({"L0.H0": -1.0, "L1.H0": 1.0}, n_layers=2, n_heads=4, title="t")
    assert _heatmap_cell_is_blue(planted, layer=1, column=0) and not _heatmap_cell_is_blue(planted, layer=0, column=0)
    bars = charts.signed_bar_chart({"L0.H0->L1.H0": 1.0, "L0.H1->L1.H0": -1.0}, title="t", xlabel="x")
    assert HELPS.lstrip("#") in bars.lower() and "helps" in bars


def _heatmap_cell_is_blue(svg: str, *, layer: int, column: int, n_layers: int = 2, n_columns: int = 5) -> bool:
    """The colour of one cell of the heatmap's embedded image: more blue than red."""
    from matplotlib.image import imread

    data = re.search(r'data:image/png;base64,([A-Za-z0-9+/=\s]+)"', svg).group(1)
    image = imread(io.BytesIO(base64.b64decode(data)))
    height, width = image.shape[:2]
    row = int((layer + 0.5) * height / n_layers)  # stored layer 0 first; the SVG flips it to the bottom
    pixel = image[row, int((column + 0.5) * width / n_columns)]
    return pixel[2] > pixel[0] + 0.1


def test_a_loss_metric_gives_the_same_head_the_same_sign(loss_run, knocked_out):
    code, results, _ = loss_run
    _, _, clean_loss, patched_loss = knocked_out
    assert results["metrics"]["nll"]["better"] == "lower"
    value = results["analyses"]["patched"]["values"][HEAD]
    assert value == pytest.approx((patched_loss - clean_loss).mean(), abs=1e-4)
    assert value > 0
    assert HEAD in {n["id"] for n in results["circuits"]["helpers"]["nodes"]}
    assert code == 0


def test_path_patching_signs_an_edge_like_a_node(ld_run):
    _, results, _ = ld_run
    paths = results["analyses"]["paths"]["values"]
    edges = {f'{e["src"]}->{e["dst"]}': e["weight"] for e in results["circuits"]["helpers"]["edges"]}
    for edge, weight in edges.items():
        assert weight == paths[edge]

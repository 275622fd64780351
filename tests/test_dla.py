"""Direct logit attribution: the parts sum to the metric, and each part equals what
removing it from the final residual stream (LayerNorm scale held fixed) costs."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.dla import attribute
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples

LD = ir.Metric("ld", "logit_diff")


def all_nodes(shape):
    nodes = [ir.Node(0, "embed")]
    for layer in range(shape.n_layers):
        nodes += [ir.Node(layer, "head", head) for head in range(shape.n_heads)]
        nodes.append(ir.Node(layer, "mlp"))
    return nodes


@pytest.mark.parametrize("which", ["tiny", "tiny_compat"])
@pytest.mark.parametrize("position", [ir.LAST, ir.ALL, ir.Position("named", name="labels")])
def test_parts_sum_to_the_logit_difference(request, which, position):
    loaded = request.getfixturevalue(which)
    prompts = tokenize(loaded, mcq_examples(7, ragged=True), source_name="d")
    metric = ir.Metric("ld", "logit_diff", position)
    result = attribute(loaded, prompts, all_nodes(loaded.shape), metric, batch_size=3, show_progress=False)
    with torch.no_grad():
        direct = metric_values(loaded.bridge(prompts.tokens), prompts, metric).mean().item()
    assert result["total"] == pytest.approx(direct, abs=1e-5)
    assert sum(result["values"].values()) == pytest.approx(result["total"], abs=1e-4)
    assert abs(result["values"]["BIAS"]) > 1e-3  # the tiny model's biases are not zero


def removal_effect(loaded, prompts, part_of_resid, metric=LD):
    """Change of `metric` when `part_of_resid(cache)` is taken out of the final residual
    stream while the final LayerNorm keeps its clean scale."""
    bridge = loaded.bridge
    last = f"blocks.{loaded.shape.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(prompts.tokens)
        part = part_of_resid(cache)
        removed = bridge.run_with_hooks(prompts.tokens, fwd_hooks=[
            (last, lambda x, hook: x - part),
            ("ln_final.hook_scale", lambda x, hook: cache["ln_final.hook_scale"]),
        ])
    return (metric_values(logits, prompts, metric) - metric_values(removed, prompts, metric)).mean().item()


@pytest.mark.parametrize("which", ["tiny", "tiny_compat"])
def test_each_part_is_its_removal_effect(request, which):
    loaded = request.getfixturevalue(which)
    prompts = tokenize(loaded, mcq_examples(5, ragged=True), source_name="d")
    values = attribute(loaded, prompts, all_nodes(loaded.shape), LD, show_progress=False)["values"]
    W_O = loaded.bridge.W_O.detach()
    expected = {
        "EMBED": removal_effect(loaded, prompts, lambda c: c["blocks.0.hook_resid_pre"]),
        "L0.MLP": removal_effect(loaded, prompts, lambda c: c["blocks.0.hook_mlp_out"]),
        "L1.H2": removal_effect(loaded, prompts, lambda c: c["blocks.1.attn.hook_z"][:, :, 2] @ W_O[1, 2]),
        "L0.H3": removal_effect(loaded, prompts, lambda c: c["blocks.0.attn.hook_z"][:, :, 3] @ W_O[0, 3]),
    }
    for node_id, effect in expected.items():
        assert values[node_id] == pytest.approx(effect, abs=1e-4), node_id
    assert len({round(v, 6) for v in expected.values()}) == 4


def test_only_requested_nodes_and_bias_are_reported(tiny):
    prompts = tokenize(tiny, mcq_examples(2), source_name="d")
    result = attribute(tiny, prompts, [ir.Node(1, "head", 0), ir.Node(0, "mlp")], LD, show_progress=False)
    assert set(result["values"]) == {"L1.H0", "L0.MLP", "BIAS"}


@pytest.mark.parametrize("metric, nodes, fragment", [
    (ir.Metric("p", "prob"), [ir.Node(0, "head", 0)], "logit_diff"),
    (LD, [ir.Node(0, "head_input", 0, "q")], "does not take L0.H0.q"),
    (LD, [ir.Node(5, "head", 0)], "layers 0..1"),
    (LD, [ir.Node(0, "head", 9)], "heads 0..3"),
])
def test_bad_requests(tiny, metric, nodes, fragment):
    prompts = tokenize(tiny, mcq_examples(2), source_name="d")
    with pytest.raises(AnalysisError, match=fragment):
        attribute(tiny, prompts, nodes, metric)

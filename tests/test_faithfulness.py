"""Faithfulness against hand-written ablations, and on a model whose unused parts
were zeroed by hand."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.faithfulness import faithfulness
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples
from test_patching import plant_single_head

LD = ir.Metric("ld", "logit_diff")


def every_node(shape):
    return [ir.Node(l, "head", h) for l in range(shape.n_layers) for h in range(shape.n_heads)] + \
           [ir.Node(l, "mlp") for l in range(shape.n_layers)]


def hand_ablated(loaded, prompts, keep_heads, keep_mlps, means):
    def heads(layer):
        def hook(z, hook):
            z = z.clone()
            for h in range(loaded.shape.n_heads):
                if (layer, h) not in keep_heads:
                    z[:, :, h] = means[f"blocks.{layer}.attn.hook_z"][:, :, h]
            return z
        return hook

    hooks = [(f"blocks.{l}.attn.hook_z", heads(l)) for l in range(2)]
    hooks += [(f"blocks.{l}.hook_mlp_out", lambda x, hook, m=means[f"blocks.{l}.hook_mlp_out"]: m.expand_as(x))
              for l in range(2) if l not in keep_mlps]
    with torch.no_grad():
        return metric_values(loaded.bridge.run_with_hooks(prompts.tokens, fwd_hooks=hooks), prompts, LD).mean().item()


def test_parts_equal_hand_written_mean_ablation(tiny):
    prompts = tokenize(tiny, mcq_examples(6), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("mean", "clean"), {"clean": prompts}, batch_size=4)
    circuit = [ir.Node(1, "head", 2), ir.Node(0, "head", 1), ir.Node(1, "mlp")]
    result = faithfulness(tiny, prompts, circuit, LD, source, batch_size=4, show_progress=False)
    with torch.no_grad():
        logits, cache = tiny.bridge.run_with_cache(prompts.tokens)
    means = {name: cache[name].mean(0, keepdim=True) for name in cache.keys() if "hook_z" in name or "mlp_out" in name}
    assert result["clean"] == pytest.approx(metric_values(logits, prompts, LD).mean().item(), abs=1e-5)
    assert result["circuit_only"] == pytest.approx(hand_ablated(tiny, prompts, {(1, 2), (0, 1)}, {1}, means), abs=1e-5)
    assert result["all_ablated"] == pytest.approx(hand_ablated(tiny, prompts, set(), set(), means), abs=1e-5)
    expected = (result["circuit_only"] - result["all_ablated"]) / (result["clean"] - result["all_ablated"])
    assert result["value"] == pytest.approx(expected)
    assert 0.0 < abs(result["value"] - 1.0)


def test_whole_model_and_empty_circuit(tiny):
    prompts = tokenize(tiny, mcq_examples(4), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("zero"), {})
    whole = faithfulness(tiny, prompts, every_node(tiny.shape), LD, source, show_progress=False)
    assert whole["value"] == pytest.approx(1.0, abs=1e-6)
    empty = faithfulness(tiny, prompts, [], LD, source, show_progress=False)
    assert empty["value"] == pytest.approx(0.0, abs=1e-6)


def test_dead_parts_left_out_change_nothing(fresh_tiny):
    plant_single_head(fresh_tiny)
    prompts = tokenize(fresh_tiny, mcq_examples(4), source_name="clean")
    source = make_source(fresh_tiny, prompts, ir.PatchSource("zero"), {})
    dead = {"L1.H0", "L1.H1", "L1.H3", "L1.MLP"}
    circuit = [n for n in every_node(fresh_tiny.shape) if n.id not in dead]
    result = faithfulness(fresh_tiny, prompts, circuit, LD, source, show_progress=False)
    assert result["circuit_only"] == pytest.approx(result["clean"], abs=1e-6)
    assert result["value"] == pytest.approx(1.0, abs=1e-6)
    without_planted = [n for n in circuit if n.id != "L1.H2"]
    assert faithfulness(fresh_tiny, prompts, without_planted, LD, source, show_progress=False)["value"] != pytest.approx(1.0, abs=1e-3)

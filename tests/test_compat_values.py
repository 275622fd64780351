"""What compatibility mode (folded LayerNorm, folded value biases) changes in per-node
values (docs/results.md): patching a head from other prompts gives the same value in
both modes, but zeroing its z in compat mode leaves its value bias behind, exactly as
writing z := b_V of that head does in raw mode."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.patch_sources import ZeroSource, make_source
from circ.runtime.analyses.patching import patch
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples

LD = ir.Metric("ld", "logit_diff")
HEADS = [ir.Node(0, "head", 1), ir.Node(1, "head", 2)]


@pytest.fixture(scope="module")
def prompts(tiny):
    return tokenize(tiny, mcq_examples(6), source_name="clean")


def _value_bias_only(loaded, prompts, node) -> float:
    """Raw numerics, by a hand-written hook: the head's z replaced by what folding moves
    into the attention output bias, its value bias plus its LayerNorm's bias through W_V
    (b_V + ln1.b @ W_V: the part of z no input changes); clean - patched logit diff."""
    bridge, rows, last = loaded.bridge, torch.arange(len(prompts)), prompts.lengths - 1
    ln_bias = bridge.blocks[node.layer].ln1._original_component.bias.detach()
    b_v = bridge.b_V.detach()[node.layer, node.head] + ln_bias @ bridge.W_V.detach()[node.layer, node.head]

    def write(z, hook):
        z = z.clone()
        z[:, :, node.head] = b_v
        return z

    def ld(logits):
        final = logits[rows, last]
        return final[rows, prompts.answer] - final[rows, prompts.wrong[:, 0]]

    with torch.no_grad():
        clean = ld(bridge(prompts.tokens))
        patched = ld(bridge.run_with_hooks(prompts.tokens, fwd_hooks=[(f"blocks.{node.layer}.attn.hook_z", write)]))
    return float((clean - patched).mean())


def test_zeroing_a_head_in_compat_mode_leaves_its_value_bias(tiny, tiny_compat, prompts):
    raw = patch(tiny, prompts, HEADS, LD, ZeroSource(), show_progress=False)["values"]
    compat = patch(tiny_compat, prompts, HEADS, LD, ZeroSource(), show_progress=False)["values"]
    for node in HEADS:
        assert compat[node.id] == pytest.approx(_value_bias_only(tiny, prompts, node), abs=1e-3)
        assert abs(compat[node.id] - raw[node.id]) > 1e-3


def test_patching_from_other_prompts_is_the_same_in_both_modes(tiny, tiny_compat, prompts):
    values = [patch(loaded, prompts, HEADS, LD, make_source(loaded, prompts, ir.PatchSource("corrupt"), {}),
                    show_progress=False)["values"] for loaded in (tiny, tiny_compat)]
    assert values[0] == pytest.approx(values[1], abs=1e-4)

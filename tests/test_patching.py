"""Activation patching against hand-written run_with_hooks patches, and on a model
with a head planted by hand."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.patching import patch
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples

LD = ir.Metric("ld", "logit_diff")
N_LAYERS = 2


def hand_patch(loaded, prompts, node, source_tokens=None, effect="total", position_mask=None, replacement=None,
               metric=LD):
    """The patch written out with TransformerLens hooks, freezing each later head's z;
    returned as how much the node helps: metric(clean) - metric(patched), negated for
    a lower-is-better metric (loss, kl)."""
    bridge = loaded.bridge
    name = {"head": f"blocks.{node.layer}.attn.hook_z", "mlp": f"blocks.{node.layer}.hook_mlp_out",
            "embed": "blocks.0.hook_resid_pre", "resid": f"blocks.{node.layer}.hook_resid_pre",
            "head_input": f"blocks.{node.layer}.attn.hook_{node.part}"}[node.kind]
    with torch.no_grad():
        clean_logits, clean = bridge.run_with_cache(prompts.tokens)
        if replacement is None:
            _, cache = bridge.run_with_cache(source_tokens)
            replacement = cache[name]

        def write(x, hook):
            x = x.clone()
            rows = slice(None) if node.head is None else node.head
            new = replacement.expand_as(x)
            if position_mask is None:
                x[:, :, rows] = new[:, :, rows]
            else:
                for i, p in position_mask.nonzero().tolist():
                    x[i, p, rows] = new[i, p, rows]
            return x

        hooks = [(name, write)]
        if effect == "direct":
            first_head_layer = node.layer + 1 if node.kind in ("head", "head_input", "mlp") else node.layer
            first_mlp_layer = node.layer + 1 if node.kind == "mlp" else node.layer
            if node.kind == "embed":
                first_head_layer = first_mlp_layer = 0
            for layer in range(first_head_layer, N_LAYERS):
                hooks.append((f"blocks.{layer}.attn.hook_z", lambda x, hook, c=clean[f"blocks.{layer}.attn.hook_z"]: c))
            for layer in range(first_mlp_layer, N_LAYERS):
                hooks.append((f"blocks.{layer}.hook_mlp_out", lambda x, hook, c=clean[f"blocks.{layer}.hook_mlp_out"]: c))
        patched = bridge.run_with_hooks(prompts.tokens, fwd_hooks=hooks)
    change = (metric_values(clean_logits, prompts, metric, clean_logits=clean_logits)
              - metric_values(patched, prompts, metric, clean_logits=clean_logits)).mean().item()
    return -change if metric.kind in ("loss", "kl") else change


NODES = [ir.Node(0, "head", 1), ir.Node(1, "head", 3), ir.Node(0, "mlp"), ir.Node(1, "mlp"), ir.Node(0, "embed"),
         ir.Node(1, "resid"), ir.Node(1, "head_input", 2, "q"), ir.Node(1, "head_input", 0, "k"),
         ir.Node(0, "head_input", 3, "v")]


@pytest.fixture
def clean(tiny):
    return tokenize(tiny, mcq_examples(6, ragged=True), source_name="clean")


@pytest.mark.parametrize("effect", ["total", "direct"])
def test_corrupt_patch_equals_hand_written_hooks(tiny, clean, effect):
    source = make_source(tiny, clean, ir.PatchSource("corrupt"), {})
    result = patch(tiny, clean, NODES, LD, source, effect=effect, batch_size=4, show_progress=False)
    for node in NODES:
        expected = hand_patch(tiny, clean, node, clean.corrupt, effect)
        assert result["values"][node.id] == pytest.approx(expected, abs=1e-5), node.id
    # patching all of EMBED and all of L1.RESID both give the whole corrupted run's total effect
    assert len({round(v, 5) for v in result["values"].values()}) == len(NODES) - (effect == "total")
    with torch.no_grad():
        assert result["baseline"]["patched_source"] == pytest.approx(
            metric_values(tiny.bridge(clean.corrupt), clean, LD).mean().item(), abs=1e-5)


def test_direct_and_total_differ_before_the_last_layer(tiny, clean):
    source = make_source(tiny, clean, ir.PatchSource("corrupt"), {})
    node = [ir.Node(0, "head", 1)]
    total = patch(tiny, clean, node, LD, source, effect="total", show_progress=False)["values"]["L0.H1"]
    direct = patch(tiny, clean, node, LD, source, effect="direct", show_progress=False)["values"]["L0.H1"]
    assert abs(total - direct) > 1e-3


def test_patch_at_the_last_position_only(tiny, clean):
    source = make_source(tiny, clean, ir.PatchSource("corrupt"), {})
    node = ir.Node(0, "head", 2)
    got = patch(tiny, clean, [node], LD, source, position=ir.LAST, show_progress=False)["values"][node.id]
    assert got == pytest.approx(hand_patch(tiny, clean, node, clean.corrupt, position_mask=clean.position_mask(ir.LAST)), abs=1e-5)


def test_other_dataset_zero_and_mean_sources(tiny):
    clean = tokenize(tiny, mcq_examples(5, seed=1), source_name="clean")
    other = tokenize(tiny, mcq_examples(6, seed=2), source_name="other")
    datasets = {"clean": clean, "other": other}
    node = ir.Node(1, "head", 1)

    from_other = make_source(tiny, clean, ir.PatchSource("dataset", "other"), datasets)
    got = patch(tiny, clean, [node], LD, from_other, show_progress=False)["values"][node.id]
    assert got == pytest.approx(hand_patch(tiny, clean, node, other.tokens[:5]), abs=1e-5)

    zero = make_source(tiny, clean, ir.PatchSource("zero"), datasets)
    got = patch(tiny, clean, [node], LD, zero, show_progress=False)["values"][node.id]
    assert got == pytest.approx(hand_patch(tiny, clean, node, replacement=torch.zeros(())), abs=1e-5)

    with torch.no_grad():
        _, cache = tiny.bridge.run_with_cache(other.tokens)
    mean_z = cache["blocks.1.attn.hook_z"].mean(0, keepdim=True)  # equal lengths: a mean per position
    mean = make_source(tiny, clean, ir.PatchSource("mean", "other"), datasets, batch_size=4)
    got = patch(tiny, clean, [node], LD, mean, show_progress=False)["values"][node.id]
    assert got == pytest.approx(hand_patch(tiny, clean, node, replacement=mean_z), abs=1e-5)


def test_normalised_metric(tiny, clean):
    source = make_source(tiny, clean, ir.PatchSource("corrupt"), {})
    node = ir.Node(1, "head", 0)
    raw = patch(tiny, clean, [node], LD, source, show_progress=False)
    normalised = patch(tiny, clean, [node], ir.Metric("n", "logit_diff", normalized=True), source, show_progress=False)
    gap = raw["baseline"]["clean"] - raw["baseline"]["patched_source"]
    assert normalised["values"][node.id] == pytest.approx(raw["values"][node.id] / gap, rel=1e-5)
    with pytest.raises(AnalysisError, match="needs a patch source that runs the model"):
        patch(tiny, clean, [node], ir.Metric("n", "logit_diff", normalized=True),
              make_source(tiny, clean, ir.PatchSource("zero"), {}))


def plant_single_head(loaded, layer=1, keep=2):
    """Zero every head's W_O in `layer` except `keep`, and that layer's MLP output."""
    block = loaded.bridge.original_model.transformer.h[layer]
    d_head = loaded.shape.d_head
    with torch.no_grad():
        for head in range(loaded.shape.n_heads):
            if head != keep:
                block.attn.c_proj.weight[head * d_head:(head + 1) * d_head] = 0
        block.mlp.c_proj.weight.zero_()
        block.mlp.c_proj.bias.zero_()


def test_planted_head(fresh_tiny):
    plant_single_head(fresh_tiny)
    clean = tokenize(fresh_tiny, mcq_examples(6, ragged=True), source_name="clean")
    source = make_source(fresh_tiny, clean, ir.PatchSource("corrupt"), {})
    nodes = [ir.Node(1, "head", h) for h in range(4)] + [ir.Node(1, "mlp"), ir.Node(0, "head", 0)]
    total = patch(fresh_tiny, clean, nodes, LD, source, effect="total", show_progress=False)["values"]
    direct = patch(fresh_tiny, clean, nodes, LD, source, effect="direct", show_progress=False)["values"]
    for silent in ("L1.H0", "L1.H1", "L1.H3", "L1.MLP"):
        assert total[silent] == 0.0 and direct[silent] == 0.0
    assert abs(total["L1.H2"]) > 1e-3 and direct["L1.H2"] == pytest.approx(total["L1.H2"], abs=1e-6)
    assert abs(direct["L0.H0"] - total["L0.H0"]) > 1e-4


def test_source_length_mismatch_is_an_error(tiny):
    clean = tokenize(tiny, mcq_examples(3), source_name="clean")
    ragged = tokenize(tiny, mcq_examples(3, ragged=True), source_name="ragged")
    with pytest.raises(AnalysisError, match="must match in length"):
        make_source(tiny, clean, ir.PatchSource("dataset", "ragged"), {"ragged": ragged})
    with pytest.raises(AnalysisError, match="unknown effect"):
        patch(tiny, clean, [ir.Node(0, "mlp")], LD, make_source(tiny, clean, ir.PatchSource("zero"), {}), effect="both")


def test_resample_draws_another_prompt_of_the_same_length(tiny):
    clean = tokenize(tiny, mcq_examples(8, ragged=True), source_name="clean")
    hook = "blocks.0.hook_mlp_out"
    with torch.no_grad():
        _, cache = tiny.bridge.run_with_cache(clean.tokens)
    chosen = []
    for seed in (1, 2):
        source = make_source(tiny, clean, ir.PatchSource("resample", "clean", seed=seed), {"clean": clean})
        fetched = source.fetch(clean, [hook]).activations[hook]
        picks = []
        for i in range(len(clean)):
            n = int(clean.lengths[i])
            matches = [j for j in range(len(clean)) if int(clean.lengths[j]) == n
                       and torch.allclose(cache[hook][j, :n], fetched[i, :n], atol=1e-5)]
            assert len(matches) == 1 and matches[0] != i
            picks.append(matches[0])
        again = make_source(tiny, clean, ir.PatchSource("resample", "clean", seed=seed), {"clean": clean})
        assert torch.equal(again.fetch(clean, [hook]).activations[hook], fetched)
        chosen.append(picks)
    assert chosen[0] != chosen[1]


def test_mean_over_prompts_of_different_lengths_pools_positions(tiny):
    clean = tokenize(tiny, mcq_examples(5, ragged=True), source_name="clean")
    hook = "blocks.1.attn.hook_z"
    with torch.no_grad():
        _, cache = tiny.bridge.run_with_cache(clean.tokens)
    act = cache[hook]
    real = clean.real_mask()
    pooled = act[:, 1:][real[:, 1:]].mean(0)
    source = make_source(tiny, clean, ir.PatchSource("mean", "clean"), {"clean": clean}, batch_size=2)
    batch = clean.select([1, 3])
    fetched = source.fetch(batch, [hook]).activations[hook]
    assert fetched.shape == (1, batch.tokens.shape[1], 4, 8)
    assert torch.allclose(fetched[0, 0], act[:, 0].mean(0), atol=1e-5)
    assert torch.allclose(fetched[0, 1:], pooled.expand(batch.tokens.shape[1] - 1, 4, 8), atol=1e-5)

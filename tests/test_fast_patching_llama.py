"""The fast exact kernel on a Llama-family model (rotary embeddings, grouped keys and
values, RMSNorm, SwiGLU MLP, no biases) against patches written out by hand with
TransformerLens hooks, and proof that the fast path, not the hook fallback, ran."""
import weakref

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses import exact_patching
from circ.runtime.analyses import resumed_blocks as resume
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.patching import patch
from circ.runtime.analyses.resumed_blocks import Resumer, engine_reason, resumer_for
from circ.runtime.data.prompts import tokenize
from conftest import VOCAB, load_tiny, mcq_examples

N_LAYERS, N_HEADS, N_KV_HEADS = 3, 4, 2
LD = ir.Metric("ld", "logit_diff")
HEADS = [ir.Node(layer, "head", head) for layer in range(N_LAYERS) for head in range(N_HEADS)]
MLPS = [ir.Node(layer, "mlp") for layer in range(N_LAYERS)]
INPUTS = [ir.Node(1, "head_input", 3, "k"), ir.Node(2, "head_input", 0, "q"), ir.Node(0, "head_input", 1, "v")]


def build_llama_dir(folder, *, seed=0):
    """Save a random Llama (3 layers, 4 query heads over 2 key/value heads, d_model 64,
    rotary, RMSNorm, SwiGLU, no biases; every weight perturbed, norms included) with a
    word-level tokenizer of 300 words into `folder`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = VOCAB + [f"w{i}" for i in range(300 - len(VOCAB))]
    core = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>",
                                        pad_token="<pad>", unk_token="<unk>", padding_side="right")
    config = LlamaConfig(vocab_size=len(words), hidden_size=64, intermediate_size=128, num_hidden_layers=N_LAYERS,
                         num_attention_heads=N_HEADS, num_key_value_heads=N_KV_HEADS, max_position_embeddings=64,
                         attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                         bos_token_id=0, eos_token_id=0, pad_token_id=1)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def fresh_engines(monkeypatch):
    """Each test builds (and checks) its own engines."""
    monkeypatch.setattr(resume, "_ENGINES", weakref.WeakKeyDictionary())


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return build_llama_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def llama(llama_dir, one_thread):
    return load_tiny(llama_dir)


@pytest.fixture(scope="module")
def llama_compat(llama_dir, one_thread):
    return load_tiny(llama_dir, compat=True)


@pytest.fixture(scope="module")
def prompts(llama):
    return tokenize(llama, mcq_examples(6, ragged=True), source_name="clean")


@pytest.fixture
def fast_only(monkeypatch):
    """Fails the test if the hook fallback runs; counts the engine's resumed runs."""
    runs = []

    def no_fallback(*args, **kwargs):
        raise AssertionError("the hook kernel ran instead of the fast engine")

    monkeypatch.setattr(exact_patching, "_patch_with_hooks", no_fallback)
    monkeypatch.setattr(Resumer, "run", lambda self, resid, *a, _run=Resumer.run, **k: runs.append(len(resid))
                        or _run(self, resid, *a, **k))
    return runs


def hand_patch(loaded, prompts, node, effect):
    """metric(patched) - metric(clean), averaged, with the corrupted run's activation
    written into the clean run by TransformerLens hooks: a head's z (that head), an
    MLP's output, or a q/k/v input (the slot that head reads: grouped keys and values
    are shared by the heads of a group). The direct effect pins every later head's z
    and MLP output at its clean value."""
    bridge = loaded.bridge
    name = {"head": f"blocks.{node.layer}.attn.hook_z", "mlp": f"blocks.{node.layer}.hook_mlp_out",
            "head_input": f"blocks.{node.layer}.attn.hook_{node.part}"}[node.kind]
    with torch.no_grad():
        clean_logits, clean = bridge.run_with_cache(prompts.tokens)
        _, corrupt = bridge.run_with_cache(prompts.corrupt)

        def write(x, hook):
            x = x.clone()
            if node.head is None:
                x[...] = corrupt[name]
            else:
                slot = node.head * x.shape[2] // N_HEADS
                x[:, :, slot] = corrupt[name][:, :, slot]
            return x

        hooks = [(name, write)]
        if effect == "direct":
            for layer in range(node.layer + 1, N_LAYERS):
                hooks.append((f"blocks.{layer}.attn.hook_z", lambda x, hook, c=clean[f"blocks.{layer}.attn.hook_z"]: c))
            for layer in range(node.layer + (node.kind == "mlp"), N_LAYERS):
                hooks.append((f"blocks.{layer}.hook_mlp_out",
                              lambda x, hook, c=clean[f"blocks.{layer}.hook_mlp_out"]: c))
        patched = bridge.run_with_hooks(prompts.tokens, fwd_hooks=hooks)
    return (metric_values(clean_logits, prompts, LD) - metric_values(patched, prompts, LD)).mean().item()  # positive helps


def test_the_engine_runs_llama_models(llama, llama_compat, prompts):
    for loaded in (llama, llama_compat):
        cfg = loaded.bridge.cfg
        assert cfg.positional_embedding_type == "rotary" and cfg.n_key_value_heads == N_KV_HEADS
        assert cfg.gated_mlp and cfg.normalization_type == "RMS"
        assert engine_reason(loaded.bridge) is None
        resumer = Resumer(loaded.bridge)
        with torch.no_grad():
            expected = loaded.bridge(prompts.tokens)
            got = resumer.logits(resumer.run(resumer.embed(prompts.tokens), 0))
        assert float((got - expected).abs().max()) <= 1e-5
        assert resumer.reproduces(prompts.tokens[:1, :12]) and resumer.unembedding is not None


@pytest.mark.parametrize("numerics", ["raw", "compat"])
@pytest.mark.parametrize("effect", ["total", "direct"])
def test_fast_kernel_equals_hand_written_hooks(request, prompts, fast_only, numerics, effect):
    loaded = request.getfixturevalue("llama" if numerics == "raw" else "llama_compat")
    nodes = HEADS + MLPS + INPUTS
    source = make_source(loaded, prompts, ir.PatchSource("corrupt"), {})
    result = patch(loaded, prompts, nodes, LD, source, effect=effect, batch_size=4, show_progress=False)
    for node in nodes:
        assert result["values"][node.id] == pytest.approx(hand_patch(loaded, prompts, node, effect), abs=1e-5), node.id
    assert max(abs(v) for v in result["values"].values()) > 1e-2  # the patches do something
    assert fast_only and fast_only[0] == 1  # the engine's self-check on one prompt
    if effect == "total":
        assert len(fast_only) > 1 and max(fast_only[1:]) > 4  # resumed runs, variants stacked


def test_a_grouped_key_patch_changes_every_head_of_its_group(llama, prompts, fast_only):
    source = make_source(llama, prompts, ir.PatchSource("corrupt"), {})
    key = ir.Node(2, "head_input", 2, "k")  # slot 1, read by heads 2 and 3
    shared = patch(llama, prompts, [key, ir.Node(2, "head_input", 3, "k")], LD, source, effect="direct",
                   show_progress=False)
    values = list(shared["values"].values())
    assert values[0] == pytest.approx(values[1], abs=1e-6) and abs(values[0]) > 1e-4
    assert values[0] == pytest.approx(hand_patch(llama, prompts, key, "direct"), abs=1e-5)


@pytest.mark.parametrize("metric,position", [
    (ir.Metric("kl", "kl"), ir.ALL),
    (ir.Metric("loss", "loss", position=ir.ALL), ir.Position("named", name="labels")),
])
def test_other_nodes_and_metrics_equal_the_hook_kernel(llama, prompts, metric, position):
    nodes = [ir.Node(0, "embed"), ir.Node(1, "resid"), ir.Node(N_LAYERS, "resid"), *INPUTS, HEADS[5], MLPS[1]]
    source = make_source(llama, prompts, ir.PatchSource("corrupt"), {})
    options = dict(position=position, batch_size=4, show_progress=False)
    fast = patch(llama, prompts, nodes, metric, source, kernel="fast", **options)
    hooks = patch(llama, prompts, nodes, metric, source, kernel="hooks", **options)
    for key, expected in hooks["values"].items():
        assert fast["values"][key] == pytest.approx(expected, abs=1e-5), key


def test_an_engine_with_wrong_rotary_embeddings_falls_back_to_hooks(llama, prompts, monkeypatch):
    resumer = Resumer(llama.bridge)
    tokens = prompts.tokens[:1, :12]
    assert resumer.reproduces(tokens)
    resumer._rotary = None
    assert not resumer.reproduces(tokens)
    monkeypatch.setattr(resume._Rotary, "__call__", lambda self, x, positions: x)
    assert resumer_for(llama, prompts, "auto") is None
    source = make_source(llama, prompts, ir.PatchSource("corrupt"), {})
    auto = patch(llama, prompts, HEADS[:2], LD, source, show_progress=False)
    for node in HEADS[:2]:
        assert auto["values"][node.id] == pytest.approx(hand_patch(llama, prompts, node, "total"), abs=1e-5)


def test_total_attribution_takes_the_bridges_gradients(llama, prompts):
    """AtP* on the engine against AtP on the bridge: a head's z and an MLP's output are
    estimated by the same linear product either way, so the gradients must agree."""
    source = make_source(llama, prompts, ir.PatchSource("corrupt"), {})
    nodes = HEADS + MLPS
    engine = patch(llama, prompts, nodes, LD, source, method="attribution", show_progress=False)
    bridge = patch(llama, prompts, nodes, LD, source, method="attribution", kernel="hooks", show_progress=False)
    assert (engine["estimator"], bridge["estimator"]) == ("AtP*", "AtP")
    for key, expected in bridge["values"].items():
        assert engine["values"][key] == pytest.approx(expected, abs=1e-5), key


def test_direct_attribution_equals_the_gradient_at_the_final_stream(llama, prompts):
    """The direct estimate is (change of the node's output) . d metric / d final stream,
    the gradient taken through the bridge's own final norm and unembedding."""
    source = make_source(llama, prompts, ir.PatchSource("corrupt"), {})
    nodes = HEADS + MLPS
    engine = patch(llama, prompts, nodes, LD, source, effect="direct", method="attribution", show_progress=False)
    bridge = llama.bridge
    with torch.no_grad():
        _, clean = bridge.run_with_cache(prompts.tokens)
        _, corrupt = bridge.run_with_cache(prompts.corrupt)
    final = clean[f"blocks.{N_LAYERS - 1}.hook_resid_post"].detach().requires_grad_(True)
    values = metric_values(bridge.unembed(bridge.ln_final(final)), prompts, LD)
    (gradient,) = torch.autograd.grad(values.sum(), [final])
    for node in nodes:
        if node.kind == "head":
            name = f"blocks.{node.layer}.attn.hook_z"
            change = (corrupt[name] - clean[name])[:, :, node.head] @ bridge.W_O[node.layer, node.head].detach()
        else:
            name = f"blocks.{node.layer}.hook_mlp_out"
            change = corrupt[name] - clean[name]
        expected = -float((change * gradient).sum()) / len(prompts)  # minus the estimated change: positive helps
        assert engine["values"][node.id] == pytest.approx(expected, abs=1e-5), node.id

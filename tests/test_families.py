"""Every analysis on both model families built from a config (Llama: rotary,
grouped-query attention, RMSNorm, SwiGLU, no biases; GPT-2), with the mcq
generator's prompts for their byte-level BPE tokenizer, checked against
hand-written TransformerLens hooks within 1e-5. The patching kernel is whichever
circ chooses for the model."""
from __future__ import annotations

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.attention import attention
from circ.runtime.analyses.dla import attribute
from circ.runtime.analyses.faithfulness import faithfulness
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.patching import patch
from circ.runtime.analyses.path_patching import path_patch
from circ.runtime.analyses.subspace import subspace
from circ.runtime.data.generators import build
from circ.runtime.data.prompts import prepends_bos, tokenize
from circ.runtime.data.token_vocabulary import TokenVocabulary
from test_path_patching import sender_output

pytestmark = pytest.mark.usefixtures("one_thread")

LD = ir.Metric("ld", "logit_diff")
TOL = 1e-5


@pytest.fixture
def prompts(bpe_model):
    vocabulary = TokenVocabulary.from_hf(bpe_model.tokenizer, prepends_bos(bpe_model))
    return tokenize(bpe_model, build("mcq", {"n": 5, "seed": 4}, vocabulary=vocabulary), source_name="clean")


def logit_diff(logits, prompts) -> float:
    """The mean logit difference at each prompt's last token, written out."""
    values = []
    for i in range(len(prompts)):
        row = logits[i, int(prompts.lengths[i]) - 1]
        wrong = prompts.wrong[i][prompts.wrong_valid[i]]
        values.append(row[prompts.answer[i]] - row[wrong].mean())
    return float(torch.stack(values).mean())


def run(loaded, tokens, hooks=()):
    with torch.no_grad():
        return loaded.bridge.run_with_hooks(tokens, fwd_hooks=list(hooks))


def cache_of(loaded, tokens):
    with torch.no_grad():
        return loaded.bridge.run_with_cache(tokens)


def every_component(shape):
    nodes = [ir.Node(0, "embed")]
    for layer in range(shape.n_layers):
        nodes += [ir.Node(layer, "head", head) for head in range(shape.n_heads)] + [ir.Node(layer, "mlp")]
    return nodes


def test_prompts_carry_the_spaced_labels(bpe_model, prompts):
    tokens = bpe_model.tokenizer.convert_ids_to_tokens(prompts.answer.tolist())
    assert all(token.startswith("Ġ") for token in tokens)


def test_dla_sums_to_the_logit_difference_and_each_part_is_its_removal(bpe_model, prompts):
    result = attribute(bpe_model, prompts, every_component(bpe_model.shape), LD, batch_size=2, show_progress=False)
    logits, cache = cache_of(bpe_model, prompts.tokens)
    assert result["total"] == pytest.approx(logit_diff(logits, prompts), abs=TOL)
    assert sum(result["values"].values()) == pytest.approx(result["total"], abs=TOL)
    W_O = bpe_model.bridge.W_O.detach()
    last = f"blocks.{bpe_model.shape.n_layers - 1}.hook_resid_post"
    parts = {"L1.H2": cache["blocks.1.attn.hook_z"][:, :, 2] @ W_O[1, 2],
             "L0.MLP": cache["blocks.0.hook_mlp_out"], "EMBED": cache["blocks.0.hook_resid_pre"]}
    for node_id, part in parts.items():
        removed = run(bpe_model, prompts.tokens, [(last, lambda x, hook, p=part: x - p),
                                                  ("ln_final.hook_scale", lambda x, hook: cache["ln_final.hook_scale"])])
        assert result["values"][node_id] == pytest.approx(logit_diff(logits, prompts) - logit_diff(removed, prompts),
                                                          abs=TOL), node_id


def site(node):
    return {"head": f"blocks.{node.layer}.attn.hook_z", "mlp": f"blocks.{node.layer}.hook_mlp_out",
            "embed": "blocks.0.hook_resid_pre", "resid": f"blocks.{node.layer}.hook_resid_pre",
            "head_input": f"blocks.{node.layer}.attn.hook_{node.part}"}[node.kind]


def slot(activation, node, n_heads):
    """The head axis index a node writes: keys and values are shared by a group of heads."""
    return None if node.head is None else node.head * activation.shape[2] // n_heads


def hand_patch(loaded, prompts, node, effect):
    """Patch the node's activation from the corrupted run; for the direct effect,
    hold every later head's z and MLP output at the clean run's."""
    logits, clean = cache_of(loaded, prompts.tokens)
    _, corrupt = cache_of(loaded, prompts.corrupt)
    name, n_layers = site(node), loaded.shape.n_layers

    def write(x, hook):
        x = x.clone()
        index = slot(x, node, loaded.shape.n_heads)
        if index is None:
            return corrupt[name]
        x[:, :, index] = corrupt[name][:, :, index]
        return x

    hooks = [(name, write)]
    if effect == "direct":
        later = node.layer + 1 if node.kind in ("head", "head_input", "mlp") else node.layer
        later_mlp = node.layer + 1 if node.kind == "mlp" else node.layer
        if node.kind == "embed":
            later = later_mlp = 0
        hooks += [(f"blocks.{l}.attn.hook_z", lambda x, hook, c=clean[f"blocks.{l}.attn.hook_z"]: c)
                  for l in range(later, n_layers)]
        hooks += [(f"blocks.{l}.hook_mlp_out", lambda x, hook, c=clean[f"blocks.{l}.hook_mlp_out"]: c)
                  for l in range(later_mlp, n_layers)]
    return logit_diff(logits, prompts) - logit_diff(run(loaded, prompts.tokens, hooks), prompts)  # positive helps


PATCHED = [ir.Node(0, "head", 1), ir.Node(1, "head", 3), ir.Node(0, "mlp"), ir.Node(1, "mlp"), ir.Node(0, "embed"),
           ir.Node(1, "resid"), ir.Node(1, "head_input", 2, "q"), ir.Node(1, "head_input", 3, "k"),
           ir.Node(0, "head_input", 1, "v")]


@pytest.mark.parametrize("effect", ["total", "direct"])
def test_patching_equals_hand_written_hooks(bpe_model, prompts, effect):
    source = make_source(bpe_model, prompts, ir.PatchSource("corrupt"), {})
    result = patch(bpe_model, prompts, PATCHED, LD, source, effect=effect, batch_size=2, show_progress=False)
    for node in PATCHED:
        assert result["values"][node.id] == pytest.approx(hand_patch(bpe_model, prompts, node, effect), abs=TOL), node.id
    assert len({round(v, 4) for v in result["values"].values()}) >= len(PATCHED) - 1


def hand_path(loaded, prompts, sender, receiver):
    """Add the sender's output change (corrupt minus clean) to the stream the receiver
    reads, record what the receiver computes, and put only that into a clean run."""
    W_O = loaded.bridge.W_O.detach()
    logits, clean = cache_of(loaded, prompts.tokens)
    _, corrupt = cache_of(loaded, prompts.corrupt)
    delta = sender_output(corrupt, W_O, sender) - sender_output(clean, W_O, sender)
    if receiver.kind == "mlp":
        stream, outputs = f"blocks.{receiver.layer}.hook_resid_mid", [(f"blocks.{receiver.layer}.hook_mlp_out", None)]
    else:
        stream = f"blocks.{receiver.layer}.hook_resid_pre"
        outputs = [(f"blocks.{receiver.layer}.attn.hook_{receiver.part}", receiver)]
    recorded = {}

    def record(name):
        def hook(x, hook):
            recorded[name] = x.clone()
            return x
        return hook

    run(loaded, prompts.tokens, [(stream, lambda x, hook: x + delta)] + [(name, record(name)) for name, _ in outputs])

    def put(name, node):
        def hook(x, hook):
            if node is None:
                return recorded[name]
            x = x.clone()
            index = slot(x, node, loaded.shape.n_heads)
            x[:, :, index] = recorded[name][:, :, index]
            return x
        return hook

    patched = run(loaded, prompts.tokens, [(name, put(name, node)) for name, node in outputs])
    return logit_diff(logits, prompts) - logit_diff(patched, prompts)  # positive helps


EDGES = [(ir.Node(0, "head", 1), ir.Node(1, "head_input", 2, "q")),
         (ir.Node(0, "head", 1), ir.Node(1, "head_input", 3, "k")),
         (ir.Node(0, "mlp"), ir.Node(1, "head_input", 0, "v")),
         (ir.Node(0, "head", 2), ir.Node(1, "mlp")),
         (ir.Node(0, "embed"), ir.Node(0, "head_input", 3, "k"))]


def test_path_patching_equals_the_hand_computed_path(bpe_model, prompts):
    source = make_source(bpe_model, prompts, ir.PatchSource("corrupt"), {})
    senders = list(dict.fromkeys(s for s, _ in EDGES))
    receivers = list(dict.fromkeys(r for _, r in EDGES))
    result = path_patch(bpe_model, prompts, senders, receivers, LD, source, batch_size=2, show_progress=False)
    for sender, receiver in EDGES:
        key = f"{sender.id}->{receiver.id}"
        assert result["values"][key] == pytest.approx(hand_path(bpe_model, prompts, sender, receiver), abs=TOL), key


def test_attention_masses_equal_the_cached_pattern(bpe_model, prompts):
    heads = [ir.Node(1, "head", 2), ir.Node(0, "head", 3)]
    result = attention(bpe_model, prompts, heads, query=ir.LAST, batch_size=2, show_progress=False)
    _, cache = cache_of(bpe_model, prompts.tokens)
    n = len(prompts)
    for head in heads:
        pattern = cache[f"blocks.{head.layer}.attn.hook_pattern"][:, head.head]
        rows = [pattern[i, int(prompts.lengths[i]) - 1] for i in range(n)]
        for name in ("labels", "answer_label", "final"):
            index = [prompts.marks[name].index[i][prompts.marks[name].valid[i]] for i in range(n)]
            expected = sum(float(rows[i][index[i]].sum()) for i in range(n)) / n
            assert result["values"][head.id][name] == pytest.approx(expected, abs=TOL), (head.id, name)
        assert result["values"][head.id]["bos"] == pytest.approx(sum(float(r[0]) for r in rows) / n, abs=TOL)


def test_faithfulness_equals_hand_written_ablation(bpe_model, prompts):
    source = make_source(bpe_model, prompts, ir.PatchSource("corrupt"), {})
    circuit = [ir.Node(1, "head", 2), ir.Node(0, "head", 1), ir.Node(1, "mlp")]
    result = faithfulness(bpe_model, prompts, circuit, LD, source, batch_size=2, show_progress=False)
    logits, _ = cache_of(bpe_model, prompts.tokens)
    _, corrupt = cache_of(bpe_model, prompts.corrupt)

    def ablated(keep_heads, keep_mlps):
        def heads(layer):
            def hook(z, hook):
                z = z.clone()
                for h in range(bpe_model.shape.n_heads):
                    if (layer, h) not in keep_heads:
                        z[:, :, h] = corrupt[f"blocks.{layer}.attn.hook_z"][:, :, h]
                return z
            return hook
        hooks = [(f"blocks.{l}.attn.hook_z", heads(l)) for l in range(bpe_model.shape.n_layers)]
        hooks += [(f"blocks.{l}.hook_mlp_out", lambda x, hook, c=corrupt[f"blocks.{l}.hook_mlp_out"]: c)
                  for l in range(bpe_model.shape.n_layers) if l not in keep_mlps]
        return logit_diff(run(bpe_model, prompts.tokens, hooks), prompts)

    assert result["clean"] == pytest.approx(logit_diff(logits, prompts), abs=TOL)
    assert result["circuit_only"] == pytest.approx(ablated({(1, 2), (0, 1)}, {1}), abs=TOL)
    assert result["all_ablated"] == pytest.approx(ablated(set(), set()), abs=TOL)


def test_subspace_recovery_equals_an_independent_svd(bpe_model, prompts):
    head = ir.Node(1, "head", 3)
    result = subspace(bpe_model, prompts, [head], LD, parts=["q", "k"], ranks=[2, 5], batch_size=2,
                      show_progress=False)
    logits, cache = cache_of(bpe_model, prompts.tokens)
    clean = logit_diff(logits, prompts)
    real = prompts.real_mask()
    for part in ("q", "k"):
        name = f"blocks.1.attn.hook_{part}"
        index = slot(cache[name], head, bpe_model.shape.n_heads)
        vectors = cache[name][:, :, index][real].double()
        mean = vectors.mean(0)
        _, _, right = torch.linalg.svd(vectors - mean, full_matrices=False)
        for rank in (2, 5):
            top = right[:rank].T.float()

            def replace(x, hook, rank_basis=top, m=mean.float()):
                x = x.clone()
                x[:, :, index] = m if rank_basis is None else m + (x[:, :, index] - m) @ rank_basis @ rank_basis.T
                return x

            ablated = logit_diff(run(bpe_model, prompts.tokens, [(name, lambda x, hook: replace(x, hook, None))]), prompts)
            ranked = logit_diff(run(bpe_model, prompts.tokens, [(name, replace)]), prompts)
            expected = (ranked - ablated) / (clean - ablated)
            assert result["per_part"][head.id][part]["clean"][str(rank)] == pytest.approx(expected, abs=TOL), (part, rank)

"""Path patching checked against the sender's output change added by hand to the
receiver's input."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.path_patching import path_patch
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples

LD = ir.Metric("ld", "logit_diff")


def sender_output(cache, W_O, sender):
    if sender.kind == "embed":
        return cache["blocks.0.hook_resid_pre"]
    if sender.kind == "mlp":
        return cache[f"blocks.{sender.layer}.hook_mlp_out"]
    return cache[f"blocks.{sender.layer}.attn.hook_z"][:, :, sender.head] @ W_O[sender.layer, sender.head]


def hand_path(loaded, prompts, sender, receiver):
    """Add the sender's output change (corrupt minus clean) to the stream the receiver
    reads, record what the receiver computes, and put only that into a clean run; the
    value is metric(clean) - metric(patched) (positive: the path helps)."""
    bridge = loaded.bridge
    W_O = bridge.W_O.detach()
    with torch.no_grad():
        clean_logits, clean = bridge.run_with_cache(prompts.tokens)
        _, corrupt = bridge.run_with_cache(prompts.corrupt)
        delta = sender_output(corrupt, W_O, sender) - sender_output(clean, W_O, sender)
        if receiver.kind == "mlp":
            stream, outputs = f"blocks.{receiver.layer}.hook_resid_mid", [(f"blocks.{receiver.layer}.hook_mlp_out", None)]
        else:
            stream = f"blocks.{receiver.layer}.hook_resid_pre"
            parts = "qkv" if receiver.kind == "head" else receiver.part
            outputs = [(f"blocks.{receiver.layer}.attn.hook_{p}", receiver.head) for p in parts]
        recorded = {}

        def record(name):
            def hook(x, hook):
                recorded[name] = x.clone()
                return x
            return hook

        bridge.run_with_hooks(prompts.tokens, fwd_hooks=[(stream, lambda x, hook: x + delta)]
                              + [(name, record(name)) for name, _ in outputs])

        def put(name, head):
            def hook(x, hook):
                x = x.clone()
                if head is None:
                    return recorded[name]
                x[:, :, head] = recorded[name][:, :, head]
                return x
            return hook

        patched = bridge.run_with_hooks(prompts.tokens, fwd_hooks=[(name, put(name, head)) for name, head in outputs])
    return (metric_values(clean_logits, prompts, LD) - metric_values(patched, prompts, LD)).mean().item()


EDGES = [
    (ir.Node(0, "head", 1), ir.Node(1, "head_input", 2, "q")),
    (ir.Node(0, "head", 1), ir.Node(1, "head_input", 0, "k")),
    (ir.Node(0, "head", 1), ir.Node(1, "mlp")),
    (ir.Node(0, "mlp"), ir.Node(1, "head", 3)),
    (ir.Node(0, "embed"), ir.Node(0, "head_input", 0, "v")),
    (ir.Node(1, "head", 0), ir.Node(1, "mlp")),
]


def test_edges_equal_the_hand_computed_path(tiny):
    prompts = tokenize(tiny, mcq_examples(5, ragged=True), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("corrupt"), {})
    senders = list(dict.fromkeys(s for s, _ in EDGES))
    receivers = list(dict.fromkeys(r for _, r in EDGES))
    result = path_patch(tiny, prompts, senders, receivers, LD, source, batch_size=2, show_progress=False)
    for sender, receiver in EDGES:
        key = f"{sender.id}->{receiver.id}"
        assert result["values"][key] == pytest.approx(hand_path(tiny, prompts, sender, receiver), abs=1e-5), key
    assert "L1.H0->L1.H3" not in result["values"] and "L1.MLP->L1.H2.q" not in result["values"]
    assert len({round(result["values"][f"{s.id}->{r.id}"], 6) for s, r in EDGES}) == len(EDGES)


def test_bad_requests(tiny):
    prompts = tokenize(tiny, mcq_examples(2), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("corrupt"), {})
    with pytest.raises(AnalysisError, match="no sender comes before"):
        path_patch(tiny, prompts, [ir.Node(1, "mlp")], [ir.Node(0, "head", 0)], LD, source)
    with pytest.raises(AnalysisError, match="does not take EMBED"):
        path_patch(tiny, prompts, [ir.Node(0, "head", 0)], [ir.Node(0, "embed")], LD, source)

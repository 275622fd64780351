"""The edge-circuit evaluator against independent computations: keeping every edge is
the clean run, keeping none is the corrupted run, removing one edge is exact path
patching of that edge (q, k and v apart) or, into the logits, the sender's change
added by hand at the final LayerNorm; a node-level circuit is faithfulness's
circuit-only run; on the planted model the planted path alone carries the metric."""

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.edge_circuit import (
    LOGITS,
    EdgeCircuit,
    circuit_metric,
    edge_key,
    graph_edges,
    node_edges,
)
from circ.runtime.analyses.faithfulness import faithfulness
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.path_patching import path_patch
from circ.runtime.data.prompts import tokenize
from conftest import load_tiny
from test_path_patching import sender_output

LD = ir.Metric("ld", "logit_diff")
NODES = [ir.Node(0, "embed")] + [ir.Node(layer, "head", head) for layer in range(2) for head in range(4)] \
    + [ir.Node(0, "mlp"), ir.Node(1, "mlp")]



@pytest.fixture(scope="module")
def edges(tiny):
    return graph_edges(tiny, NODES)


def plain_metric(loaded, tokens, prompts):
    with torch.no_grad():
        logits = loaded.bridge(tokens)
    return metric_values(logits, prompts, LD)


def test_graph_lists_every_edge_once(edges):
    keys = [edge_key(e) for e in edges]
    assert len(keys) == len(set(keys)) == 12 + 5 + 6 * 12 + 10 + 11  # as edges() counts them
    assert "L0.H1->L1.H0.k" in keys and "EMBED->LOGITS" in keys and "L1.H3->L1.MLP" in keys
    assert "L1.H0->L1.H1.q" not in keys and "L1.MLP->L1.H0.q" not in keys


def test_keeping_every_edge_is_the_clean_run(tiny, prompts, corrupt, edges):
    values = circuit_metric(tiny, prompts, edges, edges, LD, corrupt, batch_size=4, show_progress=False)
    assert torch.equal(values, plain_metric(tiny, prompts.tokens, prompts))


@pytest.mark.parametrize("source", [ir.PatchSource("corrupt"), ir.PatchSource("zero"),
                                    ir.PatchSource("mean", "clean")])
def test_keeping_no_edge_is_the_ablated_run(tiny, prompts, edges, source):
    """Every node then computes from the ablated residual stream: for a corrupt source,
    exactly the corrupted run; for any source, faithfulness's all-ablated run."""
    ablation = make_source(tiny, prompts, source, {"clean": prompts})
    values = circuit_metric(tiny, prompts, edges, [], LD, ablation, show_progress=False)
    if source.kind == "corrupt":
        expected = plain_metric(tiny, prompts.corrupt, prompts)
        assert values == pytest.approx(expected, abs=1e-4)
        assert not torch.allclose(values, plain_metric(tiny, prompts.tokens, prompts), atol=1e-2)
    else:
        # EMBED cannot be ablated by faithfulness; here it is ablated only where it
        # feeds a receiver, so compare with EMBED's edges kept
        kept = [e for e in edges if e[0].kind == "embed"]
        values = circuit_metric(tiny, prompts, edges, kept, LD, ablation, show_progress=False)
        expected = faithfulness(tiny, prompts, [], LD, ablation, show_progress=False)["all_ablated"]
        assert float(values.mean()) == pytest.approx(expected, abs=1e-4)


def hand_logits_edge(loaded, prompts, sender):
    """metric(clean) - metric(clean with the sender's corrupt-minus-clean change added
    at the final LayerNorm's input only): the sender's direct effect."""
    bridge = loaded.bridge
    with torch.no_grad():
        clean_logits, clean = bridge.run_with_cache(prompts.tokens)
        _, bad = bridge.run_with_cache(prompts.corrupt)
        W_O = bridge.W_O.detach()
        delta = sender_output(bad, W_O, sender) - sender_output(clean, W_O, sender)
        patched = bridge.run_with_hooks(prompts.tokens, fwd_hooks=[("ln_final.hook_in", lambda x, hook: x + delta)])
    return metric_values(clean_logits, prompts, LD) - metric_values(patched, prompts, LD)


def test_removing_one_edge_is_exact_path_patching(tiny, prompts, corrupt, edges):
    receivers = [ir.Node(1, "head_input", 2, p) for p in "qkv"] + [ir.Node(0, "head_input", 0, "v"),
                                                                   ir.Node(0, "mlp"), ir.Node(1, "mlp")]
    exact = path_patch(tiny, prompts, NODES, receivers, LD, corrupt, show_progress=False)["values"]
    chosen = ["L0.H1->L1.H2.q", "L0.H1->L1.H2.k", "L0.H1->L1.H2.v", "L0.H1->L1.MLP", "L0.MLP->L1.H2.k",
              "EMBED->L0.H0.v", "EMBED->L0.MLP", "L1.H0->L1.MLP", "L0.H3->L0.MLP"]
    by_key = {edge_key(e): e for e in edges}
    seen = set()
    for key in chosen:
        circuit = EdgeCircuit(tiny, prompts, edges, LD, corrupt)
        effect = float((circuit.clean - circuit.metric([by_key[key]])).mean())
        assert effect == pytest.approx(exact[key], abs=1e-5), key
        seen.add(round(effect, 6))
    assert len(seen) == len(chosen)  # the edges differ, so a mix-up would show
    for sender in (ir.Node(1, "head", 2), ir.Node(0, "mlp"), ir.Node(0, "embed")):
        circuit = EdgeCircuit(tiny, prompts, edges, LD, corrupt)
        effect = circuit.clean - circuit.metric([(sender, LOGITS)])
        assert effect == pytest.approx(hand_logits_edge(tiny, prompts, sender), abs=1e-5), sender.id


def test_node_circuit_is_faithfulness_circuit_only(tiny, prompts, corrupt, edges):
    kept_nodes = [ir.Node(0, "head", 1), ir.Node(1, "head", 2), ir.Node(0, "mlp")]
    kept = node_edges(edges, kept_nodes)
    assert (ir.Node(0, "embed"), ir.Node(1, "head_input", 0, "q")) not in kept  # L1.H0 is not kept
    assert (ir.Node(0, "head", 1), LOGITS) in kept and (ir.Node(0, "head", 0), LOGITS) not in kept
    values = circuit_metric(tiny, prompts, edges, kept, LD, corrupt, show_progress=False)
    expected = faithfulness(tiny, prompts, kept_nodes, LD, corrupt, show_progress=False)["circuit_only"]
    assert float(values.mean()) == pytest.approx(expected, abs=1e-4)


def test_kl_is_zero_for_the_whole_model(tiny, prompts, corrupt, edges):
    kl = ir.Metric("kl", "kl")
    circuit = EdgeCircuit(tiny, prompts, edges, kl, corrupt)
    assert torch.equal(circuit.metric([]), torch.zeros(len(prompts)))
    assert bool((circuit.metric(edges[:20]) > 0).all())


def test_unknown_kept_edges_are_refused(tiny, prompts, corrupt, edges):
    with pytest.raises(AnalysisError, match="not in the graph"):
        circuit_metric(tiny, prompts, edges[:5], [edges[6]], LD, corrupt, show_progress=False)


PLANTED_PATH = ["EMBED->L0.H2.v", "L0.H2->L1.H1.k", "L1.H1->LOGITS"]


def test_planted_path_alone_carries_the_metric(planted_graph):
    loaded, clean, edges = planted_graph
    source = make_source(loaded, clean, ir.PatchSource("corrupt"), {})
    assert set(PLANTED_PATH) <= {edge_key(e) for e in edges}
    circuit = EdgeCircuit(loaded, clean, edges, LD, source)
    full, none = float(circuit.clean.mean()), float(circuit.metric(edges).mean())
    path = float(circuit.metric([e for e in edges if edge_key(e) not in PLANTED_PATH]).mean())
    assert full > 1 and none < -1  # the corrupted prompt copies the other word
    assert (path - none) / (full - none) > 0.99
    for key in PLANTED_PATH:  # and each planted edge is needed
        kept = [k for k in PLANTED_PATH if k != key]
        broken = float(circuit.metric([e for e in edges if edge_key(e) not in kept]).mean())
        assert (broken - none) / (full - none) < 0.1, key


@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_llama_edges_are_path_patching(tmp_path, n_kv_heads):
    """Rotary, RMSNorm and SwiGLU: removing one edge is still exact path patching. With
    grouped keys and values (2 groups of 4 heads) a head has no k or v input of its
    own, so only q and MLP edges can be removed."""
    from circ.runtime.data.generators import build
    from circ.runtime.data.prompts import prepends_bos
    from circ.runtime.data.token_vocabulary import TokenVocabulary
    from model_builders import build_model_dir

    loaded = load_tiny(build_model_dir(tmp_path, "llama", n_kv_heads=n_kv_heads))
    vocabulary = TokenVocabulary.from_hf(loaded.tokenizer, prepends_bos(loaded))
    clean = tokenize(loaded, build("mcq", {"n": 4, "seed": 4}, vocabulary=vocabulary), source_name="clean")
    source = make_source(loaded, clean, ir.PatchSource("corrupt"), {})
    edges = graph_edges(loaded, NODES)
    by_key = {edge_key(e): e for e in edges}
    parts = "qkv" if n_kv_heads == 4 else "q"
    receivers = [ir.Node(1, "head_input", 3, p) for p in parts] + [ir.Node(1, "mlp")]
    exact = path_patch(loaded, clean, NODES, receivers, LD, source, show_progress=False)["values"]
    if n_kv_heads == 2:
        with pytest.raises(AnalysisError, match="L0.H0.k: this model's heads share keys and values"):
            EdgeCircuit(loaded, clean, edges, LD, source)
        edges = [e for e in edges if e[1] == LOGITS or e[1].part not in ("k", "v")]
    circuit = EdgeCircuit(loaded, clean, edges, LD, source)
    for key in [f"L0.H2->L1.H3.{p}" for p in parts] + ["EMBED->L1.H3.q", "L0.MLP->L1.MLP", "L1.H1->L1.MLP"]:
        effect = float((circuit.clean - circuit.metric([by_key[key]])).mean())
        assert effect == pytest.approx(exact[key], abs=1e-5), key

"""ACDC and exact edge scores. Exact scores equal path patching; on the demo model
ACDC's pruning of a small subgraph equals a brute-force pruning written here with
hand-made TransformerLens hooks (same order, same rule), with logit_diff and with kl,
and so does one point of an edge faithfulness curve; exact edges into the logits of the
BPE-tokenized GPT-2 and Llama shapes equal hand-written hooks (the grouped-query Llama
refusing its k and v edges by name); on the planted model ACDC,
exact scores and EAP-IG all find exactly the planted edges."""

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.acdc import acdc
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.edge_attribution import edge_attribution
from circ.runtime.analyses.edge_circuit import LOGITS, edge_key, graph_edges
from circ.runtime.analyses.exact_edges import exact_edge_scores
from circ.runtime.analyses.faithfulness_curve import edge_measure, faithfulness_curve
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.path_patching import path_patch
from circ.runtime.data.generators import build
from circ.runtime.data.prompts import prepends_bos, tokenize
from circ.runtime.data.token_vocabulary import TokenVocabulary
from circ.runtime.models.loading import load_model

LD = ir.Metric("ld", "logit_diff")
EMBED = ir.Node(0, "embed")
SUBGRAPH = [EMBED, ir.Node(0, "head", 1), ir.Node(0, "head", 3), ir.Node(0, "mlp"), ir.Node(1, "head", 2)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return load_model(ir.Model(source="demo"), spec_dir=tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="module")
def mcq(demo):
    vocabulary = TokenVocabulary.from_hf(demo.tokenizer, prepends_bos(demo))
    clean = tokenize(demo, build("mcq", {"n": 6, "seed": 2}, vocabulary=vocabulary), source_name="clean")
    return clean, make_source(demo, clean, ir.PatchSource("corrupt"), {})


def test_exact_scores_are_path_patching(demo, mcq):
    clean, corrupt = mcq
    edges = graph_edges(demo, SUBGRAPH)
    exact = exact_edge_scores(demo, clean, edges, LD, corrupt, batch_size=4, show_progress=False)
    receivers = [ir.Node(0, "mlp")] + [ir.Node(1, "head_input", 2, p) for p in "qkv"]
    paths = path_patch(demo, clean, SUBGRAPH, receivers, LD, corrupt, show_progress=False)
    for key, value in paths["values"].items():
        assert exact["values"][key] == pytest.approx(value, abs=1e-5), key
        assert exact["stderr"][key] == pytest.approx(paths["stderr"][key], abs=1e-5), key
    assert exact["n"] == len(clean) and len(exact["values"]) == len(edges) == 26
    assert exact["baseline"]["clean"] == pytest.approx(paths["baseline"]["clean"], abs=1e-6)
    assert len({round(v, 5) for v in exact["values"].values()}) > 20  # not a table of zeros


def test_exact_edges_into_the_logits_equal_hand_written_hooks_on_bpe_families(bpe_model):
    """GPT-2 and Llama shapes with a BPE tokenizer: removing SENDER->LOGITS is the
    unembedding reading the stream minus (the sender's clean - corrupted output)."""
    vocabulary = TokenVocabulary.from_hf(bpe_model.tokenizer, prepends_bos(bpe_model))
    clean = tokenize(bpe_model, build("mcq", {"n": 4, "seed": 5}, vocabulary=vocabulary), source_name="clean")
    corrupt = make_source(bpe_model, clean, ir.PatchSource("corrupt"), {})
    nodes = [EMBED, ir.Node(0, "head", 1), ir.Node(0, "mlp"), ir.Node(1, "head", 0)]
    edges = graph_edges(bpe_model, nodes)
    if bpe_model.bridge.cfg.n_key_value_heads not in (None, bpe_model.shape.n_heads):  # the Llama's 2 groups
        with pytest.raises(AnalysisError, match=r"^L0.H1.k: this model's heads share keys and values \(2 groups"):
            exact_edge_scores(bpe_model, clean, edges, LD, corrupt, show_progress=False)
        edges = [e for e in edges if e[1] == LOGITS or e[1].part not in ("k", "v")]
    exact = exact_edge_scores(bpe_model, clean, edges, LD, corrupt, batch_size=4, show_progress=False)
    hand = HandCircuit(bpe_model, clean, clean.corrupt)
    bridge = bpe_model.bridge
    with torch.no_grad():
        _, now = bridge.run_with_cache(clean.tokens)
        full = float(metric_values(bridge(clean.tokens), clean, LD).mean())
        for sender in nodes[1:]:
            change = hand.output(now, sender) - hand.output(hand.bad, sender)
            logits = bridge.run_with_hooks(clean.tokens, fwd_hooks=[("ln_final.hook_in", lambda x, hook: x - change)])
            removed = float(metric_values(logits, clean, LD).mean())
            assert exact["values"][f"{sender.id}->LOGITS"] == pytest.approx(full - removed, abs=1e-4), sender.id
            assert abs(full - removed) > 1e-6  # the edge carries something


class HandCircuit:
    """The subgraph's metric with some edges removed, by hooks written out here: every
    sender's output and its corrupted value are read from their own hooks (hook_embed
    plus hook_pos_embed for EMBED, z times W_O for a head, hook_mlp_out); a receiver
    reads the stream minus the removed senders' changes; a head's input goes through
    ln1 and W_Q/W_K/W_V into hook_q/k/v, an MLP's in at ln2, the logits' at ln_final."""

    def __init__(self, loaded, clean, corrupt_tokens):
        self.bridge, self.clean = loaded.bridge, clean
        with torch.no_grad():
            self.clean_logits = self.bridge(clean.tokens)
            _, self.bad = self.bridge.run_with_cache(corrupt_tokens)

    def output(self, cache, node):
        if node.kind == "embed":
            return cache["hook_embed"] + cache["hook_pos_embed"]
        if node.kind == "mlp":
            return cache[f"blocks.{node.layer}.hook_mlp_out"]
        return cache[f"blocks.{node.layer}.attn.hook_z"][:, :, node.head] @ self.bridge.W_O[node.layer, node.head]

    def metric(self, removed) -> float:
        bridge, now = self.bridge, {}

        def keep(name):
            def hook(x, hook):
                now[name] = x
            return hook

        def change(receiver):
            return sum(self.output(now, s) - self.output(self.bad, s) for s, r in removed if r == receiver)

        def head_input(layer, part):
            def hook(x, hook):
                x = x.clone()
                for receiver in {r for _, r in removed if r != LOGITS and r.kind == "head_input"
                                 and r.layer == layer and r.part == part}:
                    weight = getattr(bridge, f"W_{part.upper()}")[layer, receiver.head]
                    bias = getattr(bridge, f"b_{part.upper()}")[layer, receiver.head]
                    stream = now[f"blocks.{layer}.hook_resid_pre"] - change(receiver)
                    x[:, :, receiver.head] = bridge.blocks[layer].ln1(stream) @ weight + bias
                return x
            return hook

        names = ["hook_embed", "hook_pos_embed", "blocks.0.hook_mlp_out"] + [f"blocks.{l}.{h}" for l in range(2)
                                                                         for h in ("attn.hook_z", "hook_resid_pre")]
        hooks = [(name, keep(name)) for name in names]
        hooks += [(f"blocks.1.attn.hook_{p}", head_input(1, p)) for p in "qkv"]
        hooks += [(f"blocks.0.attn.hook_{p}", head_input(0, p)) for p in "qkv"]
        hooks.append(("blocks.0.ln2.hook_in", lambda x, hook: x - change(ir.Node(0, "mlp"))))
        hooks.append(("ln_final.hook_in", lambda x, hook: x - change(LOGITS)))
        with torch.no_grad():
            logits = bridge.run_with_hooks(self.clean.tokens, fwd_hooks=hooks)
        return self.score(logits)

    def score(self, logits) -> float:
        return float(metric_values(logits, self.clean, LD).mean())


class HandKL(HandCircuit):
    """The same circuits scored by minus KL(clean || circuit) at each prompt's last
    position, written out (helps-signed, as ACDC compares it)."""

    def score(self, logits) -> float:
        rows = torch.arange(len(self.clean.tokens))
        clean = self.clean_logits[rows, self.clean.last].float().log_softmax(dim=-1)
        this = logits[rows, self.clean.last].float().log_softmax(dim=-1)
        return -float((clean.exp() * (clean - this)).sum(dim=-1).mean())


def brute_force_acdc(hand, threshold):
    """ACDC written out: receivers LOGITS, L1.H2 (v, k, q), L0.MLP, L0.H3 (v, k, q),
    L0.H1 (v, k, q); senders latest first; remove an edge when the metric drops by
    less than the threshold."""
    h01, h03, mlp0, h12 = SUBGRAPH[1:]
    order = [(LOGITS, [h12, mlp0, h03, h01, EMBED])]
    order += [(ir.Node(1, "head_input", 2, p), [mlp0, h03, h01, EMBED]) for p in "vkq"]
    order += [(mlp0, [h03, h01, EMBED])]
    order += [(ir.Node(0, "head_input", head, p), [EMBED]) for head in (3, 1) for p in "vkq"]
    removed, current, tried = [], hand.metric([]), {}
    for receiver, senders in order:
        for sender in senders:
            trial = hand.metric(removed + [(sender, receiver)])
            tried[edge_key((sender, receiver))] = current - trial
            if current - trial < threshold:
                removed.append((sender, receiver))
                current = trial
    return removed, tried, current


def test_acdc_equals_brute_force_on_a_subgraph(demo, mcq):
    clean, corrupt = mcq
    edges = graph_edges(demo, SUBGRAPH)
    threshold = 0.05
    found = acdc(demo, clean, edges, LD, corrupt, threshold, batch_size=4, show_progress=False)
    hand = HandCircuit(demo, clean, clean.corrupt)
    removed, tried, final = brute_force_acdc(hand, threshold)
    assert found["kept"] == [edge_key(e) for e in edges if e not in set(removed)]
    assert 3 <= len(found["kept"]) <= len(edges) - 3  # the threshold splits the graph
    assert found["values"].keys() == tried.keys()
    for key, drop in tried.items():
        assert found["values"][key] == pytest.approx(drop, abs=1e-4), key
    assert found["baseline"]["circuit"] == pytest.approx(final, abs=1e-4)
    assert found["untried"] == 0  # a subgraph never skips: its nodes send outside it too


def test_a_threshold_above_every_drop_removes_every_edge(demo, mcq):
    clean, corrupt = mcq
    edges = graph_edges(demo, SUBGRAPH)
    everything = acdc(demo, clean, edges, LD, corrupt, 1e9, show_progress=False)
    assert everything["kept"] == []
    assert everything["baseline"]["circuit"] == pytest.approx(
        float(HandCircuit(demo, clean, clean.corrupt).metric(edges)), abs=1e-4)


def test_kl_metric_prunes_toward_the_full_model(demo, mcq):
    clean, corrupt = mcq
    edges = graph_edges(demo, SUBGRAPH)
    kl = ir.Metric("kl", "kl")
    found = acdc(demo, clean, edges, kl, corrupt, 0.01, show_progress=False)
    assert found["baseline"]["clean"] == 0.0
    assert 0 <= found["baseline"]["circuit"]
    assert all(value < 0.01 for key, value in found["values"].items() if key not in found["kept"])
    assert all(found["values"][key] >= 0.01 for key in found["kept"])


def test_acdc_with_kl_equals_brute_force_on_a_subgraph(demo, mcq):
    clean, corrupt = mcq
    edges = graph_edges(demo, SUBGRAPH)
    threshold = 0.002
    found = acdc(demo, clean, edges, ir.Metric("kl", "kl"), corrupt, threshold, batch_size=4, show_progress=False)
    removed, tried, final = brute_force_acdc(HandKL(demo, clean, clean.corrupt), threshold)
    assert found["kept"] == [edge_key(e) for e in edges if e not in set(removed)]
    assert 2 <= len(found["kept"]) <= len(edges) - 3  # the threshold splits the graph
    for key, drop in tried.items():
        assert found["values"][key] == pytest.approx(drop, abs=1e-5), key
    assert found["baseline"]["circuit"] == pytest.approx(-final, abs=1e-5)


def test_an_edge_curve_point_equals_the_hand_written_circuit(demo, mcq):
    """f(k) of an edge curve, from hooks written out: the first k edges of the ranking
    kept, every other edge of the graph reading its sender's corrupted output."""
    clean, corrupt = mcq
    edges = graph_edges(demo, SUBGRAPH)
    exact = exact_edge_scores(demo, clean, edges, LD, corrupt, batch_size=4, show_progress=False)
    ranking = sorted(edges, key=lambda e: -abs(exact["values"][edge_key(e)]))
    measure = edge_measure(demo, clean, edges, LD, corrupt, batch_size=4, show_progress=False)
    curve = faithfulness_curve(ranking, measure, points=None, sizes=(3,), random_orders=1, seed=0, target=0.9)
    hand = HandCircuit(demo, clean, clean.corrupt)
    full, none = hand.metric([]), hand.metric(edges)
    assert curve["sizes"] == [0, 3, len(edges)]
    assert curve["clean"] == pytest.approx(full, abs=1e-5) and curve["all_ablated"] == pytest.approx(none, abs=1e-5)
    expected = (hand.metric(ranking[3:]) - none) / (full - none)
    assert curve["faithfulness"][1] == pytest.approx(expected, abs=1e-5)
    assert 0.05 < expected < 0.95  # three edges recover part of the metric, not none or all of it


PLANTED_PATH = ["EMBED->L0.H2.v", "L0.H2->L1.H1.k", "L1.H1->LOGITS"]


@pytest.fixture(scope="module")
def planted(planted_graph):
    loaded, clean, edges = planted_graph
    return loaded, clean, make_source(loaded, clean, ir.PatchSource("corrupt"), {}), edges


def test_acdc_keeps_exactly_the_planted_edges(planted):
    loaded, clean, corrupt, edges = planted
    found = acdc(loaded, clean, edges, LD, corrupt, 0.5, batch_size=8, show_progress=False)
    assert found["kept"] == PLANTED_PATH
    assert found["untried"] > 0  # heads that no longer send anything are skipped
    assert found["baseline"]["circuit"] == pytest.approx(found["baseline"]["clean"], rel=1e-3)


@pytest.mark.parametrize("method", ["exact", "eap_ig"])
def test_scores_above_a_threshold_are_exactly_the_planted_edges(planted, method):
    loaded, clean, corrupt, edges = planted
    if method == "exact":
        values = exact_edge_scores(loaded, clean, edges, LD, corrupt, show_progress=False)["values"]
    else:
        nodes = list(dict.fromkeys(s for s, _ in edges))
        receivers = [n for n in nodes if n.kind != "embed"]
        values = edge_attribution(loaded, clean, nodes, receivers, LD, corrupt, steps=20, to_logits=True,
                                  show_progress=False)["values"]
    above = sorted(key for key, value in values.items() if value > 0.5)
    assert above == sorted(PLANTED_PATH)
    assert all(abs(value) < 0.5 for key, value in values.items() if key not in PLANTED_PATH)


SPEC = '''spec "acdc"
model demo
data clean = mcq(n=6, seed=0)
data moved = clean.move_answer(seed=3)
metric ld = logit_diff(answer, wrong) at last
analysis pruned = edges(embed + L0.H1 + L0.H3 + L0.MLP + L1.H2, source=moved, target=clean, metric=ld,
                        method=acdc, threshold=0.05)
analysis exact = edges(embed + L0.H1 + L0.H3 + L0.MLP + L1.H2, source=moved, target=clean, metric=ld, method=exact)
circuit found = discover(pruned)
circuit strongest = discover(exact, top=4)
expect exact[L0.H3 -> L0.MLP] > 0
'''


def test_spec_runs_acdc_and_exact_and_discovers_the_kept_edges(tmp_path):
    from circ import api

    path = tmp_path / "acdc.circ"
    path.write_text(SPEC)
    results = api.run(path, progress=False)
    pruned, exact = results.data["analyses"]["pruned"], results.data["analyses"]["exact"]
    assert pruned["method"] == "acdc" and pruned["threshold"] == 0.05 and exact["method"] == "exact"
    assert len(exact["values"]) == 26 and set(exact["stderr"]) == set(exact["values"]) and exact["n"] == 6
    assert set(pruned["kept"]) <= set(pruned["values"])
    circuit = results.data["circuits"]["found"]
    kept = {f'{e["src"]}->{e["dst"]}' + (f'.{e["part"]}' if e["part"] else "") for e in circuit["edges"]}
    assert kept == set(pruned["kept"]) and kept
    assert all(e["weight"] == pytest.approx(pruned["values"][f'{e["src"]}->{e["dst"]}' + (f'.{e["part"]}' if e["part"] else "")])
               for e in circuit["edges"])
    ends = {e["src"] for e in circuit["edges"]} | {e["dst"] for e in circuit["edges"]} - {"LOGITS"}
    assert {n["id"] for n in circuit["nodes"]} == ends
    assert len(results.data["circuits"]["strongest"]["edges"]) == 4
    assert results.data["expectations"][0]["passed"]
    from circ.runtime.render.summary import summarize

    assert f"ACDC kept {len(kept)} of 26 edges at threshold +0.0500" in summarize(results.data)


@pytest.mark.parametrize("call, code", [
    ("edges(heads, source=moved, target=clean, metric=ld, method=acdc)", "E385"),
    ("edges(heads, source=moved, target=clean, metric=ld, method=exact, threshold=0.1)", "E385"),
    ("edges(heads, source=moved, target=clean, metric=ld, method=exact, at=last)", "E386"),
    ("edges(heads, source=moved, target=clean, metric=ld, method=acdc, threshold=0.1, steps=3)", "E380"),
])
def test_bad_acdc_and_exact_options(tmp_path, call, code):
    from circ import api

    path = tmp_path / "bad.circ"
    path.write_text(SPEC.split("analysis")[0] + "analysis e = " + call + "\n")
    with pytest.raises(api.CircError) as error:
        api.compile(path)
    assert code in str(error.value.diagnostics[0])


@pytest.mark.parametrize("circuit, code", [("discover(pruned, top=3)", "E387"),
                                           ("discover(pruned, faithfulness=0.9)", "E387"),
                                           ("discover(exact)", "E393")])
def test_discover_of_acdc_takes_no_size_and_of_a_ranking_one(tmp_path, circuit, code):
    from circ import api

    path = tmp_path / "bad.circ"
    path.write_text(SPEC.split("circuit")[0] + f"circuit c = {circuit}\n")
    with pytest.raises(api.CircError) as error:
        api.compile(path)
    assert code in str(error.value.diagnostics[0])

"""Edge scores of a whole answer of several tokens on the config-built Llama and GPT-2
models with a BPE tokenizer: `edges(..., metric=answer_logprob(answer))` with EAP and
EAP-IG equals the sender's output change times the gradient of the hand-written
teacher-forced log-probability (tests/test_multi_token_answers.py) at the receiver's
input, averaged over EAP-IG's inputs moved toward the corrupted prompt's, one prompt
at a time; and `discover` keeps the strongest of them."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.edge_attribution import edge_attribution
from circ.runtime.analyses.patch_sources import make_source
from test_edge_scores import keep_hook
from test_multi_token_answers import ALP, data, hand_logprob, pieces  # noqa: F401 - data is a fixture
from test_path_patching import sender_output

SENDERS = [ir.Node(0, "embed"), ir.Node(0, "head", 1), ir.Node(0, "mlp"), ir.Node(1, "head", 2), ir.Node(1, "mlp")]
RECEIVERS = [ir.Node(1, "mlp")]
CHECKED = [("L0.H1->LOGITS", ir.Node(0, "head", 1), "final"), ("L1.H2->LOGITS", ir.Node(1, "head", 2), "final"),
           ("L0.MLP->LOGITS", ir.Node(0, "mlp"), "final"), ("L0.H1->L1.MLP", ir.Node(0, "head", 1), "mlp"),
           ("L1.H2->L1.MLP", ir.Node(1, "head", 2), "mlp")]


def hand_edge_scores(loaded, example, steps: int) -> dict[str, float]:
    """-(sender change . mean gradient) of each CHECKED edge on one prompt: the gradient
    of its whole answer's log-probability at the final residual stream (LOGITS) or the
    input of L1.MLP's norm, averaged over the prompt's token embeddings moved k/steps
    of the way (k = 0 .. steps - 1) toward its corrupted prompt's."""
    bridge = loaded.bridge
    ids, answer = pieces(loaded, example, example.prompt)
    corrupt_ids, _ = pieces(loaded, example, example.corrupt)
    clean_tokens, corrupt_tokens = torch.tensor([ids + answer[:-1]]), torch.tensor([corrupt_ids + answer[:-1]])
    with torch.no_grad():
        _, clean = bridge.run_with_cache(clean_tokens)
        _, corrupt = bridge.run_with_cache(corrupt_tokens)
    final, mlp_in = f"blocks.{loaded.shape.n_layers - 1}.hook_resid_post", "blocks.1.ln2.hook_in"
    totals = {final: 0.0, mlp_in: 0.0}
    for k in range(steps):
        kept = {}
        moved = ("hook_embed", lambda x, hook: torch.lerp(x, corrupt["hook_embed"], k / steps))
        with torch.enable_grad():
            total = hand_logprob(loaded, example, [moved, (final, keep_hook(kept, final)),
                                                   (mlp_in, keep_hook(kept, mlp_in))])
            gradients = torch.autograd.grad(total, [kept[final], kept[mlp_in]])
        for name, gradient in zip((final, mlp_in), gradients):
            totals[name] = totals[name] + gradient / steps
    W_O = bridge.W_O.detach()
    scores = {}
    for key, sender, receiver in CHECKED:
        change = sender_output(corrupt, W_O, sender) - sender_output(clean, W_O, sender)
        scores[key] = -float((change * totals[final if receiver == "final" else mlp_in]).sum())
    return scores


@pytest.mark.parametrize("steps", [1, 3])
def test_edge_scores_of_a_split_answer_equal_hand_written_gradients(data, steps):
    loaded, examples, prompts = data
    source = make_source(loaded, prompts, ir.PatchSource("corrupt"), {})
    got = edge_attribution(loaded, prompts, SENDERS, RECEIVERS, ALP, source, steps=steps, to_logits=True,
                           show_progress=False)["values"]
    hand = [hand_edge_scores(loaded, example, steps) for example in examples]
    for key, _, _ in CHECKED:
        expected = sum(scores[key] for scores in hand) / len(hand)
        assert got[key] == pytest.approx(expected, rel=1e-3, abs=1e-4), key
    assert min(abs(got[key]) for key, _, _ in CHECKED) > 1e-3  # measured: 0.008 to 0.20


def test_a_spec_discovers_edges_of_a_split_answer(bpe_model_dirs, tmp_path):
    """edges(method=eap_ig) with answer_logprob and discover, from a spec on words the
    tokenizer splits; the circuit's edges are the strongest scores."""
    import json

    from circ import api
    from conftest import write_jsonl
    from test_multi_token_answers import split_examples

    write_jsonl(tmp_path / "words.jsonl", split_examples(8))
    spec = tmp_path / "split.circ"
    spec.write_text(f'spec "split"\nmodel hf("{bpe_model_dirs["gpt2"]}")\n'
                    'data words = jsonl("words.jsonl")\n'
                    "metric alp = answer_logprob(answer)\n"
                    "analysis e = edges(heads + mlps + embed, source=corrupt, target=words, metric=alp, "
                    "method=eap_ig, steps=3)\n"
                    "circuit found = discover(e, top=4)\n")
    results = api.run(spec, progress=False, out=tmp_path / "out").data
    values = results["analyses"]["e"]["values"]
    strongest = sorted(values, key=lambda key: -abs(values[key]))[:4]
    kept = {f'{e["src"]}->{e["dst"]}' + (f'.{e["part"]}' if e["part"] else "")
            for e in results["circuits"]["found"]["edges"]}
    assert kept == set(strongest)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["analyses"]["e"]["values"] == values

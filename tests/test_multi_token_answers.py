"""Answers of several tokens on the config-built Llama and GPT-2 models with a BPE
tokenizer that splits words such as " paper" and " zebra": `answer_logprob(answer)`
is the whole answer's teacher-forced log-probability, and patching (exact and
attribution) and faithfulness with it equal hand-written TransformerLens hooks on the
prompt followed by the answer's tokens. Metrics that read one answer token refuse
such prompts and name answer_logprob."""
import io
import random

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.faithfulness import faithfulness
from circ.runtime.analyses.metrics import MetricError, metric_values
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.patching import patch
from circ.runtime.data.examples import Example
from circ.runtime.data.prompts import prepends_bos, tokenize

ALP = ir.Metric("alp", "answer_logprob")
WORDS = ("paper", "green", "blue", "cow", "zebra", "hive")  # 3, 2, 3, 1, 5 and 1 tokens with their space


def split_examples(n: int, seed: int = 0) -> list[Example]:
    """Two options, the answer the first; the corrupted prompt swaps them (same tokens)."""
    rng = random.Random(seed)
    examples = []
    for line in range(1, n + 1):
        right, wrong = rng.sample(WORDS, 2)
        examples.append(Example(prompt=f"question : which word ? A : {right} B : {wrong} answer :",
                                answer=f" {right}", wrong=(f" {wrong}",),
                                corrupt=f"question : which word ? A : {wrong} B : {right} answer :", line=line))
    return examples


def pieces(loaded, example: Example, prompt: str) -> tuple[list[int], list[int]]:
    """The prompt's tokens (BOS first when the model reads one) and the answer's."""
    tokenizer = loaded.tokenizer
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = ([tokenizer.bos_token_id] if prepends_bos(loaded) else []) + ids
    return ids, tokenizer(example.answer, add_special_tokens=False)["input_ids"]


def hand_logprob(loaded, example: Example, hooks=(), prompt: str | None = None) -> torch.Tensor:
    """sum_j log p(answer_j | prompt, answer_<j), from one run of the prompt followed by
    the answer's tokens but the last, with `hooks` attached."""
    ids, answer = pieces(loaded, example, prompt or example.prompt)
    tokens = torch.tensor([ids + answer[:-1]])
    logits = loaded.bridge.run_with_hooks(tokens, fwd_hooks=list(hooks))[0].float().log_softmax(-1)
    return sum(logits[len(ids) - 1 + j, token] for j, token in enumerate(answer))


def corrupt_cache(loaded, example: Example):
    ids, answer = pieces(loaded, example, example.corrupt)
    with torch.no_grad():
        return loaded.bridge.run_with_cache(torch.tensor([ids + answer[:-1]]))[1]


@pytest.fixture
def data(bpe_model):
    examples = split_examples(6)
    prompts = tokenize(bpe_model, examples, source_name="d")
    counts = set(prompts.answer_count.tolist())
    assert 1 in counts and len(counts) >= 3  # whole answers and answers split in several ways, in one batch
    return bpe_model, examples, prompts


def test_answer_logprob_is_the_teacher_forced_sum_over_the_answer_tokens(data):
    loaded, examples, prompts = data
    with torch.no_grad():
        got = metric_values(loaded.bridge(prompts.tokens), prompts, ALP)
        expected = torch.stack([hand_logprob(loaded, e) for e in examples])
    assert torch.allclose(got, expected.cpu(), atol=1e-4)
    assert got.min() < -10  # a sum over several tokens of a random model, not one token's


def _replace_head(cache, layer, head):
    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = cache[f"blocks.{layer}.attn.hook_z"][:, :, head]
        return z

    return f"blocks.{layer}.attn.hook_z", hook


def _replace(cache, name):
    return name, lambda activation, hook: cache[name]


@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_patching_the_whole_answer_equals_a_hand_written_patch(data, method):
    loaded, examples, prompts = data
    source = make_source(loaded, prompts, ir.PatchSource("corrupt"), {})
    nodes = [ir.Node(0, "mlp"), ir.Node(1, "mlp")] + ([ir.Node(1, "head", 0)] if method == "exact" else [])
    got = patch(loaded, prompts, nodes, ALP, source, method=method, batch_size=4, show_progress=False)["values"]
    for node in nodes:
        effects = []
        for example in examples:
            cache = corrupt_cache(loaded, example)
            if method == "exact":
                hook = (_replace_head(cache, node.layer, node.head) if node.kind == "head"
                        else _replace(cache, f"blocks.{node.layer}.hook_mlp_out"))
                with torch.no_grad():
                    effects.append(float(hand_logprob(loaded, example) - hand_logprob(loaded, example, [hook])))
            else:
                effects.append(_hand_attribution(loaded, example, cache, f"blocks.{node.layer}.hook_mlp_out"))
        assert got[node.id] == pytest.approx(sum(effects) / len(effects), abs=1e-3), node.id
    assert max(abs(v) for v in got.values()) > 0.01


def _hand_attribution(loaded, example, cache, name) -> float:
    """-(corrupt - clean) . d metric / d activation: the linear estimate of clean - patched."""
    kept = {}

    def keep(activation, hook):
        activation.retain_grad()
        kept["x"] = activation
        return activation

    with torch.enable_grad():
        hand_logprob(loaded, example, [(name, keep)]).backward()
    x = kept["x"]
    return -float(((cache[name] - x.detach()) * x.grad).sum())


def test_faithfulness_of_the_whole_answer_equals_hand_written_ablations(data):
    loaded, examples, prompts = data
    source = make_source(loaded, prompts, ir.PatchSource("corrupt"), {})
    kept_head, kept_mlp = (1, 0), 0
    got = faithfulness(loaded, prompts, [ir.Node(1, "head", 0), ir.Node(0, "mlp")], ALP, source,
                       batch_size=4, show_progress=False)
    shape = loaded.shape
    sums = {"clean": 0.0, "circuit_only": 0.0, "all_ablated": 0.0}
    for example in examples:
        cache = corrupt_cache(loaded, example)

        def ablated(keep: bool):
            hooks = []
            for layer in range(shape.n_layers):
                for head in range(shape.n_heads):
                    if not (keep and (layer, head) == kept_head):
                        hooks.append(_replace_head(cache, layer, head))
                if not (keep and layer == kept_mlp):
                    hooks.append(_replace(cache, f"blocks.{layer}.hook_mlp_out"))
            return hooks

        with torch.no_grad():
            sums["clean"] += float(hand_logprob(loaded, example))
            sums["circuit_only"] += float(hand_logprob(loaded, example, ablated(True)))
            sums["all_ablated"] += float(hand_logprob(loaded, example, ablated(False)))
    means = {key: total / len(examples) for key, total in sums.items()}
    for key, value in means.items():
        assert got[key] == pytest.approx(value, abs=1e-3), key
    expected = (means["circuit_only"] - means["all_ablated"]) / (means["clean"] - means["all_ablated"])
    assert got["value"] == pytest.approx(expected, rel=1e-3)


def test_a_metric_of_one_answer_token_refuses_split_answers_and_names_answer_logprob(data):
    loaded, examples, prompts = data
    with torch.no_grad():
        logits = loaded.bridge(prompts.tokens)
    with pytest.raises(MetricError, match=r"`ld` \(logit_diff\) reads one answer token, but at line \d+ of d its "
                                          r"answer ' \w+' is \d tokens; score the whole answer with "
                                          r"`answer_logprob\(answer\)`"):
        metric_values(logits, prompts, ir.Metric("ld", "logit_diff"))
    whole = tokenize(loaded, [e for e in examples if e.answer in (" cow", " hive")
                              and e.wrong[0] in (" cow", " hive")] or split_examples(1), source_name="w")
    assert metric_values(loaded.bridge(whole.tokens), whole, ALP).shape == (len(whole),)


def test_a_spec_runs_answer_logprob_on_labels_the_tokenizer_splits(bpe_model_dirs, tmp_path):
    import json

    from circ.cli.run import run_spec
    from transformers import AutoTokenizer

    spec = tmp_path / "labels.circ"
    spec.write_text(f'spec "labels"\nmodel hf("{bpe_model_dirs["gpt2"]}")\n'
                    'data clean = mcq(n=6, labels=["paper", "cow"], seed=0)\n'
                    'metric alp = answer_logprob(answer)\n'
                    'analysis p = patch(L1.*, source=mean(clean), target=clean, metric=alp)\n'
                    'expect metric(alp, on=clean) < 0\n')
    out, err = io.StringIO(), io.StringIO()
    code = run_spec(str(spec), str(tmp_path / "out"), model=None, device=None, batch_size=4, seed=0,
                    trust_remote_code=False, progress=False, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["metrics"]["alp"]["kind"] == "answer_logprob"
    assert results["datasets"]["clean"]["metrics"]["alp"] < -1
    assert set(results["analyses"]["p"]["values"]) == {f"L1.H{h}" for h in range(4)}
    tokenizer = AutoTokenizer.from_pretrained(bpe_model_dirs["gpt2"])
    paper = tokenizer(" paper", add_special_tokens=False)["input_ids"]
    assert len(paper) == 3 and len(tokenizer(" cow", add_special_tokens=False)["input_ids"]) == 1
    assert results["datasets"]["clean"]["answer_sequences"] == [{"ids": paper, "text": " paper"}]

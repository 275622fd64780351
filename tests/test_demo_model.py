"""The shipped demo model: it loads through TransformerBridge like a user's model,
tokenizes one token per word after <bos>, exposes the classic hooks, is small, and
answers held-out multiple-choice prompts. Also the training data (every supervised
label is a real lookup, held-out prompts never appear) and the guidance loss."""
import math
import random

import pytest
import torch
from circ.compiler.ir import Word
from circ.runtime.data.mcq import McqItem
from circ.runtime.models.demo_model import demo_model_dir
from circ.runtime.models.demo_model.data import training_sequence
from circ.runtime.models.demo_model.guide import guide_loss
from circ.runtime.models.demo_model.split import held_out_examples, is_held_out

HOOKS = ("blocks.{L}.attn.hook_z", "blocks.{L}.attn.hook_pattern", "blocks.{L}.hook_resid_pre",
         "blocks.{L}.hook_mlp_out")


@pytest.fixture(scope="module")
def bridge():
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(demo_model_dir()), device="cpu")


def test_files_are_hugging_face_format_and_small():
    files = {p.name: p.stat().st_size for p in demo_model_dir().iterdir()}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        assert name in files
    assert sum(files.values()) < 10 * 2**20


def test_one_token_per_word_after_bos(bridge):
    example = held_out_examples(1)[0]
    tokens = bridge.to_str_tokens(example.prompt)
    assert tokens == ["<bos>"] + example.prompt.split(" ")
    assert "<unk>" not in tokens


def test_classic_hooks_fire_with_the_model_shape(bridge):
    cfg = bridge.cfg
    prompt = held_out_examples(1)[0].prompt
    n_pos = len(prompt.split()) + 1
    _, cache = bridge.run_with_cache(prompt)
    for layer in range(cfg.n_layers):
        names = [h.format(L=layer) for h in HOOKS]
        assert cache[names[0]].shape == (1, n_pos, cfg.n_heads, cfg.d_head)
        assert cache[names[1]].shape == (1, cfg.n_heads, n_pos, n_pos)
        assert cache[names[2]].shape == (1, n_pos, cfg.d_model)
        assert cache[names[3]].shape == (1, n_pos, cfg.d_model)
    assert cache["ln_final.hook_normalized"].shape == (1, n_pos, cfg.d_model)
    pattern = cache["blocks.0.attn.hook_pattern"][0]
    assert torch.allclose(pattern.sum(-1), torch.ones(cfg.n_heads, n_pos), atol=1e-5)
    assert torch.all(pattern.triu(1) == 0)


def test_held_out_abcd_accuracy(bridge):
    examples = held_out_examples(64, "ABCD", seed=123)
    tokens = bridge.to_tokens([e.prompt for e in examples], padding_side="right")
    last = (tokens != bridge.tokenizer.pad_token_id).sum(dim=1) - 1
    with torch.no_grad():
        logits = bridge(tokens)[torch.arange(len(examples)), last]
    predicted = bridge.tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist())
    accuracy = sum(p == e.answer for p, e in zip(predicted, examples)) / len(examples)
    assert accuracy >= 0.95


def test_training_queries_are_real_lookups_and_never_held_out():
    rng = random.Random(0)
    for _ in range(200):
        sequence = training_sequence(rng, 64)
        words = sequence.words
        assert words[0] == "<bos>" and len(words) <= 64
        assert 0 <= sequence.start <= 64 - len(words)
        q_end, first_answer = words.index("?"), words.index("answer")
        labels, texts = words[q_end + 1:first_answer:3], words[q_end + 3:first_answer:3]
        for answer, text_index in zip(sequence.answers, sequence.option_texts):
            assert words[answer - 5:answer - 3] == ("answer", ":")
            asked = words[answer - 3]
            assert words[text_index] == asked
            assert words[answer] == labels[texts.index(asked)]
        assert set(sequence.answers) < set(sequence.targets)
        assert [words[i] for i in set(sequence.targets) - set(sequence.answers)] == [words[first_answer + 2]]
        question = " ".join(words[3:q_end + 1])
        assert not is_held_out(McqItem(question, tuple(texts), tuple(labels), 0, 1))


def test_held_out_examples_are_held_out():
    for labels in ("ABCD", Word("random_letters"), Word("numbers")):
        for example in held_out_examples(20, labels):
            words = example.prompt.split(" ")
            q_end, answer = words.index("?"), words.index("answer")
            item = McqItem(" ".join(words[2:q_end + 1]), tuple(words[q_end + 3:answer:3]), (), 0, 1)
            assert is_held_out(item)


def test_guide_loss_measures_attention_on_the_targets():
    sequence = training_sequence(random.Random(3), 64)
    n = len(sequence.words)
    perfect = [torch.zeros(1, 4, n, n), torch.zeros(1, 4, n, n)]
    perfect[0][0, 0, torch.arange(2, n), torch.arange(n - 2)] = 1.0
    perfect[1][0, 0, [a - 1 for a in sequence.answers], list(sequence.option_texts)] = 1.0
    assert guide_loss(tuple(perfect), [sequence]).item() == pytest.approx(0.0, abs=1e-5)
    causal = torch.tril(torch.ones(n, n))
    uniform = (causal / causal.sum(-1, keepdim=True)).expand(1, 4, n, n)
    expected = (sum(math.log(q + 1) for q in range(2, n)) / (n - 2)
                + sum(math.log(a) for a in sequence.answers) / len(sequence.answers))
    assert guide_loss((uniform, uniform), [sequence]).item() == pytest.approx(expected, rel=1e-4)


def test_the_checkers_demo_shape_is_the_shipped_models():
    """`circ check` knows the demo model's shape without reading its files."""
    import json

    from circ.compiler.check.model_shape import DEMO_SHAPE, shape_from_config

    config = json.loads((demo_model_dir() / "config.json").read_text())
    assert shape_from_config(config) == DEMO_SHAPE

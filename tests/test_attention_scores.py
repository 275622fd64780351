"""Induction and previous-token scores over every query, checked against attention
patterns read by a hand-written hook and scored position by position in plain Python."""
import math
import random

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.attention_scores import attention_scores
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.data.examples import Example
from circ.runtime.data.prompts import tokenize
from conftest import WORDS

HEADS = [ir.Node(0, "head", 1), ir.Node(1, "head", 2), ir.Node(1, "head", 0)]


def repeated_examples(n, seed=0):
    """Ragged prompts where words repeat, some more than once, some prompts without repeats."""
    rng = random.Random(seed)
    examples = []
    for line in range(1, n + 1):
        first = rng.sample(WORDS, 3 + line % 4)
        words = first + first[: line % 5] + rng.sample(WORDS, line % 3)
        examples.append(Example(" ".join(words), " cat", (" dog",), line=line))
    return examples


def patterns_by_hook(loaded, tokens, layer):
    """hook_pattern of one layer, captured by a hook of our own."""
    seen = {}

    def keep(pattern, hook):
        seen["pattern"] = pattern.detach().clone()

    with torch.no_grad():
        loaded.bridge.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", keep)])
    return seen["pattern"]


def scores_by_hand(loaded, prompts, head, score):
    """Per prompt: the mean over defined queries of the attention mass on the score's keys."""
    pattern = patterns_by_hook(loaded, prompts.tokens, head.layer)[:, head.head].double()
    per_prompt, queries = [], 0
    for i in range(len(prompts)):
        tokens = prompts.tokens[i, : int(prompts.lengths[i])].tolist()
        masses = []
        for q in range(len(tokens)):
            if score == "previous_token":
                keys = [q - 1] if q >= 1 else []
            else:
                keys = [p + 1 for p in range(q) if tokens[p] == tokens[q]]
            if keys:
                masses.append(sum(float(pattern[i, q, k]) for k in keys))
        queries += len(masses)
        if masses:
            per_prompt.append(sum(masses) / len(masses))
    return per_prompt, queries


@pytest.mark.parametrize("score", ["induction", "previous_token"])
def test_scores_match_a_hand_written_hook(tiny, score):
    prompts = tokenize(tiny, repeated_examples(9), source_name="seqs")
    result = attention_scores(tiny, prompts, HEADS, score=score, batch_size=4, show_progress=False)
    assert result["score"] == score and result["query"] == "all"
    for head in HEADS:
        per_prompt, queries = scores_by_hand(tiny, prompts, head, score)
        n = len(per_prompt)
        mean = sum(per_prompt) / n
        stderr = math.sqrt(sum((x - mean) ** 2 for x in per_prompt) / (n - 1) / n)
        assert result["values"][head.id] == pytest.approx(mean, abs=1e-6)
        assert result["stderr"][head.id] == pytest.approx(stderr, abs=1e-6)
        assert result["n"] == n and result["queries"] == queries
    if score == "induction":
        assert result["n"] < len(prompts)  # prompts without a repeated word are not scored
    else:
        assert result["n"] == len(prompts)


def test_induction_needs_a_repeated_token(tiny):
    examples = [Example("cat dog red", " sun", (" moon",), line=1)]
    prompts = tokenize(tiny, examples, source_name="seqs")
    with pytest.raises(AnalysisError, match="no token repeats"):
        attention_scores(tiny, prompts, HEADS, score="induction", show_progress=False)

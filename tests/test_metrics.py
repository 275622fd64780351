"""Metrics checked one prompt at a time against plain-Python formulas."""
import math

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.metrics import MetricError, metric_values, normalize
from circ.runtime.data.examples import Example
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples


@pytest.fixture
def prompts(tiny):
    examples = mcq_examples(3, ragged=True, corrupt=False)
    examples.append(Example("the cat is", " A", (" B", " C", " D"), marks=(("cat", (4,)),), line=9))
    return tokenize(tiny, examples, source_name="d")


@pytest.fixture
def logits(prompts):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(*prompts.tokens.shape, 30, generator=generator)


def wrong_ids(prompts, i):
    return prompts.wrong[i][prompts.wrong_valid[i]].tolist()


def logsoftmax(row):
    top = max(row)
    total = math.log(sum(math.exp(x - top) for x in row)) + top
    return [x - total for x in row]


def expected_at(kind, logits, prompts, i, p, clean=None):
    row = logits[i, p].tolist()
    answer, wrong = int(prompts.answer[i]), wrong_ids(prompts, i)
    if kind == "logit_diff":
        return row[answer] - sum(row[w] for w in wrong) / len(wrong)
    if kind == "logprob":
        return logsoftmax(row)[answer]
    if kind == "prob":
        return math.exp(logsoftmax(row)[answer])
    if kind == "accuracy":
        return float(all(row[answer] > row[w] for w in wrong))
    if kind == "kl":
        reference, this = logsoftmax(clean[i, p].tolist()), logsoftmax(row)
        return sum(math.exp(r) * (r - t) for r, t in zip(reference, this))
    target = int(prompts.tokens[i, p + 1]) if p + 1 < int(prompts.lengths[i]) else answer
    return -logsoftmax(row)[target]


@pytest.mark.parametrize("kind", ["logit_diff", "logprob", "prob", "accuracy", "kl", "loss"])
@pytest.mark.parametrize("position", [ir.LAST, ir.ALL, ir.Position("index", index=1)])
def test_metric_matches_the_formula(kind, position, logits, prompts):
    clean = torch.randn_like(logits)
    got = metric_values(logits, prompts, ir.Metric("m", kind, position), clean_logits=clean)
    mask = prompts.position_mask(position)
    for i in range(len(prompts)):
        positions = mask[i].nonzero()[:, 0].tolist()
        want = sum(expected_at(kind, logits, prompts, i, p, clean) for p in positions) / len(positions)
        assert got[i].item() == pytest.approx(want, abs=1e-5)


def test_named_position_averages_over_the_marked_tokens(logits, prompts):
    metric = ir.Metric("m", "logit_diff", ir.Position("named", name="labels"))
    got = metric_values(logits[:3], prompts.select([0, 1, 2]), metric)
    for i in range(3):
        marked = prompts.marks["labels"].index[i].tolist()
        want = sum(expected_at("logit_diff", logits, prompts, i, p) for p in marked) / 2
        assert got[i].item() == pytest.approx(want, abs=1e-5)


def test_accuracy_counts_the_argmax_among_the_options(prompts):
    logits = torch.zeros(len(prompts), prompts.tokens.shape[1], 30)
    rows = torch.arange(len(prompts))
    logits[rows, prompts.last, prompts.answer] = 1.0
    logits[3, prompts.last[3], wrong_ids(prompts, 3)[2]] = 2.0
    assert metric_values(logits, prompts, ir.Metric("a", "accuracy")).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_kl_needs_clean_logits_and_is_zero_against_itself(logits, prompts):
    with pytest.raises(MetricError, match="clean"):
        metric_values(logits, prompts, ir.Metric("k", "kl"))
    same = metric_values(logits, prompts, ir.Metric("k", "kl"), clean_logits=logits)
    assert same.abs().max().item() < 1e-6


def test_normalize():
    assert normalize(3.0, 5.0, 1.0) == 0.5
    assert normalize(torch.tensor([1.0, 5.0]), 5.0, 1.0).tolist() == [0.0, 1.0]

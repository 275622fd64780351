"""Attention summaries checked prompt by prompt against the cached patterns."""
import math

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.attention import attention
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples

HEADS = [ir.Node(1, "head", 2), ir.Node(0, "head", 0)]


def rows_by_hand(tiny, prompts, head, query):
    with torch.no_grad():
        _, cache = tiny.bridge.run_with_cache(prompts.tokens)
    pattern = cache[f"blocks.{head.layer}.attn.hook_pattern"][:, head.head]
    mask = prompts.position_mask(query)
    rows, selves = [], []
    for i in range(len(prompts)):
        qs = mask[i].nonzero()[:, 0].tolist()
        rows.append(sum(pattern[i, q] for q in qs) / len(qs))
        selves.append(sum(float(pattern[i, q, q]) for q in qs) / len(qs))
    return rows, selves


@pytest.mark.parametrize("query", [ir.LAST, ir.Position("named", name="labels")])
def test_masses_spread_and_pattern_match_the_cache(tiny, query):
    prompts = tokenize(tiny, mcq_examples(5, ragged=True), source_name="clean")
    result = attention(tiny, prompts, HEADS, query=query, batch_size=2, show_progress=False)
    assert result["query"] == str(query)
    for head in HEADS:
        rows, selves = rows_by_hand(tiny, prompts, head, query)
        values, spread = result["values"][head.id], result["spread"][head.id]
        assert set(values) == {"labels", "answer_label", "bos", "self"}
        labels = [prompts.marks["labels"].index[i].tolist() for i in range(len(prompts))]
        answer = [prompts.marks["answer_label"].index[i].tolist() for i in range(len(prompts))]
        assert values["labels"] == pytest.approx(sum(float(rows[i][labels[i]].sum()) for i in range(5)) / 5, abs=1e-6)
        assert values["answer_label"] == pytest.approx(sum(float(rows[i][answer[i]].sum()) for i in range(5)) / 5, abs=1e-6)
        assert values["bos"] == pytest.approx(sum(float(r[0]) for r in rows) / 5, abs=1e-6)
        assert values["self"] == pytest.approx(sum(selves) / 5, abs=1e-6)
        entropies = []
        for i in range(5):
            share = rows[i][labels[i]] / rows[i][labels[i]].sum()
            entropies.append(-sum(float(p) * math.log(float(p)) for p in share) / math.log(2))
        assert set(spread) == {"labels"} and spread["labels"] == pytest.approx(sum(entropies) / 5, abs=1e-5)
        first = result["patterns"][head.id]
        length = int(prompts.lengths[0])
        assert first["tokens"] == ["<bos>"] + prompts.examples[0].prompt.split()
        assert first["weights"] == pytest.approx(rows[0][:length].tolist(), abs=1e-6)


def test_only_heads(tiny):
    prompts = tokenize(tiny, mcq_examples(2), source_name="clean")
    with pytest.raises(AnalysisError, match="does not take L0.MLP"):
        attention(tiny, prompts, [ir.Node(0, "mlp")])


def test_explorer_keeps_every_row_of_the_first_prompts(tiny):
    prompts = tokenize(tiny, mcq_examples(5, ragged=True), source_name="clean")
    result = attention(tiny, prompts, HEADS, batch_size=2, show_progress=False, explore=3)
    explorer = result["explorer"]
    assert (explorer["prompts"], explorer["of"], explorer["rows"], explorer["decimals"]) == (3, 5, "all", 3)
    assert explorer["heads"] == [h.id for h in HEADS] and len(explorer["examples"]) == 3
    with torch.no_grad():
        _, cache = tiny.bridge.run_with_cache(prompts.tokens)
    for i, example in enumerate(explorer["examples"]):
        length = int(prompts.lengths[i])
        assert example["tokens"] == ["<bos>"] + prompts.examples[i].prompt.split()
        assert example["rows"] == list(range(length)) and example["query"] == [length - 1]
        for head in HEADS:
            pattern = cache[f"blocks.{head.layer}.attn.hook_pattern"][i, head.head]
            rows = example["patterns"][head.id]
            assert [len(r) for r in rows] == [q + 1 for q in range(length)]
            for q, row in enumerate(rows):
                assert row == pytest.approx(pattern[q, :q + 1].tolist(), abs=5e-4)
                assert all(round(w, 3) == w for w in row)


def test_explorer_keeps_query_rows_then_fewer_heads_over_its_budget(tiny, monkeypatch):
    import circ.runtime.analyses.attention as kernel

    prompts = tokenize(tiny, mcq_examples(4), source_name="clean")
    length = int(prompts.lengths[0])
    labels = ir.Position("named", name="labels")
    monkeypatch.setattr(kernel, "MAX_EXPLORER_WEIGHTS", 2 * 4 * length * (length + 1) // 2 - 1)
    result = attention(tiny, prompts, HEADS, query=labels, batch_size=3, show_progress=False)
    explorer = result["explorer"]
    assert explorer["rows"] == "query" and explorer["heads"] == [h.id for h in HEADS]
    with torch.no_grad():
        _, cache = tiny.bridge.run_with_cache(prompts.tokens)
    for i, example in enumerate(explorer["examples"]):
        assert example["rows"] == example["query"] == prompts.marks["labels"].index[i].tolist()
        pattern = cache[f"blocks.1.attn.hook_pattern"][i, 2]
        for q, row in zip(example["rows"], example["patterns"]["L1.H2"]):
            assert row == pytest.approx(pattern[q, :q + 1].tolist(), abs=5e-4)
    per_head = sum(q + 1 for e in explorer["examples"] for q in e["rows"])
    monkeypatch.setattr(kernel, "MAX_EXPLORER_WEIGHTS", per_head)
    explorer = attention(tiny, prompts, HEADS, query=labels, show_progress=False)["explorer"]
    assert explorer["heads"] == ["L1.H2"]
    assert all(set(e["patterns"]) == {"L1.H2"} for e in explorer["examples"])

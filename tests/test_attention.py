"""Attention summaries checked prompt by prompt against the cached patterns."""
import json
import math

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.attention import attention
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples, write_jsonl

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


def test_masses_carry_their_standard_error_and_prompt_count(tiny):
    import statistics

    prompts = tokenize(tiny, mcq_examples(6, ragged=True), source_name="clean")
    result = attention(tiny, prompts, HEADS, batch_size=4, show_progress=False)
    for head in HEADS:
        rows, selves = rows_by_hand(tiny, prompts, head, ir.LAST)
        labels = [float(rows[i][prompts.marks["labels"].index[i]].sum()) for i in range(6)]
        for name, per_prompt in (("labels", labels), ("self", selves)):
            assert result["n"][head.id][name] == 6
            expected = statistics.stdev(per_prompt) / math.sqrt(6)
            assert result["stderr"][head.id][name] == pytest.approx(expected, abs=1e-6)
            assert result["values"][head.id][name] == pytest.approx(statistics.mean(per_prompt), abs=1e-6)


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


SPEC = '''spec "reuse"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads, on=clean, metric=ld)
'''


def forward_passes(folder, text, monkeypatch):
    """Run the spec `text` in `folder`, counting forward passes through the model's first block."""
    import circ.runtime.models.loading as loading
    from circ.cli.run import run_spec

    calls, boot = [0], loading.load_model

    def counted(*args, **kwargs):
        loaded = boot(*args, **kwargs)
        loaded.bridge.blocks[0].register_forward_pre_hook(lambda module, inputs: calls.__setitem__(0, calls[0] + 1))
        return loaded

    monkeypatch.setattr(loading, "load_model", counted)
    (folder / "spec.circ").write_text(text)
    out = folder / f"out{len(list(folder.iterdir()))}"
    run_spec(str(folder / "spec.circ"), str(out), model=None, device=None, batch_size=3, seed=0,
             trust_remote_code=False, progress=False)
    return calls[0], json.loads((out / "results.json").read_text())


def test_attention_reads_the_datasets_cached_run_instead_of_a_forward_of_its_own(tiny, tiny_dir, tmp_path, monkeypatch):
    (tmp_path / "model").symlink_to(tiny_dir)
    examples = mcq_examples(5, ragged=True)
    write_jsonl(tmp_path / "data.jsonl", examples)
    without, _ = forward_passes(tmp_path, SPEC, monkeypatch)
    with_attention, results = forward_passes(
        tmp_path, SPEC + "analysis attn = attention(L1.H2 + L0.H0, on=clean, query=last, explore=2)\n"
        "analysis at_labels = attention(L1.H2, on=clean, query=labels, explore=1)\n", monkeypatch)
    # the summaries come from the clean run: each analysis runs only its explorer's few
    # prompts (one batch each), never the dataset's 5
    assert with_attention == without + 2
    assert without == 2 * 2  # the clean run and DLA, each 2 batches of at most 3 prompts
    prompts = tokenize(tiny, examples, source_name="clean")
    for name, heads, query in [("attn", HEADS, ir.LAST), ("at_labels", HEADS[:1], ir.Position("named", name="labels"))]:
        alone = attention(tiny, prompts, heads, query=query, batch_size=3, show_progress=False)
        got = results["analyses"][name]
        for head in heads:
            assert got["values"][head.id] == pytest.approx(alone["values"][head.id], abs=1e-6)
            assert got["spread"][head.id] == pytest.approx(alone["spread"][head.id], abs=1e-6)
            assert got["patterns"][head.id]["weights"] == pytest.approx(alone["patterns"][head.id]["weights"], abs=1e-6)

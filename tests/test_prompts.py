"""Tokenising datasets: BOS, right padding, answers, corrupt prompts, named positions."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.data.examples import Example
from circ.runtime.data.prompts import tokenize
from circ.runtime.data.readers import DatasetError
from conftest import mcq_examples


def ids(tiny, text):
    return tiny.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_tokens_are_bos_then_the_text_right_padded(tiny):
    examples = [Example("the cat is", " A", (" B",)), Example("the dog", " B", (" A", " C"))]
    prompts = tokenize(tiny, examples, source_name="d")
    bos, pad = tiny.tokenizer.bos_token_id, tiny.tokenizer.pad_token_id
    assert prompts.tokens.tolist() == [[bos, *ids(tiny, "the cat is")], [bos, *ids(tiny, "the dog"), pad]]
    assert prompts.lengths.tolist() == [4, 3] and prompts.last.tolist() == [3, 2]
    assert prompts.answer.tolist() == [ids(tiny, " A")[0], ids(tiny, " B")[0]]
    assert prompts.wrong[1].tolist() == [ids(tiny, " A")[0], ids(tiny, " C")[0]]
    assert prompts.wrong_valid.tolist() == [[True, False], [True, True]]


def test_right_padding_leaves_real_positions_unchanged(tiny):
    examples = mcq_examples(4, ragged=True)
    prompts = tokenize(tiny, examples, source_name="d")
    assert len(set(prompts.lengths.tolist())) > 1
    with torch.no_grad():
        batched = tiny.bridge(prompts.tokens)
        for i in range(len(prompts)):
            alone = tiny.bridge(prompts.tokens[i:i + 1, : prompts.lengths[i]])
            assert torch.allclose(batched[i, : prompts.lengths[i]], alone[0], atol=1e-5)


def test_named_positions_point_at_the_marked_tokens(tiny):
    examples = mcq_examples(3, ragged=True)
    prompts = tokenize(tiny, examples, source_name="d")
    label_ids = {ids(tiny, label)[0] for label in ("A", "B")}
    labels = prompts.marks["labels"]
    for i, example in enumerate(examples):
        picked = labels.index[i][labels.valid[i]].tolist()
        assert {int(prompts.tokens[i, p]) for p in picked} == label_ids
        (answer_pos,) = prompts.marks["answer_label"].index[i].tolist()
        assert int(prompts.tokens[i, answer_pos]) == ids(tiny, example.answer.strip())[0]


def test_position_masks(tiny):
    prompts = tokenize(tiny, mcq_examples(3, ragged=True), source_name="d")
    last = prompts.position_mask(ir.LAST)
    assert last.sum(1).tolist() == [1, 1, 1] and last.nonzero()[:, 1].tolist() == prompts.last.tolist()
    assert prompts.position_mask(ir.ALL).sum(1).tolist() == prompts.lengths.tolist()
    second_last = prompts.position_mask(ir.Position("index", index=-2)).nonzero()[:, 1]
    assert second_last.tolist() == (prompts.lengths - 2).tolist()
    assert prompts.position_mask(ir.Position("named", name="labels")).sum(1).tolist() == [2, 2, 2]
    with pytest.raises(DatasetError, match='no position named "nope"'):
        prompts.position_mask(ir.Position("named", name="nope"))
    with pytest.raises(DatasetError, match="outside a prompt"):
        prompts.position_mask(ir.Position("index", index=40))


def test_batches_cover_the_dataset_and_trim_padding(tiny):
    prompts = tokenize(tiny, mcq_examples(5, ragged=True), source_name="d")
    batches = list(prompts.batches(2))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert torch.cat([b.rows for b in batches]).tolist() == [0, 1, 2, 3, 4]
    for batch in batches:
        assert batch.tokens.shape[1] == int(batch.lengths.max())
        assert torch.equal(batch.tokens, prompts.tokens[batch.rows, : batch.tokens.shape[1]])
    assert batches[2].examples == (prompts.examples[4],)


def test_corrupt_tokens_match_in_length(tiny):
    prompts = tokenize(tiny, mcq_examples(2), source_name="d")
    assert prompts.corrupt.shape == prompts.tokens.shape
    assert not torch.equal(prompts.corrupt, prompts.tokens)
    bad = [Example("the cat is", " A", (" B",), corrupt="the cat", line=7)]
    with pytest.raises(DatasetError) as caught:
        tokenize(tiny, bad, source_name="file.jsonl")
    assert caught.value.line == 7 and "must match" in caught.value.message


@pytest.mark.parametrize("example, fragment", [
    (Example("the cat", " A", (" zebra",), line=4), "not in the model's vocabulary"),
    (Example(" ".join(["cat"] * 30), " A", (" B",), line=4), "longer than the model's context"),
    (Example("the cat", " A", (" B",), marks=(("m", (3,)),), line=4), "belong to no token"),
])
def test_bad_examples_name_their_line(tiny, example, fragment):
    with pytest.raises(DatasetError) as caught:
        tokenize(tiny, [Example("the dog", " A", (" B",), line=1), example], source_name="file.jsonl")
    assert caught.value.path == "file.jsonl" and caught.value.line == 4
    assert fragment in caught.value.message


def test_an_answer_of_several_tokens_is_teacher_forced(tiny):
    """" A B" is two tokens: the prompt reads on with " A", the answer keeps both, and
    the corrupted prompt gets the same continuation; one-token answers change nothing."""
    examples = [Example("the cat", " A B", (" C",), corrupt="the dog", line=1),
                Example("the sun", " A", (" B",), corrupt="the cat", line=2)]
    prompts = tokenize(tiny, examples, source_name="d")
    ids = tiny.tokenizer
    a, b = ids(" A", add_special_tokens=False)["input_ids"][0], ids(" B", add_special_tokens=False)["input_ids"][0]
    assert prompts.answer_count.tolist() == [2, 1] and prompts.split.tolist() == [True, False]
    assert prompts.answer_tokens[0].tolist() == [a, b] and prompts.answer[0] == a
    assert prompts.lengths.tolist() == [4, 3]  # BOS, "the", "cat" and the continuation " A"
    assert prompts.tokens[0, 3] == a and prompts.corrupt[0, 3] == a
    assert prompts.answer_start.tolist() == [2, 2]


def test_corrupt_prompts_for_all_or_none(tiny):
    examples = [Example("the cat", " A", (" B",), corrupt="the dog", line=1), Example("the sun", " A", (" B",), line=2)]
    with pytest.raises(DatasetError) as caught:
        tokenize(tiny, examples, source_name="d")
    assert caught.value.line == 2 and "no corrupted prompt" in caught.value.message

"""Generators: each prompt is re-parsed here, independently of the generator's own
bookkeeping, and checked against its answer, wrong answers, corrupt prompt and marks."""
import subprocess
import sys

import pytest
from circ.compiler.ir import Word
from circ.runtime.data.generators import build
from circ.runtime.data.vocab import demo_vocabulary
from hypothesis import given, settings
from hypothesis import strategies as st


def parse_mcq(prompt):
    """(question words, [(label, text)], answer text) from the prompt's words."""
    words = prompt.split(" ")
    assert words[:2] == ["question", ":"]
    q_end = words.index("?")
    tail = words[q_end + 1:]
    answer_at = len(tail) - 5
    assert tail[answer_at:answer_at + 2] == ["answer", ":"] and tail[-2:] == ["label", ":"]
    body = tail[:answer_at]
    options = [(body[i], body[i + 2]) for i in range(0, len(body), 3)]
    assert all(body[i + 1] == ":" for i in range(0, len(body), 3))
    return words[2:q_end + 1], options, tail[answer_at + 2]


def word_at(prompt, offset):
    assert offset == 0 or prompt[offset - 1] == " "
    return prompt[offset:].split(" ")[0]


def check_mcq(example):
    """Every field of an mcq example agrees with the prompt text."""
    question, options, answer_text = parse_mcq(example.prompt)
    labels = [label for label, _ in options]
    texts = [text for _, text in options]
    assert texts.count(answer_text) == 1
    correct = texts.index(answer_text)
    assert example.answer == labels[correct]
    assert example.wrong == tuple(l for l in labels if l != example.answer)
    assert len(set(labels)) == len(labels)
    marks = dict(example.marks)
    assert [word_at(example.prompt, o) for o in marks["labels"]] == labels
    assert [word_at(example.prompt, o) for o in marks["options"]] == texts
    assert [word_at(example.prompt, o) for o in marks["answer_label"]] == [example.answer]
    assert [word_at(example.prompt, o) for o in marks["answer_text"]] == [answer_text]
    assert marks["answer_label"][0] + len(example.answer) + 3 == marks["answer_text"][0]
    assert [word_at(example.prompt, o) for o in marks["answer"]] == [answer_text]
    assert marks["answer"][0] > marks["options"][-1]
    assert marks["final"] == (len(example.prompt) - 1,)
    # The corrupt prompt: same words except that the correct text sits under another label.
    c_question, c_options, c_answer = parse_mcq(example.corrupt)
    assert (c_question, c_answer) == (question, answer_text)
    assert [l for l, _ in c_options] == labels
    assert sorted(t for _, t in c_options) == sorted(texts)
    c_texts = [t for _, t in c_options]
    assert c_texts.index(answer_text) != correct
    assert sum(a != b for a, b in zip(texts, c_texts)) == 2
    assert len(example.corrupt.split(" ")) == len(example.prompt.split(" "))
    return question, labels, texts, correct


def test_paper_format_and_marks():
    examples = build("mcq", {"n": 50, "labels": "ABCD", "seed": 0})
    assert len(examples) == 50
    for example in examples:
        question, labels, texts, _ = check_mcq(example)
        assert labels == list("ABCD")
        assert question[-1] == "?" and len(texts) == 4


def test_correct_position_is_spread_over_all_labels():
    answers = [e.answer for e in build("mcq", {"n": 400, "seed": 5})]
    for label in "ABCD":
        assert 60 < answers.count(label) < 140


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = build("mcq", {"n": 20, "seed": 7})
    assert a == build("mcq", {"n": 20, "seed": 7})
    assert [e.prompt for e in a] != [e.prompt for e in build("mcq", {"n": 20, "seed": 8})]


def test_random_letters_are_distinct_and_never_alphabetical():
    for labels in (Word("random_letters"), "random_letters"):
        examples = build("mcq", {"n": 100, "labels": labels, "seed": 1})
        seen = set()
        for example in examples:
            _, got, _, _ = check_mcq(example)
            assert all(len(l) == 1 and l.isupper() for l in got)
            assert got != sorted(got)
            seen.update(got)
        assert len(seen) > 20


def test_number_labels_and_explicit_labels():
    for example in build("mcq", {"n": 10, "labels": Word("numbers"), "options": 3}):
        assert check_mcq(example)[1] == ["1", "2", "3"]
    for example in build("mcq", {"n": 10, "labels": "1234"}):
        assert check_mcq(example)[1] == ["1", "2", "3", "4"]
    for example in build("mcq", {"n": 10, "labels": "AB"}):
        assert check_mcq(example)[1] == ["A", "B"]


def test_every_word_is_in_the_demo_vocabulary():
    vocab = set(demo_vocabulary())
    assert len(vocab) == len(demo_vocabulary())
    for example in build("mcq", {"n": 200, "labels": Word("random_letters"), "options": 9}):
        assert set(example.prompt.split()) <= vocab
    for example in build("induction", {"n": 50, "length": 20}):
        assert set(example.prompt.split()) <= vocab and example.answer in vocab


def test_move_answer_moves_the_text_and_keeps_the_original_as_corrupt():
    base = build("mcq", {"n": 60, "seed": 2})
    moved = build("move_answer", {"seed": 3}, ("mcq", {"n": 60, "seed": 2}))
    for before, after in zip(base, moved):
        q0, labels0, texts0, correct0 = check_mcq(before)
        q1, labels1, texts1, correct1 = check_mcq(after)
        assert (q0, labels0) == (q1, labels1)
        assert texts1[correct1] == texts0[correct0] and correct1 != correct0
        assert after.answer == labels0[correct1]
        assert after.corrupt == before.prompt


def test_shuffle_answers_reorders_the_same_options():
    base = build("mcq", {"n": 60, "seed": 2})
    shuffled = build("shuffle_answers", {"seed": 4}, ("mcq", {"n": 60, "seed": 2}))
    for before, after in zip(base, shuffled):
        q0, _, texts0, correct0 = check_mcq(before)
        q1, _, texts1, correct1 = check_mcq(after)
        assert q0 == q1 and sorted(texts0) == sorted(texts1) and texts0 != texts1
        assert texts1[correct1] == texts0[correct0]


def test_relabel_keeps_items_and_chains_of_derivations():
    chain = [("mcq", {"n": 30, "seed": 2}), ("move_answer", {"seed": 3})]
    moved = build("move_answer", {"seed": 3}, ("mcq", {"n": 30, "seed": 2}))
    relabelled = build("relabel", {"labels": "WXYZ"}, chain)
    for before, after in zip(moved, relabelled):
        _, _, texts0, correct0 = check_mcq(before)
        _, labels1, texts1, correct1 = check_mcq(after)
        assert labels1 == list("WXYZ") and texts0 == texts1 and correct0 == correct1
        assert after.answer == "WXYZ"[correct0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), options=st.integers(2, 9),
       labels=st.sampled_from(["random_letters", "numbers"]))
def test_any_seed_and_option_count_gives_consistent_examples(seed, options, labels):
    params = {"n": 5, "seed": seed, "options": options, "labels": labels}
    for example in build("mcq", params) + build("move_answer", {"seed": seed}, ("mcq", params)):
        assert len(check_mcq(example)[2]) == options


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), length=st.integers(4, 40))
def test_induction_answer_follows_the_earlier_occurrence(seed, length):
    for example in build("induction", {"n": 5, "length": length, "seed": seed}):
        words = example.prompt.split(" ")
        assert len(words) == length
        final = words[-1]
        earlier = [i for i, w in enumerate(words[:-1]) if w == final]
        assert len(earlier) == 1
        marks = dict(example.marks)
        offsets = [sum(len(w) + 1 for w in words[:i]) for i in range(length)]
        assert marks["previous"] == (offsets[earlier[0]],)
        assert marks["induction_target"] == (offsets[earlier[0] + 1],)
        assert example.answer == words[earlier[0] + 1]
        assert example.wrong and example.answer not in example.wrong
        assert final not in example.wrong and set(example.wrong) <= set(words)
        corrupt = example.corrupt.split(" ")
        assert len(corrupt) == length and corrupt.count(final) == 1
        assert sum(a != b for a, b in zip(words, corrupt)) == 1


@pytest.mark.parametrize("kind, params, base, message", [
    ("mcq", {}, None, "missing parameter 'n'"),
    ("mcq", {"n": 0}, None, "n must be at least 1"),
    ("mcq", {"n": "5"}, None, "n must be an integer"),
    ("mcq", {"n": True}, None, "n must be an integer"),
    ("mcq", {"n": 5, "labels": "AAB"}, None, "distinct"),
    ("mcq", {"n": 5, "labels": "ABC", "options": 4}, None, "3 labels given for 4 options"),
    ("mcq", {"n": 5, "labels": 4}, None, "labels must be"),
    ("mcq", {"n": 5, "labels": ["A", "B C"]}, None, "one word"),
    ("mcq", {"n": 5, "options": 12, "labels": "numbers"}, None, "options must be at most 9"),
    ("mcq", {"n": 5, "colour": 1}, None, "unknown parameter 'colour'"),
    ("mcq", {"n": 5}, ("mcq", {"n": 5}), "takes no base"),
    ("induction", {"n": 5, "length": 3}, None, "length must be at least 4"),
    ("induction", {"n": 5, "length": 10**4}, None, "length must be at most"),
    ("move_answer", {"seed": 1}, None, "give it a base"),
    ("move_answer", {}, ("induction", {"n": 2}), "multiple-choice"),
    ("move_answer", {}, "clean", "base must be"),
    ("relabel", {}, ("mcq", {"n": 2}), "missing parameter 'labels'"),
    ("relabel", {"labels": "AB"}, ("mcq", {"n": 2}), "2 labels given for 4 options"),
    ("shuffle_answers", {}, [("mcq", {"n": 2}), ("mcq", {"n": 2})], "not a derivation"),
    ("rainbow", {}, None, "unknown dataset kind 'rainbow'"),
])
def test_bad_parameters_raise_clear_errors(kind, params, base, message):
    with pytest.raises(ValueError, match=message):
        build(kind, params, base)


def test_generators_do_not_import_torch():
    code = "import sys, circ.runtime.data.generators; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

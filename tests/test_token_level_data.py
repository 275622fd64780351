"""Prompts built at the token level for the model's tokenizer: generators on a
byte-level BPE tokenizer (leading spaces, equal token lengths, single-token labels),
the random-token induction generator, prompts given as token ids, and the answer
tokens a run reports. The word-level demo tokenizer gets the ids it always got."""
from __future__ import annotations

import io
import json

import pytest
from circ.cli.run import run_spec
from circ.compiler import ir
from circ.runtime.data.generators import build
from circ.runtime.data.prompts import prepends_bos, tokenize
from circ.runtime.data.readers import DatasetError, read_jsonl
from circ.runtime.data.token_vocabulary import TokenVocabulary

pytestmark = pytest.mark.usefixtures("one_thread")


def vocabulary(loaded):
    return TokenVocabulary.from_hf(loaded.tokenizer, prepends_bos(loaded))


def encode(loaded, text):
    return loaded.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from circ.runtime.models.loading import load_model

    return load_model(ir.Model(source="demo"), spec_dir=tmp_path_factory.mktemp("demo"))


def test_mcq_scores_the_label_with_the_leading_space_the_bpe_tokenizer_reads(bpe_model):
    examples = build("mcq", {"n": 6, "seed": 1})
    prompts = tokenize(bpe_model, examples, source_name="d")
    for row, example in enumerate(examples):
        spaced = encode(bpe_model, " " + example.answer)
        assert len(spaced) == 1 and spaced != encode(bpe_model, example.answer)
        assert int(prompts.answer[row]) == spaced[0]
        assert encode(bpe_model, example.prompt + " " + example.answer) == encode(bpe_model, example.prompt) + spaced
        wrong = {int(w) for w, valid in zip(prompts.wrong[row], prompts.wrong_valid[row]) if valid}
        assert wrong == {encode(bpe_model, " " + label)[0] for label in example.wrong}


@pytest.mark.parametrize("kind, params", [("mcq", {"n": 8, "seed": 2}), ("induction", {"n": 8, "length": 10})])
def test_the_demo_tokenizer_gets_the_same_ids_as_before(demo, kind, params):
    """Word-level: the label in place is the label alone, as circ always scored it."""
    examples = build(kind, params, vocabulary=vocabulary(demo))
    assert examples == build(kind, params)
    prompts = tokenize(demo, examples, source_name="d")
    assert prompts.answer.tolist() == [encode(demo, e.answer)[0] for e in examples]


def test_induction_on_bpe_has_equal_lengths_and_single_token_spaced_answers(bpe_model):
    params = {"n": 16, "length": 12, "seed": 0}
    examples = build("induction", params, vocabulary=vocabulary(bpe_model))
    prompts = tokenize(bpe_model, examples, source_name="d")  # raises on unequal lengths
    assert prompts.corrupt is not None and prompts.corrupt.shape == prompts.tokens.shape
    for row, example in enumerate(examples):
        assert int(prompts.answer[row]) == encode(bpe_model, " " + example.answer)[0]
        assert bpe_model.tokenizer.decode([int(prompts.answer[row])]) == " " + example.answer
    with pytest.raises(DatasetError):  # word by word, as before, these prompts break on BPE
        tokenize(bpe_model, build("induction", params), source_name="d")


def test_induction_of_four_words_replaces_the_first_word_by_one_of_as_many_tokens(bpe_model):
    examples = build("induction", {"n": 20, "length": 4, "seed": 3}, vocabulary=vocabulary(bpe_model))
    prompts = tokenize(bpe_model, examples, source_name="d")
    assert bool((prompts.tokens != prompts.corrupt).any(dim=1).all())


def test_a_label_of_several_tokens_is_refused_where_a_metric_reads_one_token(bpe_model_dirs, tmp_path):
    spec = tmp_path / "labels.circ"
    spec.write_text(f'spec "labels"\nmodel hf("{bpe_model_dirs["llama"]}")\n'
                    'data clean = mcq(n=4, labels=["paper", "cow"], seed=0)\n'
                    'metric ld = logit_diff(answer, wrong) at last\n'
                    'analysis dla = attribute(heads, on=clean, metric=ld)\n')
    stderr = io.StringIO()
    code = run_spec(str(spec), str(tmp_path / "out"), model=None, device=None, batch_size=4, seed=0,
                    trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=stderr)
    assert code == 2
    text = stderr.getvalue()
    assert f"{spec}:5:" in text and "error[E600]" in text
    assert "'paper' is 3 tokens" in text and "answer_logprob(answer)" in text and "Traceback" not in text


def test_repeated_tokens_round_trip_and_repeat(bpe_model):
    voc = vocabulary(bpe_model)
    pool = set(voc.round_trip_tokens())
    examples = build("repeated_tokens", {"n": 12, "length": 14, "seed": 0}, vocabulary=voc)
    prompts = tokenize(bpe_model, examples, source_name="d")
    bos = bpe_model.tokenizer.bos_token_id
    for row, example in enumerate(examples):
        ids = list(example.tokens)
        assert ids[0] == bos and len(ids) == 15
        body = ids[1:]
        half = 14 // 2 + 1
        assert set(body) <= pool and len(set(body)) == half
        assert encode(bpe_model, bpe_model.tokenizer.decode(body)) == body
        assert encode(bpe_model, bpe_model.tokenizer.decode(list(example.corrupt[1:]))) == list(example.corrupt[1:])
        assert body[half:] == body[:14 - half]
        final, target = example.mark("final")[0], example.mark("induction_target")[0]
        assert ids[final] == ids[example.mark("previous")[0]]
        assert int(prompts.answer[row]) == ids[target]
        assert int(prompts.answer[row]) not in set(int(w) for w in prompts.wrong[row])
    assert prompts.tokens.tolist() == [list(e.tokens) for e in examples]


def test_repeated_tokens_without_a_tokenizer_says_so():
    with pytest.raises(ValueError, match="draws tokens from the model's tokenizer"):
        build("repeated_tokens", {"n": 2})


def test_jsonl_prompts_as_token_ids_are_used_exactly(bpe_model, tmp_path):
    path = tmp_path / "ids.jsonl"
    lines = [{"tokens": [0, 17, 23, 17, 23], "answer": 23, "wrong": [17, " A"], "corrupt": [0, 17, 40, 17, 23],
              "marks": {"first": [1]}},
             {"tokens": [5, 6, 7], "prompt": "shown", "answer": " B", "wrong": 9, "corrupt": [5, 8, 7]}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    prompts = tokenize(bpe_model, read_jsonl(path), source_name=str(path))
    assert prompts.tokens[0].tolist() == [0, 17, 23, 17, 23]
    assert prompts.tokens[1, :3].tolist() == [5, 6, 7]
    assert prompts.corrupt[0].tolist() == [0, 17, 40, 17, 23]
    assert prompts.answer.tolist() == [23, encode(bpe_model, " B")[0]]
    assert prompts.wrong[0].tolist() == [17, encode(bpe_model, " A")[0]]
    assert prompts.marks["first"].index[0].tolist() == [1]


@pytest.mark.parametrize("record, fragment", [
    ({"tokens": [0, 5, 100000], "answer": 3, "wrong": [4]}, "token id 100000 is outside the model's vocabulary"),
    ({"tokens": [0, 5], "answer": 99999, "wrong": [4]}, "token id 99999 is outside"),
    ({"tokens": [0, 5], "answer": 3, "wrong": [4], "corrupt": [0, 5, 6]}, "the corrupted prompt is 3 tokens"),
    ({"tokens": [0, 5], "answer": 3, "wrong": [4], "marks": {"m": [2]}}, 'mark "m": token index 2 is outside'),
])
def test_bad_token_ids_name_the_file_and_line(bpe_model, tmp_path, record, fragment):
    path = tmp_path / "bad.jsonl"
    good = {"tokens": [0, 5], "answer": 3, "wrong": [4]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DatasetError) as caught:
        tokenize(bpe_model, read_jsonl(path), source_name=str(path))
    assert str(caught.value).startswith(f"{path}:2: ") and fragment in str(caught.value)


@pytest.mark.parametrize("text, fragment", [
    ('{"tokens": [], "answer": 1, "wrong": [2]}', '"tokens" must be a non-empty list of token ids'),
    ('{"tokens": [1, "a"], "answer": 1, "wrong": [2]}', '"tokens" must be a non-empty list of token ids'),
    ('{"tokens": [1, 2], "answer": 1, "wrong": [2], "corrupt": "text"}', '"corrupt" must be a non-empty list'),
    ('{"prompt": "a b", "answer": 1, "wrong": [2], "corrupt": [1, 2]}', 'token ids need "tokens"'),
])
def test_malformed_token_fields_are_refused(tmp_path, text, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(DatasetError, match=fragment.replace("(", r"\(")):
        read_jsonl(path)


def test_results_say_which_tokens_the_answers_became(bpe_model_dirs, tmp_path):
    spec = tmp_path / "tokens.circ"
    spec.write_text(f'spec "tokens"\nmodel hf("{bpe_model_dirs["gpt2"]}")\n'
                    'data clean = mcq(n=6, labels="AB", seed=0)\n'
                    'data seqs = repeated_tokens(n=3, length=8, seed=0)\n'
                    'metric ld = logit_diff(answer, wrong) at last\n'
                    'analysis dla = attribute(heads, on=clean, metric=ld)\n'
                    'analysis seq = attribute(heads, on=seqs, metric=ld)\n')
    code = run_spec(str(spec), str(tmp_path / "out"), model=None, device=None, batch_size=4, seed=0,
                    trust_remote_code=False, progress=False, stdout=io.StringIO(), stderr=io.StringIO())
    assert code == 0
    datasets = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]
    assert {t["text"] for t in datasets["clean"]["answer_tokens"]["answer"]} == {" A", " B"}
    assert {t["text"] for t in datasets["clean"]["answer_tokens"]["wrong"]} == {" A", " B"}
    assert all(isinstance(t["id"], int) for t in datasets["clean"]["answer_tokens"]["answer"])
    assert datasets["seqs"]["answer_tokens"]["answer"] and datasets["seqs"]["example"]


def test_an_answer_that_merges_with_the_prompts_end_is_refused(bpe_model):
    from circ.runtime.data.examples import Example

    merged = Example("question : label : ", "A", ("B",), answer_separator="", line=4)
    with pytest.raises(DatasetError, match=r"d:4: answer 'A' merges with the end of the prompt into \['ĠA'\]"):
        tokenize(bpe_model, [merged], source_name="d")

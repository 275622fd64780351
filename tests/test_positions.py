"""Named positions: what each generator's prompts mark is exactly what the checker
declares, and a JSONL file's positions are read from the `marks` of its first lines."""
import json

import pytest
from circ.compiler import ir
from circ.compiler.api import compile_source
from circ.compiler.check.dataset_positions import FIRST_LINES, dataset_positions, jsonl_positions
from circ.compiler.check.signatures import DERIVATIONS, GENERATORS
from circ.compiler.diagnostics import CircError
from circ.runtime.data.generators import build
from circ.runtime.data.token_vocabulary import TokenVocabulary

# A tokenizer of one token per lowercase letter, for the generator that draws tokens.
LETTERS = TokenVocabulary(encode=lambda text: [ord(c) - 97 for c in text],
                          decode=lambda ids: "".join(chr(97 + i) for i in ids),
                          size=26, special=frozenset(), bos=None)



def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path

MCQ = {"n": 6, "seed": 1}
BUILT = {
    "mcq": lambda: build("mcq", MCQ),
    "induction": lambda: build("induction", {"n": 6, "length": 9}),
    "repeated_tokens": lambda: build("repeated_tokens", {"n": 6, "length": 9}, vocabulary=LETTERS),
    "move_answer": lambda: build("move_answer", {"seed": 2}, ("mcq", MCQ)),
    "shuffle_answers": lambda: build("shuffle_answers", {"seed": 2}, ("mcq", MCQ)),
    "relabel": lambda: build("relabel", {"labels": "numbers"}, ("mcq", MCQ)),
}


def test_every_generator_and_derivation_is_covered():
    assert set(BUILT) == {k for k in GENERATORS if GENERATORS[k].positions} | set(DERIVATIONS)


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_runtime_marks_equal_the_declared_positions(kind):
    declared = set((GENERATORS.get(kind) or DERIVATIONS[kind]).positions)
    for example in BUILT[kind]():
        assert {name for name, offsets in example.marks if offsets} == declared


def test_file_readers_declare_no_positions():
    assert dataset_positions(ir.Dataset("d", "autocircuit", (("path", "x.json"),))) == frozenset()


def test_jsonl_positions_are_the_marks_every_first_line_gives(tmp_path):
    rows = [{"prompt": "a b c", "answer": " d", "wrong": [" e"], "marks": {"x": "a", "y": "b"}},
            {"prompt": "a b c", "answer": " d", "wrong": [" e"], "marks": {"x": "a"}}]
    assert jsonl_positions(write_jsonl(tmp_path / "d.jsonl", rows)) == {"x"}
    # only the first lines are read: a mark missing further down is the run's to report
    later = [rows[0]] * FIRST_LINES + [rows[1]]
    assert jsonl_positions(write_jsonl(tmp_path / "e.jsonl", later)) == {"x", "y"}
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert jsonl_positions(tmp_path / "bad.jsonl") is None
    assert jsonl_positions(tmp_path / "absent.jsonl") is None


def _codes(text: str, folder=None) -> list[tuple[str, int, int, str]]:
    path = str((folder / "s.circ") if folder else "s.circ")
    with pytest.raises(CircError) as caught:
        compile_source(text, path)
    return [(d.code, d.span.line, d.span.col, d.hint or "") for d in caught.value.diagnostics]


def test_a_misspelled_position_names_the_closest_and_the_valid_ones():
    [(code, line, col, hint)] = _codes(
        "data clean = mcq(n=4)\nmetric ld = logit_diff(answer, wrong) at answer_txt\n"
        "analysis dla = attribute(heads, on=clean, metric=ld)\n")
    assert (code, line, col) == ("E321", 2, 42)
    assert hint == ("did you mean `answer_text`? positions of `clean`: all, answer, "
                    "answer_label, answer_text, final, labels, last, options")


def test_a_jsonl_dataset_is_checked_against_its_own_marks(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a b c", "answer": " d", "wrong": [" e"],
                                        "marks": {"subject": "b"}}])
    text = ('data d = jsonl("d.jsonl")\nmetric ld = logit_diff(answer, wrong) at subject\n'
            "analysis dla = attribute(heads, on=d, metric=ld)\n"
            "analysis att = attention(L0.H0, on=d, query=subjetc)\n")
    [(code, line, col, hint)] = _codes(text, tmp_path)
    assert (code, line, col) == ("E321", 4, 45)
    assert hint.startswith("did you mean `subject`? positions of `d`: all, last, subject")


def test_a_metric_is_checked_on_every_dataset_an_analysis_runs_it_on():
    diagnostics = _codes(
        "data clean = mcq(n=4)\ndata ind = induction(n=4)\n"
        "metric ld = logit_diff(answer, wrong) at answer_text\n"
        "analysis a = attribute(heads, on=clean, metric=ld)\n"
        "analysis b = attribute(heads, on=ind, metric=ld)\n")
    assert [d[:3] for d in diagnostics] == [("E322", 5, 1)]


def test_attends_reads_the_dataset_of_its_attention_plus_bos_and_self():
    [(code, line, col, hint)] = _codes(
        "data clean = mcq(n=4)\nmetric ld = logit_diff(answer, wrong) at last\n"
        "analysis dla = attribute(heads, on=clean, metric=ld)\ncircuit out = top(dla, 3)\n"
        "categories out {\n  letter = attends(answr_text) > 0.5 and attends(bos) < 0.5\n}\n")
    assert (code, line, col) == ("E321", 6, 20)
    assert hint == ("did you mean `answer_text`? positions of `clean`: answer, answer_label, "
                    "answer_text, bos, final, labels, options, self")


def test_mark_names_a_spec_cannot_write_are_never_listed(tmp_path):
    rows = [{"prompt": "a b", "answer": " c", "wrong": [" d"],
             "marks": {"subject": "a", "\u001b[31mred": "b", "two words": "b"}}]
    assert jsonl_positions(write_jsonl(tmp_path / "d.jsonl", rows)) == {"subject"}

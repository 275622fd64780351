"""JSONL and auto-circuit dataset files: fields, marks, and errors that name file and line."""
import json

import pytest
from circ.runtime.data.readers import DatasetError, read_autocircuit, read_jsonl


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_jsonl_reads_fields_lines_and_marks(tmp_path):
    rows = [
        {"prompt": "the cat is ( A )", "answer": " A", "wrong": [" B", " C"], "corrupt": "the dog is ( A )",
         "marks": {"label": "A", "cat": [4, 5]}},
        {"prompt": "the dog", "answer": " B", "wrong": " A"},
    ]
    path = write(tmp_path, "d.jsonl", json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    first, second = read_jsonl(path)
    assert first.prompt == "the cat is ( A )" and first.answer == " A"
    assert first.wrong == (" B", " C") and first.corrupt == "the dog is ( A )"
    assert first.mark("label") == (13,) and first.mark("cat") == (4, 5)
    assert first.line == 1 and second.line == 3
    assert second.wrong == (" A",) and second.corrupt is None and second.marks == ()


def test_substring_mark_covers_every_character(tmp_path):
    row = {"prompt": "x ( B ) y", "answer": " B", "wrong": [" A"], "marks": {"opt": "( B )"}}
    (example,) = read_jsonl(write(tmp_path, "d.jsonl", json.dumps(row)))
    assert example.mark("opt") == (2, 3, 4, 5, 6)


@pytest.mark.parametrize("text, line, fragment", [
    ('{"prompt": "a", "answer": " b", "wrong": [" c"]}\n{"prompt": "a", "wrong": [" c"]}', 2, 'missing field "answer"'),
    ('{"prompt": "a", "answer": " b", "wrong": [" c"]}\n{not json', 2, "not valid JSON"),
    ('[1, 2]', 1, "JSON object"),
    ('{"prompt": "a", "answer": " b", "wrong": []}', 1, '"wrong" must be'),
    ('{"prompt": "a", "answer": 3.5, "wrong": [" c"]}', 1, '"answer" must be a non-empty string or a token id'),
    ('{"prompt": "a", "answer": -1, "wrong": [" c"]}', 1, '"answer" must be a non-empty string or a token id'),
    ('{"prompt": "abc", "answer": " b", "wrong": [" c"], "marks": {"m": "zz"}}', 1, "does not occur"),
    ('{"prompt": "abc", "answer": " b", "wrong": [" c"], "marks": {"m": [7]}}', 1, "outside the prompt"),
    ('{"prompt": "abc", "answer": " b", "wrong": [" c"], "marks": {"m": [1.5]}}', 1, "character offsets"),
])
def test_jsonl_errors_name_the_line(tmp_path, text, line, fragment):
    path = write(tmp_path, "bad.jsonl", text)
    with pytest.raises(DatasetError) as caught:
        read_jsonl(path)
    assert caught.value.line == line and fragment in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DatasetError, match="no examples"):
        read_jsonl(write(tmp_path, "empty.jsonl", "\n  \n"))
    with pytest.raises(DatasetError, match="no such file"):
        read_jsonl(tmp_path / "absent.jsonl")


AUTOCIRCUIT = """{
  "seq_labels": ["x"],
  "prompts": [
    {"clean": "the cat", "corrupt": "the dog",
     "answers": [" A"], "wrong_answers": [" B"]},
    {"clean": "the sun", "corrupt": "the moon",
     "answers": [" B"], "wrong_answers": [" A", " C"]}
  ]
}"""


def test_autocircuit_reads_prompts_with_their_lines(tmp_path):
    first, second = read_autocircuit(write(tmp_path, "ac.json", AUTOCIRCUIT))
    assert (first.prompt, first.corrupt, first.answer, first.wrong) == ("the cat", "the dog", " A", (" B",))
    assert second.wrong == (" A", " C")
    assert (first.line, second.line) == (4, 6)


def test_autocircuit_errors(tmp_path):
    bad = AUTOCIRCUIT.replace('"answers": [" B"]', '"answers": [" B", " C"]')
    with pytest.raises(DatasetError) as caught:
        read_autocircuit(write(tmp_path, "ac.json", bad))
    assert caught.value.line == 6 and "exactly one answer" in caught.value.message
    with pytest.raises(DatasetError, match='"prompts" list'):
        read_autocircuit(write(tmp_path, "ac2.json", '{"items": []}'))
    with pytest.raises(DatasetError) as caught:
        read_autocircuit(write(tmp_path, "ac3.json", '{\n"prompts": [\n}'))
    assert caught.value.line == 3
    missing = AUTOCIRCUIT.replace('"clean": "the sun", ', "")
    with pytest.raises(DatasetError, match='missing field "clean"'):
        read_autocircuit(write(tmp_path, "ac4.json", missing))

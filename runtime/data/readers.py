"""Read prompt datasets from files: circ's JSONL format and auto-circuit's JSON format.

JSONL: one object per line (blank lines are skipped) with the fields

    prompt   the text the model reads (required unless `tokens` is given)
    tokens   the prompt as token ids, used exactly as given (BOS included when the
             model should read one), to reproduce another tool's token sequence;
             `prompt` is then optional text for display
    answer   the correct next token as text, e.g. " A", or as a token id (required)
    wrong    the wrong answers: a list of strings or token ids, or one (required)
    corrupt  a corrupted prompt of the same token length (optional): text, or token
             ids when `tokens` is given
    marks    named positions (optional): {name: [char offsets]} or {name: "substring"}.
             A substring marks every character of its first occurrence, so the
             name covers each token the substring touches. With `tokens`, marks
             are token indices: {name: [indices]}.

auto-circuit JSON: {"prompts": [{"clean": ..., "corrupt": ..., "answers": [...],
"wrong_answers": [...]}, ...]}; circ takes exactly one answer per prompt.

Every problem raises `DatasetError` naming the file and, where known, the line.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from circ.runtime.data.examples import Example


class DatasetError(Exception):
    """A dataset that cannot be used, with the file and line it came from."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def read_jsonl(path) -> list[Example]:
    """Read a JSONL dataset file into examples, each remembering its line number."""
    text = _read_text(path)
    examples = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        record = _parse_json(raw, path, number)
        if not isinstance(record, dict):
            raise DatasetError(path, number, "each line must be a JSON object")
        examples.append(_example_from_record(record, path, number))
    if not examples:
        raise DatasetError(path, None, "the file holds no examples")
    return examples


def read_autocircuit(path) -> list[Example]:
    """Read an auto-circuit prompt file ({"prompts": [...]}) into examples."""
    text = _read_text(path)
    document = _parse_json(text, path, None)
    if not isinstance(document, dict) or not isinstance(document.get("prompts"), list):
        raise DatasetError(path, 1, 'expected an object with a "prompts" list')
    records = document["prompts"]
    if not records:
        raise DatasetError(path, None, 'the "prompts" list is empty')
    lines = _element_lines(text, len(records))
    examples = []
    for record, line in zip(records, lines):
        if not isinstance(record, dict):
            raise DatasetError(path, line, "each prompt must be a JSON object")
        answers = _string_list(record, "answers", path, line)
        if len(answers) != 1:
            raise DatasetError(path, line, f'"answers" must hold exactly one answer, not {len(answers)}')
        converted = {
            "prompt": record.get("clean"),
            "answer": answers[0],
            "wrong": record.get("wrong_answers"),
            "corrupt": record.get("corrupt"),
        }
        if converted["prompt"] is None:
            raise DatasetError(path, line, 'missing field "clean"')
        if converted["wrong"] is None:
            raise DatasetError(path, line, 'missing field "wrong_answers"')
        examples.append(_example_from_record(converted, path, line, names=_AUTOCIRCUIT_NAMES))
    return examples


_JSONL_NAMES = {"prompt": "prompt", "answer": "answer", "wrong": "wrong", "corrupt": "corrupt"}
_AUTOCIRCUIT_NAMES = {"prompt": "clean", "answer": "answers", "wrong": "wrong_answers", "corrupt": "corrupt"}


def _read_text(path) -> str:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, None, "no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(path, None, "the file is not UTF-8 text") from None


def _parse_json(text: str, path, line: int | None):
    """The JSON value of `text` (a line of the file at `line`, or the whole file)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = line if line is not None else error.lineno
        raise DatasetError(path, where, f"not valid JSON: {error.msg}") from None
    except RecursionError:
        raise DatasetError(path, line, "not valid JSON: nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise DatasetError(path, line, f"not valid JSON: {error}") from None


def _example_from_record(record: dict, path, line: int | None, names=_JSONL_NAMES) -> Example:
    tokens = _token_ids(record, "tokens", path, line) if record.get("tokens") is not None else None
    required = ("answer", "wrong") if tokens is not None else ("prompt", "answer", "wrong")
    for key in required:
        if record.get(key) is None:
            raise DatasetError(path, line, f'missing field "{names[key]}"')
    prompt = _string(record, "prompt", names, path, line) if record.get("prompt") is not None else ""
    answer = _answer(record["answer"], names["answer"], path, line)
    wrong = record["wrong"]
    if not isinstance(wrong, list):
        wrong = [wrong]
    if not wrong:
        raise DatasetError(path, line, f'"{names["wrong"]}" must be a string or token id, or a non-empty list of them')
    wrong = [_answer(w, names["wrong"], path, line) for w in wrong]
    corrupt = record.get("corrupt")
    if tokens is not None:
        corrupt = None if corrupt is None else tuple(_token_ids(record, "corrupt", path, line))
        marks = _token_marks(record.get("marks"), path, line)
    else:
        if corrupt is not None and not isinstance(corrupt, str):
            raise DatasetError(path, line, f'"{names["corrupt"]}" must be a string (token ids need "tokens")')
        marks = _marks(record.get("marks"), prompt, path, line)
    return Example(prompt=prompt, answer=answer, wrong=tuple(wrong), corrupt=corrupt, marks=marks, line=line,
                   tokens=None if tokens is None else tuple(tokens))


def _is_id(value) -> bool:
    return type(value) is int and value >= 0


def _answer(value, field: str, path, line) -> str | int:
    if (isinstance(value, str) and value) or _is_id(value):
        return value
    raise DatasetError(path, line, f'"{field}" must be a non-empty string or a token id (an integer from 0), got {value!r}')


def _token_ids(record: dict, key: str, path, line) -> list[int]:
    value = record[key]
    if not isinstance(value, list) or not value or not all(_is_id(v) for v in value):
        raise DatasetError(path, line, f'"{key}" must be a non-empty list of token ids (integers from 0)')
    return value


def _token_marks(raw, path, line) -> tuple[tuple[str, tuple[int, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise DatasetError(path, line, '"marks" must be an object of name: token indices')
    marks = []
    for name, value in raw.items():
        if not isinstance(value, list) or not value or not all(type(v) is int for v in value):
            raise DatasetError(path, line, f'mark "{name}" must be a non-empty list of token indices (with "tokens")')
        marks.append((name, tuple(value)))
    return tuple(marks)


def _string(record: dict, key: str, names: dict, path, line) -> str:
    value = record[key]
    if not isinstance(value, str) or not value:
        raise DatasetError(path, line, f'"{names[key]}" must be a non-empty string')
    return value


def _string_list(record: dict, key: str, path, line) -> list[str]:
    value = record.get(key)
    if value is None:
        raise DatasetError(path, line, f'missing field "{key}"')
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DatasetError(path, line, f'"{key}" must be a list of strings')
    return value


def _marks(raw, prompt: str, path, line) -> tuple[tuple[str, tuple[int, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise DatasetError(path, line, '"marks" must be an object of name: offsets or substring')
    marks = []
    for name, value in raw.items():
        if isinstance(value, str):
            start = prompt.find(value)
            if not value or start < 0:
                raise DatasetError(path, line, f'mark "{name}": "{value}" does not occur in the prompt')
            offsets = tuple(range(start, start + len(value)))
        elif isinstance(value, list) and value and all(type(v) is int for v in value):
            bad = [v for v in value if not 0 <= v < len(prompt)]
            if bad:
                raise DatasetError(path, line, f'mark "{name}": offset {bad[0]} is outside the prompt (length {len(prompt)})')
            offsets = tuple(value)
        else:
            raise DatasetError(path, line, f'mark "{name}" must be a non-empty list of character offsets or a substring')
        marks.append((name, offsets))
    return tuple(marks)


def _element_lines(text: str, count: int) -> list[int | None]:
    """The 1-based line on which each element of the top-level "prompts" list starts."""
    match = re.search(r'"prompts"\s*:\s*\[', text)
    if match is None:
        return [None] * count
    decoder = json.JSONDecoder()
    lines: list[int | None] = []
    index = match.end()
    while len(lines) < count:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        try:
            _, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            return [None] * count
        lines.append(text.count("\n", 0, index) + 1)
        index = end
    return lines

"""Fuzzing the readers of results files: `circ diff` and `circ render` on results.json
files with values replaced, keys removed, hostile values planted (deep nesting,
5,000-digit integers, 1e400, NaN, objects where node ids belong, control
characters) and text cut short. Each ends with exit 0 or 1 and a report, or exit 2
and a message; never another exception. Output stays one line per line.
"""
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from circ.compiler.diff.inputs import diff_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circ.cli.render import render_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = [ROOT / "tests/fixtures/results_diff/old.json", ROOT / "tests/fixtures/results_diff/new.json",
            ROOT / "tests/fixtures/results/mcq_2l4h.json"]
DOCUMENTS = [json.loads(path.read_text(encoding="utf-8")) for path in FIXTURES]
FUZZ = settings(max_examples=60, derandomize=True, deadline=timedelta(seconds=5),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE_TEXT = {"deep": DEEP, "huge_int": "1" * 5000, "overflow": "1e400", "nan": "NaN",
                "minus_inf": "-Infinity"}
HOSTILE_VALUES = st.sampled_from([
    None, True, 0, -1, 1.5, 1e308, "", "x", "L0.H0", "L99.H99", "L0.H0\n::error title=forged::x",
    "a`b``c", "\x1b[31mred\x1b[0m", "\u202egnp.exe", [], [1, 2], {}, {"id": {}}, {"L0.H0": {}},
    [{"id": {"nested": 1}}], [{"id": None, "kind": 3}], [{"src": [], "dst": {}, "weight": "w"}],
])


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _replace(document, path, value):
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    if value is _DELETE:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return copy


_DELETE = object()


@st.composite
def mutated_results(draw):
    """The text of a results file: a fixture with some values replaced or removed,
    sometimes with hostile JSON text planted, sometimes cut short."""
    document = draw(st.sampled_from(DOCUMENTS))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(document))
        if draw(st.booleans()):  # the structure more often than the many leaf values
            paths = [p for p in paths if len(p) <= 4]
        path = draw(st.sampled_from(paths))
        value = draw(st.one_of(HOSTILE_VALUES, st.just(_DELETE))) if path else draw(HOSTILE_VALUES)
        document = _replace(document, path, value)
    text = json.dumps(document, indent=1)
    if draw(st.booleans()):
        marker = draw(st.sampled_from(sorted(HOSTILE_TEXT)))
        numbers = [i for i, ch in enumerate(text) if ch in "0123456789"]
        if numbers:
            at = draw(st.sampled_from(numbers))
            text = text[:at] + HOSTILE_TEXT[marker] + text[at + 1:]
    if draw(st.integers(0, 9)) == 0:
        text = text[:draw(st.integers(0, len(text)))]
    return text


def assert_lines_are_lines(text: str):
    for line in text.splitlines():
        assert "::error" not in line or not line.startswith("::"), line
        assert "\x1b" not in line and "\u202e" not in line, line


@FUZZ
@given(old=mutated_results(), new=mutated_results(), fmt=st.sampled_from(["text", "markdown", "json"]))
def test_diff_of_mutated_results_exits_cleanly(tmp_path_factory, old, new, fmt):
    folder = tmp_path_factory.mktemp("diff")
    (folder / "old.json").write_text(old, encoding="utf-8")
    (folder / "new.json").write_text(new, encoding="utf-8")
    output, code = diff_main(str(folder / "old.json"), str(folder / "new.json"), fmt=fmt)
    assert code in (0, 1, 2)
    assert output.strip()
    if fmt != "json":
        assert_lines_are_lines(output)


@FUZZ
@given(text=mutated_results())
def test_render_of_mutated_results_exits_cleanly(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("render")
    (folder / "results.json").write_text(text, encoding="utf-8")
    err = io.StringIO()
    code = render_path(str(folder / "results.json"), str(folder / "circuit.dot"), None, err)
    assert code in (0, 2), err.getvalue()
    if code == 2:
        assert err.getvalue().startswith("circ: ") and "Traceback" not in err.getvalue()
        assert_lines_are_lines(err.getvalue())


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXT))
def test_hostile_json_values_exit_2_with_a_message(tmp_path, name):
    """The cases of issue 15, each alone: render and diff exit 2 and say why."""
    good = FIXTURES[0].read_text(encoding="utf-8")
    bad = good.replace('"total": 2.75', f'"total": {HOSTILE_TEXT[name]}', 1)
    assert bad != good
    (tmp_path / "bad.json").write_text(bad, encoding="utf-8")
    output, code = diff_main(str(FIXTURES[0]), str(tmp_path / "bad.json"))
    assert code == 2 and output.strip() and len(output) < 2000, output[:500]
    err = io.StringIO()
    assert render_path(str(tmp_path / "bad.json"), str(tmp_path / "c.dot"), None, err) == 2
    assert err.getvalue().startswith("circ: ") and len(err.getvalue()) < 2000


def test_an_object_as_node_id_exits_2_with_a_message(tmp_path):
    document = json.loads(FIXTURES[0].read_text(encoding="utf-8"))
    document["circuits"]["output"]["nodes"][0]["id"] = {"L0": "H0"}
    (tmp_path / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    output, code = diff_main(str(FIXTURES[0]), str(tmp_path / "bad.json"))
    assert code == 2 and "node" in output, output
    err = io.StringIO()
    assert render_path(str(tmp_path / "bad.json"), str(tmp_path / "c.dot"), None, err) == 2
    assert "node" in err.getvalue(), err.getvalue()

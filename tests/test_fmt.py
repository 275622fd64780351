"""The formatter: canonical layout, comments kept, idempotent, meaning unchanged."""
from collections import Counter
from pathlib import Path

import pytest
from circ.compiler.api import compile_source
from circ.compiler.diagnostics import CircError
from circ.compiler.syntax.fmt import format_source
from circ.compiler.syntax.parser import parse_source
from circ.compiler.syntax.printer import expr_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "specs").glob("*.circ")) + sorted(
    (ROOT / "tests" / "fixtures" / "valid").glob("*.circ"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_format_keeps_the_ir_and_is_idempotent(path):
    text = path.read_text()
    formatted = format_source(text, str(path))
    assert compile_source(formatted, str(path)) == compile_source(text, str(path))
    assert format_source(formatted, str(path)) == formatted


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_format_keeps_every_comment(path):
    text = path.read_text()
    before = Counter(c.text for c in parse_source(text, "a").comments)
    after = Counter(c.text for c in parse_source(format_source(text), "a").comments)
    assert before == after


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.circ")),
                         ids=lambda p: p.name)
def test_specs_are_already_formatted(path):
    assert format_source(path.read_text()) == path.read_text()


def test_canonical_spacing_and_alignment():
    text = ("data clean=mcq( n = 8 )\ndata moved   =clean.move_answer(seed=1)\n\n"
            "metric ld=logit_diff(answer,wrong)at last\n"
            "circuit c=top(  p ,3 )where abs( effect )>0.05 and(dla>0 or dla<-1e-3)\n")
    assert format_source(text) == (
        "data clean = mcq(n=8)\n"
        "data moved = clean.move_answer(seed=1)\n"
        "\n"
        "metric ld = logit_diff(answer, wrong) at last\n"
        "circuit c = top(p, 3) where abs(effect) > 0.05 and (dla > 0 or dla < -1e-3)\n")


def test_long_calls_break_one_argument_per_line_with_comments_beside():
    text = ("analysis p = patch(heads,  # nodes\n  source=moved, target=clean,\n"
            "  # the metric\n  metric=ld)  # done\n")
    assert format_source(text) == (
        "analysis p = patch(\n"
        "    heads,  # nodes\n"
        "    source=moved,\n"
        "    target=clean,\n"
        "    # the metric\n"
        "    metric=ld,\n"
        ")  # done\n")


def test_categories_are_indented_and_aligned():
    text = "categories out {# note\n correct_letter=dla>0\n  u = not(dla > 0)   # t\n}"
    assert format_source(text) == (
        "categories out {  # note\n"
        "  correct_letter = dla > 0\n"
        "  u              = not (dla > 0)  # t\n"
        "}\n")


def test_strings_are_escaped_canonically():
    assert format_source('spec "a\\u0022b\\tc\\u00e9"') == 'spec "a\\"b\\tcé"\n'


def test_blank_lines_collapse_to_one():
    assert format_source("model demo\n\n\n\n# x\n\n\nmodel demo\n") == (
        "model demo\n\n# x\n\nmodel demo\n")


def test_unparsable_text_raises_a_diagnostic():
    with pytest.raises(CircError):
        format_source("data = (")


WORDS = st.sampled_from(["a", "b", "L0.H1", "heads", "1", "2.5e-3", '"s"', "top(a, 2)"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["data", "analysis", "circuit"]),
                          st.lists(WORDS, min_size=1, max_size=12),
                          st.sampled_from(["", "  # note"]), st.booleans()), max_size=6))
def test_generated_statements_round_trip(statements):
    lines = []
    for index, (keyword, args, comment, blank) in enumerate(statements):
        lines.append(f"{keyword} n{index} = f({', '.join(args)}){comment}")
        if blank:
            lines.append("")
    text = "\n".join(lines)
    formatted = format_source(text)
    assert format_source(formatted) == formatted
    assert [expr_text(st.value) for st in parse_source(formatted, "a").statements] == [
        expr_text(st.value) for st in parse_source(text, "a").statements]
    assert Counter(c.text for c in parse_source(formatted, "a").comments) == Counter(
        c.text for c in parse_source(text, "a").comments)

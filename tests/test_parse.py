"""The parser: syntax trees with spans, literals, comments, and syntax diagnostics."""
import dataclasses

import pytest
from circ.compiler.diagnostics import CircError
from circ.compiler.ir import Span
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.parser import parse_source


def only_statement(text):
    parsed = parse_source(text, "t.circ")
    assert len(parsed.statements) == 1
    return parsed.statements[0]


def syntax_error(text):
    with pytest.raises(CircError) as caught:
        parse_source(text, "t.circ")
    (diagnostic,) = caught.value.diagnostics
    return diagnostic


def test_definition_has_name_value_and_spans():
    statement = only_statement("data clean = mcq(n=200, labels=\"ABCD\")")
    assert isinstance(statement, s.Definition)
    assert (statement.keyword, statement.name) == ("data", "clean")
    assert statement.name_span == Span("t.circ", 1, 6, 1, 11)
    call = statement.value
    assert call.func == "mcq" and call.func_span == Span("t.circ", 1, 14, 1, 17)
    n, labels = call.args
    assert (n.name, n.value.value, n.value.text) == ("n", 200, "200")
    assert (labels.name, labels.value.value) == ("labels", "ABCD")
    assert labels.value.span == Span("t.circ", 1, 32, 1, 38)


def test_keywords_are_usable_as_argument_names():
    statement = only_statement("analysis dla = attribute(heads, on=clean, metric=ld)")
    assert [a.name for a in statement.value.args] == [None, "on", "metric"]


def test_string_escapes_are_decoded():
    statement = only_statement(r'spec "a\"b\\c\nd\te\u00e9"')
    assert statement.name.value == 'a"b\\c\nd\te\u00e9'


def test_numbers_with_exponents_and_signs():
    statement = only_statement("expect a.value >= -1.5e-3")
    assert statement.right.value == pytest.approx(-0.0015)
    assert statement.right.text == "-1.5e-3"
    assert isinstance(only_statement("data d = mcq(n=1e2)").value.args[0].value.value, float)
    assert only_statement("data d = mcq(n=12)").value.args[0].value.value == 12


def test_node_literals_and_set_operators():
    value = only_statement("circuit c = (L3.* - L3.H1) + [L0.MLP, L2.RESID, L3.H1.q, EMBED]").value
    assert isinstance(value, s.SetOp) and value.op == "+"
    assert isinstance(value.left, s.Paren) and value.left.inner.op == "-"
    assert [i.text if isinstance(i, s.NodeLit) else i.name for i in value.right.items] == [
        "L0.MLP", "L2.RESID", "L3.H1.q", "EMBED"]


def test_rules_bind_not_tighter_than_and_tighter_than_or():
    value = only_statement("circuit c = top(a, 3) where not x > 1 and y < 2 or abs(z) == 0").value
    rule = value.rule
    assert isinstance(rule, s.RuleBool) and rule.op == "or"
    assert rule.left.op == "and" and isinstance(rule.left.left, s.RuleNot)
    assert isinstance(rule.right.left, s.TermCall) and rule.right.left.func == "abs"


def test_categories_block_and_constraint_arguments():
    parsed = parse_source("categories out {\n  a = dla > 0\n  b = spread(labels) > 0.8\n}\n"
                          "expect low.recovered(clean, rank <= 4) >= 0.9\n", "t.circ")
    block, expect = parsed.statements
    assert [e.name for e in block.entries] == ["a", "b"]
    assert block.entries[1].span.line == 3
    rank = expect.left.args[1]
    assert (rank.name, rank.op, rank.value.value) == ("rank", "<=", 4)


def test_comments_are_collected_with_positions():
    parsed = parse_source("# head\nmodel demo  # tail\n", "t.circ")
    assert [(c.text, c.line, c.col) for c in parsed.comments] == [
        ("# head", 1, 1), ("# tail", 2, 13)]


def test_no_lark_object_survives_parsing():
    parsed = parse_source(open("specs/mcq_correct_letter.circ").read(), "x.circ")

    def walk(value):
        assert not type(value).__module__.startswith("lark"), type(value)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            assert type(value) is str

    walk(parsed)


@pytest.mark.parametrize("text, code, line, col", [
    ("data clean mcq(n=1)", "E101", 1, 12),
    ("data a = mcq(n=1\ndata b = mcq(n=2)", "E102", 1, 13),
    ("circuit c = [L0.H0))", "E102", 1, 19),
    ('spec "open\nmodel demo', "E103", 1, 6),
    ("anlysis a = b", "E104", 1, 1),
    ("circuit c = top(a, 1) wher x > 1", "E104", 1, 23),
    (r'spec "\q"', "E105", 1, 7),
    ("data a = b $", "E106", 1, 12),
    ("data clean =\nmetric ld = loss", "E108", 2, 1),
    ("data a = mcq(n=1 seed=2)", "E111", 1, 18),
])
def test_syntax_errors_name_the_mistake(text, code, line, col):
    diagnostic = syntax_error(text)
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.col) == (code, line, col)


def test_misspelled_keyword_hint_names_the_keyword():
    assert syntax_error("anlysis a = b").hint == "did you mean `analysis`?"


def test_deep_nesting_is_a_diagnostic_not_a_crash():
    diagnostic = syntax_error("circuit c = " + "(" * 3000 + "heads" + ")" * 3000)
    assert diagnostic.code == "E110"

"""The table parser (compiler/syntax/lalr.py) against Lark's own parser: on every
spec, fixture and documentation block, on thousands of mutations of them and on
texts where the contextual lexer decides, both accept the same texts and give the
same syntax tree, spans and comments. Lark's tree, with its propagated positions,
is walked here into the same builder, so only the parsing differs."""
import random
import re
from importlib import resources
from pathlib import Path

import pytest
from circ.compiler.diagnostics import CircError
from circ.compiler.ir import normalize_line_ends
from circ.compiler.syntax.fmt import format_source
from circ.compiler.syntax.parser import MAX_DEPTH, _TreeBuilder, parse_source
from circ.compiler.syntax.tree import Comment, SourceFile
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

ROOT = Path(__file__).resolve().parent.parent
_comments: list[Token] = []
REFERENCE = Lark(resources.files("circ.grammar").joinpath("circ.lark").read_text("utf-8"),
                 parser="lalr", propagate_positions=True, maybe_placeholders=True, cache=False,
                 lexer_callbacks={"COMMENT": _comments.append})


def reference_parse(text: str, path: str) -> SourceFile | None:
    """Lark's parse tree walked into the syntax tree; None when Lark rejects the text."""
    text = normalize_line_ends(text)
    _comments.clear()
    try:
        tree = REFERENCE.parse(text)
    except UnexpectedInput:
        return None
    builder = _TreeBuilder(path)

    def build(node: Tree):
        children = [build(c) if isinstance(c, Tree) else token(c) if isinstance(c, Token) else c
                    for c in node.children]
        meta = node.meta
        span = None if meta.empty else (meta.line, meta.column, meta.end_line, meta.end_column)
        return getattr(builder, node.data)(span, children)

    def token(t: Token):
        return (str(t), t.line, t.column, t.end_line, t.end_column, 0, t.type)

    statements = tuple(build(child) for child in tree.children)
    if builder.errors:
        raise CircError(builder.errors, {path: text})
    comments = tuple(Comment(str(t).rstrip(), t.line, t.column) for t in _comments)
    return SourceFile(path, text, statements, comments)


def _corpus() -> list[str]:
    texts = []
    for path in sorted(ROOT.glob("specs/*.circ")) + sorted(ROOT.glob("tests/fixtures/**/*.circ")):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            continue
    for page in sorted(ROOT.glob("docs/*.md")) + [ROOT / "README.md"]:
        texts += re.findall(r"```circ\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    return texts


PIECES = list('()[]{},.=+-*/<>!"#\\ \n\t\rLH0123abz_') + [
    "metric", "where", "and", "or", "not", "in", "to", "at", "->", "L0.H1", "L2.*", "1.5e3",
    "data", "==", '"x"', "analysis", "circuit", "expect", "categories", "render", "#c\n"]


def _mutations(texts: list[str], count: int) -> list[str]:
    rng = random.Random(15)
    out = []
    while len(out) < count:
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            roll = rng.random()
            if roll < 0.4:
                text = text[:at] + rng.choice(PIECES) + text[at:]
            elif roll < 0.8:
                text = text[:at] + text[at + rng.randint(1, 6):]
            else:
                start = rng.randrange(len(text) + 1)
                text = text[:at] + text[start:start + 24] + text[at:]
        out.append(text)
    return out


CONTEXTUAL = [
    "circuit c = a.L0.H0",  # after `.` only a name fits: L0, then .H0
    "analysis a = f(metric=ld, data=x, where=1, in=2, to=3)",
    "data d = mcq(n==1)", "data d = mcq(n<=1, m != 2)", "circuit c = a -> b",
    "circuit c = p[L0.H0 -> L1.H0.v]", "circuit c = p[L0.H0->L1.H0.v]", "circuit c = [L0.H0,]",
    "expect a.value >= -1e-3", "expect L0.H0 in c", "expect c >= [L0.H0]",
    "categories c { x = dla > 0 or not (a(b) / 2 < 3 * c - 1) }", "categories c { }",
    "analysis a = f()", "analysis a = f(,)", 'model "x\\u00e9\\q"', "", "# only\n", "x",
    "metric m = loss at -1", "metric m = loss at last\n# end", "data\nd\n=\nmcq(\nn\n=\n1\n)\n",
    'spec "a"\r\ninclude "b"\r\n', "circuit c = L0.H1.q.x", "circuit c = L01.H1", "data d = 1.",
]


def test_table_parser_agrees_with_lark():
    texts = _corpus()
    assert len(texts) > 100
    texts += CONTEXTUAL + _mutations(texts, 1500)
    accepted = 0
    for text in texts:
        try:
            expected = reference_parse(text, "t.circ")
        except CircError as error:
            expected = error.diagnostics
        try:
            got = parse_source(text, "t.circ")
        except CircError as error:
            got = error.diagnostics if expected is not None else None
        if expected is not None and not isinstance(expected, list):
            accepted += 1
        assert got == expected, text
    assert accepted > 300  # both outcomes are well covered


@pytest.mark.parametrize("deep", [  # statements whose syntax tree is d nodes deep
    lambda d: "circuit c = " + "(" * (d - 2) + "heads" + ")" * (d - 2),
    lambda d: "circuit c = " + " + ".join(["a"] * (d - 1)),
    lambda d: "circuit c = a" + ".b" * (d - 2),
    lambda d: "categories c { x = " + "not " * (d - 4) + "a > 1 }",
])
def test_nesting_limit_is_exact_and_the_formatter_copes_up_to_it(deep):
    assert format_source(deep(MAX_DEPTH), "t.circ")
    with pytest.raises(CircError) as caught:
        parse_source(deep(MAX_DEPTH + 1), "t.circ")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E110"

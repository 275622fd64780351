"""Parse .circ text into the syntax tree of `tree.py`.

The Lark grammar lives in grammar/circ.lark. `parse_source` returns a `SourceFile`
or raises `CircError` with the syntax diagnostic (syntax errors stop the file).
The table parser of `lalr.py` builds the tree during the parse; when the text
does not parse, Lark's own parser runs to explain why (`errors.py`). The parser
is built from the grammar in each process, never loaded from Lark's cache: that
cache is a pickle in the shared temporary folder, which anyone could plant.
"""
from __future__ import annotations

from importlib import resources

from circ.compiler.cycle_collection import without_cycle_collection
from circ.compiler.diagnostics import CircError, Diagnostic
from circ.compiler.ir import Span, normalize_line_ends
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.errors import describe_syntax_error
from circ.compiler.syntax.lalr import TableParser
from lark import Lark
from lark.exceptions import UnexpectedInput

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
MAX_DEPTH = 400  # deeper syntax trees are E110: the passes after parsing recurse
_parsers: tuple[Lark, TableParser] | None = None


def parsers() -> tuple[Lark, TableParser]:
    """Lark's LALR parser of the grammar and the table parser that runs its
    tables, built once per process."""
    global _parsers
    if _parsers is None:
        grammar = resources.files("circ.grammar").joinpath("circ.lark").read_text("utf-8")
        lark = Lark(grammar, parser="lalr", maybe_placeholders=True, cache=False)
        _parsers = lark, TableParser(lark, _TreeBuilder, ("COMMENT",))
    return _parsers


def parse_source(text: str, path: str = "<string>") -> s.SourceFile:
    """Parse one file; raise CircError (one syntax diagnostic) when it does not parse.
    Line ends are normalized first (`ir.source_lines` says what a line is)."""
    text = normalize_line_ends(text)
    lark, table_parser = parsers()
    builder = _TreeBuilder(path)
    with without_cycle_collection():
        parsed = table_parser.parse(text, builder)
    if parsed is None:
        raise CircError([_syntax_error(lark, text, path)], {path: text})
    if parsed.depth > MAX_DEPTH:
        raise CircError([Diagnostic("E110", "expression nested too deeply",
                                    Span(path, 1, 1, 1, 2))], {path: text})
    if builder.errors:
        raise CircError(builder.errors, {path: text})
    comments = tuple(s.Comment(text.rstrip(), line, col) for text, line, col in parsed.comments)
    return s.SourceFile(path, text, tuple(parsed.children), comments)


def _syntax_error(lark: Lark, text: str, path: str) -> Diagnostic:
    """The diagnostic of text the table parser rejected, from Lark's parse of it."""
    try:
        lark.parse(text)
    except UnexpectedInput as error:
        return describe_syntax_error(error, text, path, lark.parse)
    raise AssertionError("Lark parses text that its tables rejected")


def decode_string(token: tuple, path: str, errors: list[Diagnostic]) -> str:
    """The value of a STRING token, with escapes decoded; bad escapes are reported."""
    text, line, column = token[0], token[1], token[2]
    raw = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        code = _hex4(raw[i + 2:i + 6]) if nxt == "u" else None
        if code is not None and 0xD800 <= code < 0xDC00:  # a surrogate pair is one character
            low = _hex4(raw[i + 8:i + 12]) if raw[i + 6:i + 8] == "\\u" else None
            if low is not None and 0xDC00 <= low < 0xE000:
                out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                i += 12
                continue
        if code is not None and not 0xD800 <= code < 0xE000:
            out.append(chr(code))
            i += 6
            continue
        col = column + 1 + i
        width = 6 if nxt == "u" else 2
        what = f"lone surrogate `\\{raw[i + 1:i + 6]}`" if code is not None else f"invalid escape `\\{nxt}`"
        errors.append(Diagnostic(
            "E105", f"{what} in a string",
            Span(path, line, col, line, col + width),
            'valid escapes: \\" \\\\ \\n \\t \\r \\uXXXX (a character above U+FFFF as a '
            'surrogate pair \\uD83D\\uDE00)'))
        out.append(nxt)
        i += 2
    return "".join(out)


def _hex4(digits: str) -> int | None:
    if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return int(digits, 16)
    return None


class _TreeBuilder:
    """The syntax tree, built bottom up during the parse: the method named after each
    rule gets the rule's span (line, col, end_line, end_col) and its children already
    built, tokens as (text, line, col, end_line, end_col, 0, terminal). Every node
    gets the span of its text."""

    def __init__(self, path: str):
        self.path = path
        self.errors: list[Diagnostic] = []

    # ------------------------------------------------------------------ spans and strings
    def _span(self, span) -> Span:
        return Span(self.path, *span) if span is not None else Span(self.path, 1, 1, 1, 1)

    def _tok(self, token) -> Span:
        return Span(self.path, token[1], token[2], token[3], token[4])

    def _str(self, token) -> s.Str:
        return s.Str(decode_string(token, self.path, self.errors), self._tok(token))

    # ------------------------------------------------------------------ statements
    def spec_stmt(self, span, children):
        return s.SpecStmt(self._str(children[0]), self._span(span))

    def include_stmt(self, span, children):
        return s.IncludeStmt(self._str(children[0]), self._span(span))

    def model_stmt(self, span, children):
        return s.ModelStmt(children[0], self._span(span))

    def _definition(self, keyword, span, children, at=None):
        name, value = children[0], children[1]
        return s.Definition(keyword, name[0], self._tok(name), value, self._span(span), at)

    def data_stmt(self, span, children):
        return self._definition("data", span, children)

    def metric_stmt(self, span, children):
        return self._definition("metric", span, children, children[2])

    def analysis_stmt(self, span, children):
        return self._definition("analysis", span, children)

    def circuit_stmt(self, span, children):
        return self._definition("circuit", span, children)

    def categories_stmt(self, span, children):
        name, entries = children[0], tuple(children[1:])
        return s.CategoriesStmt(name[0], self._tok(name), entries, self._span(span))

    def category(self, span, children):
        name, rule = children
        return s.CategoryEntry(name[0], self._tok(name), rule, self._span(span))

    def expect_stmt(self, span, children):
        left, op, right = children
        return s.ExpectStmt(left, op[0], right, self._span(span))

    def expect_in(self, span, children):
        left, right = children
        return s.ExpectStmt(left, "in", right, self._span(span))

    def render_stmt(self, span, children):
        name, path = children
        return s.RenderStmt(name[0], self._tok(name), self._str(path), self._span(span))

    def position_name(self, span, children):
        return s.Name(children[0][0], self._tok(children[0]))

    def position_index(self, span, children):
        return children[0]

    # ------------------------------------------------------------------ expressions
    def where(self, span, children):
        return s.Where(children[0], children[1], self._span(span))

    def union(self, span, children):
        return s.SetOp("+", children[0], children[1], self._span(span))

    def difference(self, span, children):
        return s.SetOp("-", children[0], children[1], self._span(span))

    def intersection(self, span, children):
        return s.SetOp("&", children[0], children[1], self._span(span))

    def method(self, span, children):
        base, name, args = children
        return s.MethodCall(base, name[0], args or (), self._span(span), self._tok(name))

    def attr(self, span, children):
        base, name = children
        return s.Attr(base, name[0], self._span(span), self._tok(name))

    def index(self, span, children):
        return s.Index(children[0], children[1], self._span(span))

    def edge_index(self, span, children):
        base, sender, receiver = children
        return s.EdgeIndex(base, sender, receiver, self._span(span))

    def call(self, span, children):
        name, args = children
        return s.Call(name[0], args or (), self._span(span), self._tok(name))

    def name(self, span, children):
        return s.Name(children[0][0], self._tok(children[0]))

    def node(self, span, children):
        return s.NodeLit(children[0][0], self._tok(children[0]))

    def string(self, span, children):
        return self._str(children[0])

    def list(self, span, children):
        return s.ListLit(tuple(c for c in children if c is not None), self._span(span))

    def paren(self, span, children):
        return s.Paren(children[0], self._span(span))

    def arglist(self, span, children):
        return tuple(c for c in children if c is not None)

    def kwarg(self, span, children):
        name, value = children
        return s.Arg(name[0], value, self._span(span), "=", self._tok(name))

    def cmparg(self, span, children):
        name, op, value = children
        return s.Arg(name[0], value, self._span(span), op[0], self._tok(name))

    def posarg(self, span, children):
        return s.Arg(None, children[0], self._span(span))

    def number(self, span, children):
        token = children[0]
        return s.Num(_number_value(token), token[0], self._tok(token))

    def negative(self, span, children):
        token = children[0]
        return s.Num(-_number_value(token), "-" + token[0], self._span(span))

    # ------------------------------------------------------------------ rules
    def rule_or(self, span, children):
        return s.RuleBool("or", children[0], children[1], self._span(span))

    def rule_and(self, span, children):
        return s.RuleBool("and", children[0], children[1], self._span(span))

    def rule_not(self, span, children):
        return s.RuleNot(children[0], self._span(span))

    def rule_paren(self, span, children):
        return s.RuleParen(children[0], self._span(span))

    def compare(self, span, children):
        left, op, right = children
        return s.RuleCompare(left, op[0], right, self._span(span))

    def term_call(self, span, children):
        name, arg = children
        return s.TermCall(name[0], arg, self._span(span), self._tok(name))

    def term_add(self, span, children):
        return s.TermArith("+", children[0], children[1], self._span(span))

    def term_sub(self, span, children):
        return s.TermArith("-", children[0], children[1], self._span(span))

    def term_mul(self, span, children):
        return s.TermArith("*", children[0], children[1], self._span(span))

    def term_div(self, span, children):
        return s.TermArith("/", children[0], children[1], self._span(span))

    def term_name(self, span, children):
        return s.Name(children[0][0], self._tok(children[0]))


def _number_value(token):
    """The value of a number literal. Integers too long for Python to convert
    (over 4,300 digits) become infinite floats, which every check rejects."""
    text = token[0]
    if token[6] != "INT":
        return float(text)
    return int(text) if len(text) <= 4000 else float("inf")

"""Parse .circ text into the syntax tree of `tree.py`.

The Lark grammar lives in grammar/circ.lark. `parse_source` returns a `SourceFile`
or raises `CircError` with the syntax diagnostic (syntax errors stop the file).
The parser is built from the grammar in each process, never loaded from Lark's
cache: that cache is a pickle in the shared temporary folder, which anyone could
plant.
"""
from __future__ import annotations

from importlib import resources

from circ.compiler.diagnostics import CircError, Diagnostic
from circ.compiler.ir import Span, normalize_line_ends
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.errors import describe_syntax_error
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


class _CommentSink:
    """Receives comment tokens from the lexer during one parse."""

    def __init__(self):
        self.tokens: list[Token] = []

    def __call__(self, token: Token) -> Token:
        self.tokens.append(token)
        return token


_sink = _CommentSink()
_parser: Lark | None = None


def lark_parser() -> Lark:
    """The LALR parser of the grammar, built once per process."""
    global _parser
    if _parser is None:
        grammar = resources.files("circ.grammar").joinpath("circ.lark").read_text("utf-8")
        _parser = Lark(
            grammar,
            parser="lalr",
            propagate_positions=True,
            maybe_placeholders=True,
            lexer_callbacks={"COMMENT": _sink},
            cache=False,
        )
    return _parser


def parse_source(text: str, path: str = "<string>") -> s.SourceFile:
    """Parse one file; raise CircError (one syntax diagnostic) when it does not parse.
    Line ends are normalized first (`ir.source_lines` says what a line is)."""
    text = normalize_line_ends(text)
    parser = lark_parser()
    _sink.tokens = []
    try:
        tree = parser.parse(text)
    except UnexpectedInput as error:
        diagnostic = describe_syntax_error(error, text, path, parser.parse)
        raise CircError([diagnostic], {path: text}) from None
    except RecursionError:
        raise CircError([_too_deep(path)], {path: text}) from None
    comments = tuple(s.Comment(str(t).rstrip(), t.line, t.column) for t in _sink.tokens)
    builder = _TreeBuilder(path)
    try:
        statements = tuple(builder.build(child) for child in tree.children)
    except RecursionError:
        raise CircError([_too_deep(path)], {path: text}) from None
    if builder.errors:
        raise CircError(builder.errors, {path: text})
    return s.SourceFile(path, text, statements, comments)


def _too_deep(path: str) -> Diagnostic:
    return Diagnostic("E110", "expression nested too deeply", Span(path, 1, 1, 1, 2))


def decode_string(token: Token, path: str, errors: list[Diagnostic]) -> str:
    """The value of a STRING token, with escapes decoded; bad escapes are reported."""
    raw = str(token)[1:-1]
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
        col = token.column + 1 + i
        width = 6 if nxt == "u" else 2
        what = f"lone surrogate `\\{raw[i + 1:i + 6]}`" if code is not None else f"invalid escape `\\{nxt}`"
        errors.append(Diagnostic(
            "E105", f"{what} in a string",
            Span(path, token.line, col, token.line, col + width),
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
    """Lark tree -> syntax tree, bottom up: the method named after each rule gets the
    rule's meta (positions) and its children already built. Every node gets the span
    of its text. (A plain walk: Lark's Transformer costs several times the parse.)"""

    def __init__(self, path: str):
        self.path = path
        self.errors: list[Diagnostic] = []

    def build(self, tree: Tree):
        children = [self.build(c) if isinstance(c, Tree) else c for c in tree.children]
        return getattr(self, tree.data)(tree.meta, children)

    # ------------------------------------------------------------------ spans and strings
    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 1, 1, 1, 1)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, token: Token) -> Span:
        return Span(self.path, token.line, token.column, token.end_line, token.end_column)

    def _str(self, token: Token) -> s.Str:
        return s.Str(decode_string(token, self.path, self.errors), self._tok(token))

    # ------------------------------------------------------------------ statements
    def spec_stmt(self, meta, children):
        return s.SpecStmt(self._str(children[0]), self._span(meta))

    def include_stmt(self, meta, children):
        return s.IncludeStmt(self._str(children[0]), self._span(meta))

    def model_stmt(self, meta, children):
        return s.ModelStmt(children[0], self._span(meta))

    def _definition(self, keyword, meta, children, at=None):
        name, value = children[0], children[1]
        return s.Definition(keyword, str(name), self._tok(name), value, self._span(meta), at)

    def data_stmt(self, meta, children):
        return self._definition("data", meta, children)

    def metric_stmt(self, meta, children):
        return self._definition("metric", meta, children, children[2])

    def analysis_stmt(self, meta, children):
        return self._definition("analysis", meta, children)

    def circuit_stmt(self, meta, children):
        return self._definition("circuit", meta, children)

    def categories_stmt(self, meta, children):
        name, entries = children[0], tuple(children[1:])
        return s.CategoriesStmt(str(name), self._tok(name), entries, self._span(meta))

    def category(self, meta, children):
        name, rule = children
        return s.CategoryEntry(str(name), self._tok(name), rule, self._span(meta))

    def expect_stmt(self, meta, children):
        left, op, right = children
        return s.ExpectStmt(left, str(op), right, self._span(meta))

    def expect_in(self, meta, children):
        left, right = children
        return s.ExpectStmt(left, "in", right, self._span(meta))

    def render_stmt(self, meta, children):
        name, path = children
        return s.RenderStmt(str(name), self._tok(name), self._str(path), self._span(meta))

    def position_name(self, meta, children):
        return s.Name(str(children[0]), self._tok(children[0]))

    def position_index(self, meta, children):
        return children[0]

    # ------------------------------------------------------------------ expressions
    def where(self, meta, children):
        return s.Where(children[0], children[1], self._span(meta))

    def union(self, meta, children):
        return s.SetOp("+", children[0], children[1], self._span(meta))

    def difference(self, meta, children):
        return s.SetOp("-", children[0], children[1], self._span(meta))

    def method(self, meta, children):
        base, name, args = children
        return s.MethodCall(base, str(name), args or (), self._span(meta), self._tok(name))

    def attr(self, meta, children):
        base, name = children
        return s.Attr(base, str(name), self._span(meta), self._tok(name))

    def index(self, meta, children):
        return s.Index(children[0], children[1], self._span(meta))

    def edge_index(self, meta, children):
        base, sender, receiver = children
        return s.EdgeIndex(base, sender, receiver, self._span(meta))

    def call(self, meta, children):
        name, args = children
        return s.Call(str(name), args or (), self._span(meta), self._tok(name))

    def name(self, meta, children):
        return s.Name(str(children[0]), self._tok(children[0]))

    def node(self, meta, children):
        return s.NodeLit(str(children[0]), self._tok(children[0]))

    def string(self, meta, children):
        return self._str(children[0])

    def list(self, meta, children):
        return s.ListLit(tuple(c for c in children if c is not None), self._span(meta))

    def paren(self, meta, children):
        return s.Paren(children[0], self._span(meta))

    def arglist(self, meta, children):
        return tuple(c for c in children if c is not None)

    def kwarg(self, meta, children):
        name, value = children
        return s.Arg(str(name), value, self._span(meta), "=", self._tok(name))

    def cmparg(self, meta, children):
        name, op, value = children
        return s.Arg(str(name), value, self._span(meta), str(op), self._tok(name))

    def posarg(self, meta, children):
        return s.Arg(None, children[0], self._span(meta))

    def number(self, meta, children):
        token = children[0]
        return s.Num(_number_value(token), str(token), self._tok(token))

    def negative(self, meta, children):
        token = children[0]
        return s.Num(-_number_value(token), "-" + str(token), self._span(meta))

    # ------------------------------------------------------------------ rules
    def rule_or(self, meta, children):
        return s.RuleBool("or", children[0], children[1], self._span(meta))

    def rule_and(self, meta, children):
        return s.RuleBool("and", children[0], children[1], self._span(meta))

    def rule_not(self, meta, children):
        return s.RuleNot(children[0], self._span(meta))

    def rule_paren(self, meta, children):
        return s.RuleParen(children[0], self._span(meta))

    def compare(self, meta, children):
        left, op, right = children
        return s.RuleCompare(left, str(op), right, self._span(meta))

    def term_call(self, meta, children):
        name, arg = children
        return s.TermCall(str(name), arg, self._span(meta), self._tok(name))

    def term_name(self, meta, children):
        return s.Name(str(children[0]), self._tok(children[0]))


def _number_value(token):
    """The value of a number literal. Integers too long for Python to convert
    (over 4,300 digits) become infinite floats, which every check rejects."""
    text = str(token)
    if token.type != "INT":
        return float(text)
    return int(text) if len(text) <= 4000 else float("inf")

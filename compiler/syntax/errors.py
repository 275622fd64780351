"""Turn a Lark parse failure into one clear diagnostic.

Order of diagnosis: unbalanced brackets and unclosed strings (found by a scan of the
text, because they cause errors far from where they are), then common mistakes
recognised with Lark's `match_examples` (missing `=`, missing value, missing comma),
then misspelled keywords (difflib), then a generic "unexpected token" message.
"""
from __future__ import annotations

import difflib

from circ.compiler.diagnostics import Diagnostic
from circ.compiler.ir import Span, source_lines
from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput

STATEMENT_KEYWORDS = ("spec", "include", "model", "data", "metric", "analysis",
                      "circuit", "categories", "expect", "render")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}

_EXAMPLES = {
    "E101": [
        "data clean mcq(n=1)", "data clean 3", "data clean \"x\"", "metric m logit_diff",
        "analysis a attribute(heads)", "circuit c [L0.H0]", "circuit c L0.H0",
        "categories c { x dla > 0 }", "categories c { x abs(dla) > 0 }",
    ],
    "E108": [
        "data d =", "data d = \nmetric m = loss", "metric m = loss at",
        "metric m = loss at\ndata d = x", "expect a.value >=", "expect a.value >= \nrender c to \"x\"",
        "analysis a = patch(heads, metric=)", "data d = mcq(n=)", "data d = mcq(n=,)",
        "categories c { x = }", "categories c { x = dla > }", "render c to", "spec", "include",
    ],
    "E111": [
        "data d = mcq(n=1 seed=2)", "data d = mcq(n=x seed=2)", "data d = mcq(n=\"x\" seed=2)",
        "data d = mcq(n=1.5 seed=2)", "data d = mcq(n=f(x) seed=2)", "data d = mcq(n=[x] seed=2)",
        "data d = mcq(n=L0.H0 seed=2)", "data d = [a b]", "data d = [1 b]", "data d = [L0.H0 L0.H1]",
    ],
}
_MESSAGES = {
    "E101": "missing `=` after the name being defined",
    "E111": "missing `,` between arguments",
}


def describe_syntax_error(error: UnexpectedInput, text: str, path: str, parse_fn) -> Diagnostic:
    """One diagnostic explaining why `text` does not parse."""
    scanned = scan_brackets(text, path)
    if scanned is not None:
        return scanned
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if 0 <= error.pos_in_stream < len(text) else "?"
        return Diagnostic("E106", f"unexpected character `{char}`",
                          Span(path, error.line, error.column, error.line, error.column + 1))
    token = getattr(error, "token", None)
    at_end = token is None or token.type == "$END"
    span = _end_span(text, path) if at_end else Span(
        path, token.line, token.column, token.end_line, token.end_column)
    keyword = _keyword_read_as_value(error, text, path)
    if keyword is not None:
        return Diagnostic("E108", f"missing value: `{keyword[0]}` starts a new statement",
                          keyword[1], "complete the statement above")
    # use_accepts=False: lark 1.3 fails formatting a debug message on that path.
    label = error.match_examples(parse_fn, _EXAMPLES, use_accepts=False)
    expected = set(getattr(error, "expected", ()) or ())
    misspelled = _misspelled_keyword(token, expected, at_end)
    if misspelled is not None and label != "E101":
        return Diagnostic("E104", misspelled[0], span, misspelled[1])
    if label is None and not at_end and token.type == "NAME" and "COMMA" in expected:
        label = "E111"
    if label in ("E101", "E111"):
        return Diagnostic(label, _MESSAGES[label], span)
    if at_end:
        return Diagnostic("E108", "unexpected end of file: a value is missing", span)
    if label == "E108":
        return Diagnostic("E108", f"missing value before `{token}`", span)
    return Diagnostic("E100", f"unexpected `{token}`", span,
                      _edge_hint(token, expected, text) or _expected_hint(expected))


def scan_brackets(text: str, path: str) -> Diagnostic | None:
    """The first unclosed string, unmatched closer or unclosed opener, if any."""
    stack: list[tuple[str, int, int]] = []
    line, col, i = 1, 1, 0
    while i < len(text):
        ch = text[i]
        if ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if ch == '"':
            start_line, start_col = line, col
            i, col = i + 1, col + 1
            while i < len(text) and text[i] not in '"\n':
                step = 2 if text[i] == "\\" and i + 1 < len(text) and text[i + 1] != "\n" else 1
                i, col = i + step, col + step
            if i >= len(text) or text[i] == "\n":
                return Diagnostic("E103", "unclosed string",
                                  Span(path, start_line, start_col, start_line, start_col + 1),
                                  'close the string with `"` on the same line')
        elif ch in _OPENERS:
            stack.append((ch, line, col))
        elif ch in _CLOSERS:
            if not stack or stack[-1][0] != _CLOSERS[ch]:
                return Diagnostic("E102", f"unmatched `{ch}`", Span(path, line, col, line, col + 1),
                                  f"`{stack[-1][0]}` opened at line {stack[-1][1]} is still open"
                                  if stack else None)
            stack.pop()
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    if stack:
        ch, at_line, at_col = stack[-1]
        return Diagnostic("E102", f"`{ch}` is never closed",
                          Span(path, at_line, at_col, at_line, at_col + 1),
                          f"add the matching `{_OPENERS[ch]}`")
    return None


def _keyword_read_as_value(error, text: str, path: str):
    """(keyword, span) when the parser just read a statement keyword that opens its
    line as a value (`data clean =` followed by `metric ...` on the next line): the
    statement before it lacks its value."""
    parser = getattr(error, "interactive_parser", None)
    stack = parser.parser_state.value_stack if parser is not None else []
    last = stack[-1] if stack else None
    if not isinstance(last, Token) or last.type != "NAME" or str(last) not in STATEMENT_KEYWORDS:
        return None
    line_start = text.rfind("\n", 0, last.start_pos) + 1
    if text[line_start:last.start_pos].strip():
        return None
    span = Span(path, last.line, last.column, last.end_line, last.end_column)
    return str(last), span


def _misspelled_keyword(token, expected: set[str], at_end: bool):
    if at_end or token.type != "NAME":
        return None
    keywords = sorted(name.lower() for name in expected if name.lower().isalpha()
                      and name.isupper() and name not in ("NAME", "NODE", "STRING", "INT", "FLOAT", "CMP")
                      and name.lower() in _ALL_KEYWORDS)
    word = str(token)
    close = difflib.get_close_matches(word, keywords, n=1, cutoff=0.6)
    if close:
        return f"unknown keyword `{word}`", f"did you mean `{close[0]}`?"
    if set(keywords) == set(STATEMENT_KEYWORDS):
        return (f"expected a statement, found `{word}`",
                "a statement starts with " + ", ".join(STATEMENT_KEYWORDS))
    return None


_ALL_KEYWORDS = set(STATEMENT_KEYWORDS) | {"to", "at", "where", "and", "or", "not"}

_TOKEN_WORDS = {
    "NAME": "a name", "NODE": "a node such as L0.H1", "STRING": "a string", "INT": "a number",
    "FLOAT": "a number", "CMP": "a comparison", "EQUAL": "`=`", "COMMA": "`,`", "RPAR": "`)`",
    "LPAR": "`(`", "RSQB": "`]`", "LSQB": "`[`", "LBRACE": "`{`", "RBRACE": "`}`",
    "DOT": "`.`", "PLUS": "`+`", "MINUS": "`-`", "_ARROW": "`->`", "$END": "end of file",
}

_EDGE_EXAMPLE = "an edge is written `[SENDER -> RECEIVER]`, e.g. `paths[L0.H0 -> L1.H0.v]`"


def _edge_hint(token, expected: set[str], text: str) -> str | None:
    """A hint for an edge index written another way: `[A > B]`, `[A => B]`,
    `[A to B]`, `[A, B]`, `[A - > B]`, `[A -> B -> C]`."""
    before = text[:token.start_pos].rstrip()
    if "_ARROW" in expected or (str(token) == ">" and before.endswith("-")):
        return _EDGE_EXAMPLE
    if "RSQB" in expected and str(token) == "->":
        return "an edge has one sender and one receiver: " + _EDGE_EXAMPLE
    return None


def _expected_hint(expected: set[str]) -> str | None:
    words = sorted({_TOKEN_WORDS.get(name, f"`{name.lower()}`") for name in expected})
    if not words or len(words) > 6:
        return None
    return "expected " + ", ".join(words)


def _end_span(text: str, path: str) -> Span:
    lines = source_lines(text) or [""]
    last = len(lines)
    while last > 1 and not lines[last - 1].strip():
        last -= 1
    col = len(lines[last - 1].rstrip()) + 1
    return Span(path, last, col, last, col + 1)

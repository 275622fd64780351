"""A table-driven LALR(1) loop over Lark's analysis of the grammar, building the
syntax tree while it parses.

Lark computes the parse table and the terminals; this loop runs them with the
same contextual lexing (each parser state matches only the terminals it accepts,
in Lark's order, keywords found as names the way Lark finds them), the same
child filtering (anonymous tokens dropped, `_rule`s inlined, `?rule`s with one
child passed through, `[optional]` parts as None) and the same positions (a node
spans its first to its last token, anonymous ones included). It calls the
builder's method for each rule as the rule is reduced, instead of building a
Lark tree and walking it, which cost three times as much. A syntax error only
reports failure: Lark's own parser then explains it (`errors.py`).
"""
from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple

from lark import Lark
from lark.lexer import PatternStr
from lark.parsers.lalr_analysis import Shift

_END = "$END"

# How a reduced rule uses each symbol it matched.
_TOKEN, _NODE, _SPLICE = 0, 1, 2


class Parsed(NamedTuple):
    """What a successful parse gives: the start rule's children, the ignored
    tokens kept as comments (text, line, column), and the depth of the deepest
    node (a node holding only tokens has depth 1)."""

    children: list
    comments: list[tuple[str, int, int]]
    depth: int


class _Reducer(NamedTuple):
    size: int
    goto: str
    build: Callable[..., Any] | None  # the builder's method; None for a `_rule` or the
    # start rule, whose children (a list) go into the parent
    include: tuple[tuple[int, int, int], ...]  # (index, how, Nones before it)
    trailing_nones: int
    passthrough: bool  # a `?rule` left with one child: that child, unchanged


class TableParser:
    """Parses text with the tables of `lark` (an LALR Lark parser), calling the
    method of `builder_class` named after each rule (or its alias) as
    `method(builder, span, children)`: span is (line, col, end_line, end_col),
    children the rule's kept children, tokens as tuples
    (text, line, col, end_line, end_col, 0, terminal)."""

    def __init__(self, lark: Lark, builder_class: type, comment_terminals: tuple[str, ...]):
        conf = lark.parse_interactive("").parser_state.parse_conf
        self._start, self._end = conf.start_state, conf.end_state
        # by state (Lark numbers them from 0): {terminal: next state or ~reducer index,
        # rule: state after it}
        self._table: list[dict[str, int]] = [{} for _ in range(max(conf.states) + 1)]
        reducer_of: dict[Any, int] = {}
        self._reducers: list[_Reducer] = []
        for state, actions in conf.states.items():
            table = self._table[state]
            for symbol, (action, arg) in actions.items():
                symbol = str(symbol)  # Lark's names are Tokens, slower to compare
                if action is Shift:
                    table[symbol] = arg
                    continue
                if arg not in reducer_of:
                    reducer_of[arg] = len(self._reducers)
                    self._reducers.append(_reducer(arg, builder_class))
                table[symbol] = ~reducer_of[arg]
        terminals = {t.name: t for t in lark.terminals}
        self._terminals = terminals
        self._ignored = frozenset(lark.ignore_tokens)
        self._comments = frozenset(comment_terminals)
        self._multiline = frozenset(name for name, t in terminals.items()
                                    if _may_hold_newline(t.pattern.to_regexp()))
        self._scanners: list[tuple[Callable, dict] | None] = [None] * len(self._table)
        self._scanner_by_terminals: dict[frozenset, tuple[Callable, dict]] = {}

    def parse(self, text: str, builder) -> Parsed | None:
        """The parse of `text`, or None when it has a syntax error."""
        table, reducers, scanners = self._table, self._reducers, self._scanners
        ignored, comment_terminals, multiline = self._ignored, self._comments, self._multiline
        end_state = self._end
        states = [self._start]
        values: list = []
        comments: list[tuple[str, int, int]] = []
        deepest = 0
        pos, line, line_start, size = 0, 1, 0, len(text)
        while True:
            state = states[-1]
            if pos < size:
                scanner = scanners[state] or self._scanner(state)
                found = scanner[0](text, pos)
                if found is None:
                    return None
                kind, value = found.lastgroup, found.group()
                start_line, col = line, pos - line_start + 1
                if kind in multiline and "\n" in value:
                    line += value.count("\n")
                    line_start = pos + value.rindex("\n") + 1
                pos = found.end()
                if kind in ignored:
                    if kind in comment_terminals:
                        comments.append((value, start_line, col))
                    continue
                keywords = scanner[1].get(kind)
                if keywords is not None:
                    kind = keywords.get(value, kind)
                token = (value, start_line, col, line, pos - line_start + 1, 0, kind)
            else:
                kind, token = _END, None
            while True:
                code = table[state].get(kind)
                if code is None:
                    return None
                if code >= 0:
                    states.append(code)
                    values.append(token)
                    break
                reducer = reducers[~code]
                count = reducer.size
                if count == 1 and reducer.passthrough:  # the value stays, the state moves
                    state = states[-1] = table[states[-2]][reducer.goto]
                    continue
                if count:
                    entries = values[-count:]
                    del values[-count:]
                    del states[-count:]
                else:
                    entries = []
                entry = _reduce(reducer, entries, builder)
                if entry[5] > deepest:
                    deepest = entry[5]
                state = table[states[-1]][reducer.goto]
                states.append(state)
                values.append(entry)
                if kind is _END and state == end_state:
                    return Parsed(entry[0], comments, deepest)

    def _scanner(self, state: int) -> tuple[Callable, dict]:
        """The matcher of the terminals `state` accepts, built as Lark builds its
        contextual lexer: highest priority first, then the longest, then by name;
        a keyword that a terminal such as NAME matches whole is found as that
        terminal and renamed (per terminal, {text: keyword})."""
        accepted = frozenset(name for name in self._table[state] if name in self._terminals)
        scanner = self._scanner_by_terminals.get(accepted)
        if scanner is None:
            terminals = sorted((self._terminals[name] for name in accepted | self._ignored),
                               key=lambda t: (-t.priority, -t.pattern.max_width,
                                              -len(t.pattern.value), t.name))
            keywords: dict[str, dict[str, str]] = {}
            embedded = set()
            for regex in (t for t in terminals if not isinstance(t.pattern, PatternStr)):
                for word in (t for t in terminals if isinstance(t.pattern, PatternStr)):
                    text = word.pattern.value
                    found = re.match(regex.pattern.to_regexp(), text)
                    if word.priority == regex.priority and found and found.group() == text:
                        keywords.setdefault(regex.name, {})[word.pattern.value] = word.name
                        if word.pattern.flags <= regex.pattern.flags:
                            embedded.add(word.name)
            pattern = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})"
                               for t in terminals if t.name not in embedded)
            scanner = (re.compile(pattern).match, keywords)
            self._scanner_by_terminals[accepted] = scanner
        self._scanners[state] = scanner
        return scanner


def _reducer(rule, builder_class: type) -> _Reducer:
    """How to reduce `rule`: which children it keeps (as Lark's tree builder keeps
    them) and which builder method gets them."""
    expansion, options = rule.expansion, rule.options
    empty = list(options.empty_indices) if options.empty_indices else []
    if empty:  # how many Nones go before each symbol, and after the last
        runs = "".join(str(int(b)) for b in empty).split("0")
        nones = [len(run) for run in runs]
    else:
        nones = [0] * (len(expansion) + 1)
    include, pending = [], 0
    for index, symbol in enumerate(expansion):
        pending += nones[index]
        if options.keep_all_tokens or not (symbol.is_term and symbol.filter_out):
            how = _TOKEN if symbol.is_term else _SPLICE if symbol.name.startswith("_") else _NODE
            include.append((index, how, pending))
            pending = 0
    pending += nones[len(expansion)]
    name = rule.alias or rule.origin.name
    inline = rule.origin.name.startswith("_") or rule.origin.name == "start"
    passthrough = bool(options.expand1 and not rule.alias and len(include) == 1
                       and not pending and include[0][2] == 0 and include[0][1] == _NODE)
    build = None if inline or passthrough else getattr(builder_class, name)
    return _Reducer(len(expansion), str(rule.origin.name), build, tuple(include), pending,
                    passthrough)


def _reduce(reducer: _Reducer, entries: list, builder) -> tuple:
    """The stack entry (value, line, col, end_line, end_col, depth) of one reduced rule."""
    children: list = []
    depth = 0
    for index, how, nones in reducer.include:
        if nones:
            children.extend([None] * nones)
        entry = entries[index]
        if how == _TOKEN:
            children.append(entry)
            continue
        if entry[5] > depth:
            depth = entry[5]
        if how == _NODE:
            children.append(entry[0])
        elif children:
            children.extend(entry[0])
        else:  # a left-recursive list grows in place, as in Lark
            children = entry[0]
    if reducer.trailing_nones:
        children.extend([None] * reducer.trailing_nones)
    if reducer.passthrough:
        value = children[0]
    elif reducer.build is None:
        value = children
    else:
        depth += 1
        span = ((entries[0][1], entries[0][2], entries[-1][3], entries[-1][4])
                if entries else None)
        value = reducer.build(builder, span, children)
    if not entries:
        return (value, 1, 1, 1, 1, depth)
    first, last = entries[0], entries[-1]
    return (value, first[1], first[2], last[3], last[4], depth)


def _may_hold_newline(regexp: str) -> bool:
    """Lark's test of whether a terminal can span lines (it counts newlines only
    in those)."""
    return ("\n" in regexp or "\\n" in regexp or "\\s" in regexp or "[^" in regexp
            or ("(?s" in regexp and "." in regexp))

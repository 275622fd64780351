"""The canonical layout of a .circ file.

One statement per line; `=` aligned within a run of consecutive definitions of the
same keyword; a call that would pass 100 columns, or that holds comments between its
arguments, is broken one argument per line; categories one per line, indented two
spaces and aligned. Comments stay where they were: before a statement, at the end
of its line, or next to an argument. A comment inside an expression that has no
such place moves to the line above its statement. Blank lines between statements
are kept, at most one. Formatting twice gives the same text; the meaning (the IR)
never changes.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from circ.compiler.syntax import tree as s
from circ.compiler.syntax.parser import parse_source
from circ.compiler.syntax.printer import arg_text, expr_text, rule_text, string_literal

WIDTH = 100
INDENT = "    "


@dataclass
class _Comments:
    """Comments attached to one statement or category entry."""

    leading: list[s.Comment] = field(default_factory=list)
    trailing: s.Comment | None = None
    inner: list[s.Comment] = field(default_factory=list)


def format_source(text: str, path: str = "<string>") -> str:
    """`text` in canonical layout; raises CircError when it does not parse."""
    parsed = parse_source(text, path)
    statements = list(parsed.statements)
    attached, footer = _attach(statements, list(parsed.comments))
    widths = _alignment(statements)
    out: list[str] = []
    last_line = 0
    for index, statement in enumerate(statements):
        notes = attached[index]
        for comment in notes.leading:
            _blank_if_gap(out, last_line, comment.line)
            out.append(comment.text)
            last_line = comment.line
        _blank_if_gap(out, last_line, statement.span.line)
        out.extend(_statement(statement, notes, widths.get(index, 0)))
        last_line = statement.span.end_line
    for comment in footer:
        _blank_if_gap(out, last_line, comment.line)
        out.append(comment.text)
        last_line = comment.line
    return "\n".join(out) + "\n" if out else ""


def _blank_if_gap(out: list[str], last_line: int, line: int) -> None:
    if out and line - last_line > 1 and out[-1] != "":
        out.append("")


def _attach(items, comments):
    """Give each comment to an item: inside it, at the end of its line, or before it.
    Items are in source order and do not overlap, so each comment finds its place by
    bisection."""
    notes = [_Comments() for _ in items]
    footer = []
    starts = [(it.span.line, it.span.col) for it in items]
    ends = [(it.span.end_line, it.span.end_col) for it in items]
    for comment in comments:
        position = (comment.line, comment.col)
        following = bisect_right(starts, position)  # the first item starting after it
        if following and position < ends[following - 1]:
            notes[following - 1].inner.append(comment)
            continue
        ending = bisect_right(ends, position) - 1  # the last item ending before it
        if ending >= 0 and ends[ending][0] == comment.line:
            notes[ending].trailing = comment
            continue
        if following == len(items):
            footer.append(comment)
        else:
            notes[following].leading.append(comment)
    return notes, footer


def _alignment(statements) -> dict[int, int]:
    """Name width per definition: the longest name in its run of consecutive
    definitions with the same keyword and no blank line between them."""
    widths: dict[int, int] = {}
    run: list[int] = []

    def close():
        width = max((len(statements[i].name) for i in run), default=0)
        for i in run:
            widths[i] = width
        run.clear()

    for index, statement in enumerate(statements):
        if not isinstance(statement, s.Definition):
            close()
            continue
        previous = statements[run[-1]] if run else None
        if previous is not None and (previous.keyword != statement.keyword or
                                     statement.span.line - previous.span.end_line > 1):
            close()
        run.append(index)
    close()
    return widths


def _statement(statement, notes: _Comments, width: int) -> list[str]:
    if isinstance(statement, s.CategoriesStmt):
        return _categories(statement, notes)
    prefix, value, suffix = _pieces(statement, width)
    call = _breakable(value) if value is not None else None
    flat = prefix + (expr_text(value) if value is not None else "") + suffix
    placed, hoisted = _place_in_call(call, notes.inner) if call is not None else ({}, notes.inner)
    lines = [c.text for c in hoisted]
    if call is not None and (len(flat) > WIDTH or placed):
        lines += _broken(prefix, value, call, suffix, placed)
    else:
        lines.append(flat)
    if notes.trailing is not None:
        lines[-1] += "  " + notes.trailing.text
    return lines


def _pieces(statement, width: int):
    """(text before the value, the value expression, text after it)."""
    if isinstance(statement, s.SpecStmt):
        return "spec " + string_literal(statement.name.value), None, ""
    if isinstance(statement, s.IncludeStmt):
        return "include " + string_literal(statement.path.value), None, ""
    if isinstance(statement, s.ModelStmt):
        return "model ", statement.value, ""
    if isinstance(statement, s.Definition):
        at = f" at {expr_text(statement.at)}" if statement.at is not None else ""
        return f"{statement.keyword} {statement.name:<{width}} = ", statement.value, at
    if isinstance(statement, s.ExpectStmt):
        return "expect ", statement.left, f" {statement.op} {expr_text(statement.right)}"
    return (f"render {statement.circuit} to {string_literal(statement.path.value)}", None, "")


def _breakable(value):
    """The call at the start of `value` that may be laid out one argument per line."""
    if isinstance(value, (s.Where, s.Attr, s.Index, s.EdgeIndex)):
        return _breakable(value.base)
    if isinstance(value, s.MethodCall) and isinstance(value.base, s.Call):
        return _breakable(value.base)
    if isinstance(value, (s.Call, s.MethodCall)) and value.args:
        return value
    return None


def _place_in_call(call, comments):
    """Comments that sit next to an argument (after it on its line, or on lines
    before it), by argument index (len(args) = before the closing parenthesis);
    the rest are hoisted above the statement."""
    placed: dict[int, list[tuple[str, s.Comment]]] = {}
    hoisted = []
    args = call.args
    for comment in comments:
        position = (comment.line, comment.col)
        if not (call.span.line, call.span.col) <= position < (call.span.end_line, call.span.end_col):
            hoisted.append(comment)
            continue
        if any((a.span.line, a.span.col) <= position < (a.span.end_line, a.span.end_col) for a in args):
            hoisted.append(comment)
            continue
        ending = [i for i, a in enumerate(args)
                  if a.span.end_line == comment.line and a.span.end_col <= comment.col]
        if ending:
            placed.setdefault(ending[-1], []).append(("after", comment))
            continue
        following = next((i for i, a in enumerate(args) if (a.span.line, a.span.col) > position),
                         len(args))
        placed.setdefault(following, []).append(("before", comment))
    return placed, hoisted


def _broken(prefix: str, value, call, suffix: str, placed) -> list[str]:
    opener = (f"{call.func}(" if isinstance(call, s.Call)
              else f"{expr_text(call.base)}.{call.method}(")
    flat_value = expr_text(value)
    rest = flat_value[len(expr_text(call)):]
    lines = [prefix + opener]
    for index, arg in enumerate(call.args):
        lines += [INDENT + c.text for kind, c in placed.get(index, []) if kind == "before"]
        line = INDENT + arg_text(arg) + ","
        after = [c.text for kind, c in placed.get(index, []) if kind == "after"]
        lines.append(line + ("  " + "  ".join(after) if after else ""))
    lines += [INDENT + c.text for kind, c in placed.get(len(call.args), []) if kind == "before"]
    lines.append(")" + rest + suffix)
    return lines


def _categories(statement: s.CategoriesStmt, notes: _Comments) -> list[str]:
    entries = list(statement.entries)
    header = f"categories {statement.circuit} {{"
    first_line = entries[0].span.line if entries else statement.span.end_line
    header_notes = [c for c in notes.inner if c.line == statement.span.line and c.line < first_line]
    inner = [c for c in notes.inner if c not in header_notes]
    attached, footer = _attach(entries, inner)
    lines = [header + "".join("  " + c.text for c in header_notes)]
    if not entries and not footer:
        return [lines[0] + "}"] if not header_notes else lines + ["}"]
    width = max((len(e.name) for e in entries), default=0)
    last_line = statement.span.line
    body: list[str] = []
    for entry, entry_notes in zip(entries, attached):
        for comment in entry_notes.leading + entry_notes.inner:
            _blank_if_gap(body, last_line, comment.line)
            body.append("  " + comment.text)
            last_line = max(last_line, comment.line)
        _blank_if_gap(body, last_line, entry.span.line)
        line = f"  {entry.name:<{width}} = {rule_text(entry.rule)}"
        if entry_notes.trailing is not None:
            line += "  " + entry_notes.trailing.text
        body.append(line)
        last_line = entry.span.end_line
    for comment in footer:
        _blank_if_gap(body, last_line, comment.line)
        body.append("  " + comment.text)
        last_line = comment.line
    return lines + body + ["}"]


"""Output of `circ diff`: text for a terminal, markdown for a pull-request comment,
json for tools.

`format_report(report, fmt, color=False)` renders a `DiffReport` (spec changes,
results differences, or both). Text uses ANSI colours only when `color` is true.
Markdown gives a heading per part and a table per group, so that it reads well as a
pull-request comment. JSON has sorted keys and a fixed layout: `different`, `old`,
`new`, `spec` (a list of changes, or null) and `results` (or null).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from circ.compiler import ir
from circ.compiler.diff.change import Change
from circ.compiler.diff.describe import describe
from circ.compiler.diff.results import ResultsDiff
from circ.compiler.diff.rows import Row, result_groups, spec_groups
from circ.compiler.escape import markdown_code, markdown_text, terminal_text

FORMATS = ("text", "markdown", "json")

_COLORS = {"+": "\x1b[32m", "-": "\x1b[31m", "~": "\x1b[33m", "title": "\x1b[1m"}
_RESET = "\x1b[0m"


@dataclass(frozen=True)
class DiffReport:
    """What `circ diff` found: spec changes and/or results differences (None where
    that part was not compared), with the operands' labels as the user wrote them."""

    old_label: str
    new_label: str
    spec_changes: tuple[Change, ...] | None = None
    results: ResultsDiff | None = None

    @property
    def different(self) -> bool:
        return bool(self.spec_changes) or bool(self.results and self.results.changes)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _summary(report: DiffReport) -> str:
    parts = []
    if report.spec_changes is not None:
        parts.append(_count(len(report.spec_changes), "spec change"))
    if report.results is not None:
        parts.append(_count(len(report.results.changes), "results difference"))
    return ", ".join(parts)


def _parts(report: DiffReport):
    """(part title, groups) for the parts that were compared."""
    if report.spec_changes is not None:
        yield "spec", spec_groups(report.spec_changes)
    if report.results is not None:
        title = f"results (values moved by more than {report.results.threshold:g})"
        yield title, result_groups(report.results)


# --------------------------------------------------------------------------- text
def _paint(text: str, style: str, color: bool) -> str:
    return f"{_COLORS[style]}{text}{_RESET}" if color and style in _COLORS else text


def _text_line(row: Row, color: bool) -> str:
    if row.old and row.new:
        body = f"{row.what}: {row.old} -> {row.new}"
    elif row.old or row.new:
        body = f"{row.what}: {row.old or row.new}"
    else:
        body = row.what
    if row.where:
        body += f"  ({row.where})"
    return "    " + _paint(terminal_text(f"{row.mark} {body}"), row.mark, color)


def format_text(report: DiffReport, color: bool = False) -> str:
    heading = terminal_text(f"circ diff {report.old_label} -> {report.new_label}")
    lines = [_paint(heading, "title", color)]
    for title, groups in _parts(report):
        lines.append(_paint(title, "title", color))
        for group_title, rows in groups:
            lines.append(f"  {terminal_text(group_title)}")
            lines.extend(_text_line(row, color) for row in rows)
        if not groups:
            lines.append("  no differences")
    lines.append(_summary(report) if report.different else f"no differences ({_summary(report)})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- markdown
def format_markdown(report: DiffReport) -> str:
    lines = [f"## circ diff {markdown_code(report.old_label)} → {markdown_code(report.new_label)}", ""]
    for title, groups in _parts(report):
        lines += [f"### {title[0].upper()}{title[1:]}", ""]
        if not groups:
            lines += ["No differences.", ""]
        for group_title, rows in groups:
            with_where = any(row.where for row in rows)
            header = "| | what | old | new |" + (" where |" if with_where else "")
            lines += [f"#### {markdown_text(group_title)}", "", header,
                      "|---|---|---|---|" + ("---|" if with_where else "")]
            for row in rows:
                cells = [row.mark.strip(), markdown_text(row.what),
                         markdown_code(row.old, in_table=True), markdown_code(row.new, in_table=True)]
                if with_where:
                    cells.append(markdown_text(row.where))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    lines.append(f"**{_summary(report) if report.different else 'No differences'}.**")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- json
def _json_value(value):
    """Numbers, strings, booleans and lists as themselves; IR fragments as spec text."""
    if isinstance(value, float):
        return float(f"{value:.12g}") if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return describe(value)


def _line(span: ir.Span | None):
    return None if span is None else span.line


def _spec_json(change: Change) -> dict:
    return {"kind": change.kind, "section": change.section, "name": change.name,
            "field": change.field, "old": _json_value(change.old),
            "new": _json_value(change.new), "old_line": _line(change.old_span),
            "new_line": _line(change.new_span)}


def _results_json(diff: ResultsDiff) -> dict:
    return {
        "threshold": diff.threshold,
        "changes": [{"kind": c.kind, "subject": c.subject, "key": c.key,
                     "old": _json_value(c.old), "new": _json_value(c.new),
                     "delta": _json_value(c.delta)} for c in diff.changes],
        "faithfulness": [{"name": f.name, "old": _json_value(f.old), "new": _json_value(f.new)}
                         for f in diff.faithfulness],
    }


def format_json(report: DiffReport) -> str:
    document = {
        "different": report.different, "old": report.old_label, "new": report.new_label,
        "spec": (None if report.spec_changes is None
                 else [_spec_json(change) for change in report.spec_changes]),
        "results": None if report.results is None else _results_json(report.results),
    }
    return json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n"


def format_report(report: DiffReport, fmt: str, color: bool = False) -> str:
    """`report` as `fmt` ("text", "markdown" or "json")."""
    if fmt == "text":
        return format_text(report, color)
    if fmt == "markdown":
        return format_markdown(report)
    if fmt == "json":
        return format_json(report)
    raise ValueError(f"unknown diff format {fmt!r}: choose one of {', '.join(FORMATS)}")

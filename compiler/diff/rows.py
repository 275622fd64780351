"""Spec and results changes as display rows, shared by the text and markdown formats.

A `Row` is what one line of a diff shows: a mark ("+" added, "-" removed, "~"
changed), what it is about, the old and new values as text (empty where a side is
absent) and where it is in the spec (a line, or "" for results). Rows come in
titled groups, in a fixed order, so every output is deterministic.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from circ.compiler.diff.change import SECTION_ORDER, SINGULAR, Change
from circ.compiler.diff.describe import describe
from circ.compiler.diff.results import ResultChange, ResultsDiff, moved_beyond


@dataclass(frozen=True)
class Row:
    mark: str
    what: str
    old: str = ""
    new: str = ""
    where: str = ""


def _ids(ids) -> str:
    return ", ".join(ids)


def _where(change: Change) -> str:
    if change.new_span is not None:
        return f"line {change.new_span.line}"
    if change.old_span is not None:
        return f"old line {change.old_span.line}"
    return ""


def _spec_subject(change: Change) -> str:
    if change.section == "spec":
        return "spec name"
    if change.section == "model":
        return f"model {change.field}"
    if change.section == "expectations":
        return f"expect {change.name}"
    return f"{SINGULAR[change.section]} {change.name}"


def spec_row(change: Change) -> Row:
    """The display row of one spec change."""
    subject, where = _spec_subject(change), _where(change)
    kind = change.kind
    if kind.endswith("_nodes_added"):
        return Row("+", f"{subject}: nodes", "", _ids(change.new), where)
    if kind.endswith("_nodes_removed"):
        return Row("-", f"{subject}: nodes", _ids(change.old), "", where)
    if kind == "category_renamed":
        circuit = change.name.rsplit(".", 1)[0]
        return Row("~", "category renamed", f"{circuit}.{change.old}", change.name, where)
    if kind.endswith("_renamed") and change.section != "spec":
        return Row("~", f"{SINGULAR[change.section]} renamed", str(change.old), str(change.new),
                   where)
    if kind == "category_reordered":
        return Row("~", f"categories of {change.name}: order", _ids(change.old), _ids(change.new),
                   where)
    if kind == "expectation_changed" and change.field == "quantity":
        return Row("~", "expect", change.old, change.new, where)
    if kind in ("expectation_added", "expectation_removed"):
        mark, text = ("+", change.new) if kind == "expectation_added" else ("-", change.old)
        return Row(mark, f"expect {text}", "", "", where)
    if kind.endswith("_added"):
        return Row("+", subject, "", describe(change.new), where)
    if kind.endswith("_removed"):
        return Row("-", subject, describe(change.old), "", where)
    what = subject if change.section in ("model", "spec") else f"{subject}: {change.field}"
    return Row("~", what, describe(change.old), describe(change.new), where)


def spec_groups(changes) -> list[tuple[str, list[Row]]]:
    """(section title, rows) for each section with a change, in SECTION_ORDER."""
    groups = []
    for section in SECTION_ORDER:
        rows = [spec_row(change) for change in changes if change.section == section]
        if rows:
            groups.append(("name" if section == "spec" else section, rows))
    return groups


def _value_text(value) -> str:
    """A results value as text: numbers to 4 significant digits, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _pass_fail(passed) -> str:
    return {True: "pass", False: "FAIL"}.get(passed, "")


_RESULT_GROUPS = (
    ("setup", ("setup_changed", "setup_added", "setup_removed")),
    ("analyses", ("analysis_renamed", "analysis_added", "analysis_removed", "setting_changed",
                  "value_changed", "value_added", "value_removed")),
    ("circuits", ("circuit_renamed", "circuit_added", "circuit_removed", "node_entered", "node_left",
                  "category_changed", "edge_added", "edge_removed")),
    ("expectations", ("expectation_flipped", "expectation_value_changed",
                      "expectation_added", "expectation_removed")),
)


def result_row(change: ResultChange) -> Row:
    """The display row of one results change."""
    kind, subject, key = change.kind, change.subject, change.key
    if kind.startswith("setup"):
        mark = {"setup_added": "+", "setup_removed": "-"}.get(kind, "~")
        return Row(mark, f"{subject} {key}", _value_text(change.old), _value_text(change.new))
    if kind in ("analysis_renamed", "circuit_renamed"):  # as the spec diff shows a rename
        return Row("~", f"{kind.split('_')[0]} renamed", _value_text(change.old), _value_text(change.new))
    if kind in ("analysis_added", "analysis_removed", "circuit_added", "circuit_removed"):
        noun = kind.split("_")[0]
        mark = "+" if kind.endswith("added") else "-"
        return Row(mark, f"{noun} {subject}", _value_text(change.old), _value_text(change.new))
    if kind in ("node_entered", "node_left"):
        mark = "+" if kind == "node_entered" else "-"
        return Row(mark, f"circuit {subject}: {key}", _value_text(change.old),
                   _value_text(change.new))
    if kind in ("edge_added", "edge_removed"):
        return Row("+" if kind == "edge_added" else "-", f"circuit {subject}: edge {key}")
    if kind == "category_changed":
        return Row("~", f"circuit {subject}: {key} category", _value_text(change.old),
                   _value_text(change.new))
    if kind.startswith("expectation"):
        return _expectation_row(change)
    mark = {"value_added": "+", "value_removed": "-"}.get(kind, "~")
    new = _value_text(change.new)
    if change.delta is not None:
        new = f"{new} ({change.delta:+.4g})"
    return Row(mark, f"{subject} {key}", _value_text(change.old), new)


def _expectation_row(change: ResultChange) -> Row:
    what = change.subject if change.subject.startswith("expect ") else f"expect {change.subject}"
    if change.kind == "expectation_flipped":
        return Row("-" if change.new is False else "+", what, _pass_fail(change.old),
                   _pass_fail(change.new))
    if change.kind == "expectation_value_changed":
        return Row("~", f"{what}: value", _value_text(change.old), _value_text(change.new))
    if change.kind == "expectation_added":
        return Row("+", what, "", _pass_fail(change.new))
    return Row("-", what, _pass_fail(change.old), "")


def faithfulness_rows(diff: ResultsDiff) -> list[Row]:
    """Every faithfulness value before and after, changed or not."""
    rows = []
    for item in diff.faithfulness:
        old, new, mark = _value_text(item.old), _value_text(item.new), "~"
        if item.old is None:
            mark = "+"
        elif item.new is None:
            mark = "-"
        elif moved_beyond(item.old, item.new, diff.threshold):
            new = f"{new} ({item.new - item.old:+.4g})"
        else:
            mark, new = " ", f"{new} (unchanged)"
        rows.append(Row(mark, f"faithfulness {item.name}", old, new))
    return rows


def result_groups(diff: ResultsDiff) -> list[tuple[str, list[Row]]]:
    """(title, rows) for each group of results differences, faithfulness first."""
    groups = []
    faithfulness = faithfulness_rows(diff)
    if faithfulness:
        groups.append(("faithfulness", faithfulness))
    for title, kinds in _RESULT_GROUPS:
        rows = [result_row(change) for change in diff.changes if change.kind in kinds]
        if rows:
            groups.append((title, rows))
    return groups

"""Small HTML pieces shared by the report's sections: escaped text, element ids,
number cells, tables and figures. Every value may come from a results file edited by
hand, so each helper accepts anything and escapes what it shows."""
from __future__ import annotations

import json
from html import escape as html_escape

from circ.compiler.escape import visible_text


def escape(text) -> str:
    """HTML text of a value from the results or the spec: escaped, and every hidden
    character but a line break shown as its escape (compiler/escape.py)."""
    return html_escape(visible_text(str(text)), quote=True)


def anchor(name: str) -> str:
    """`name` as part of an element id: letters, digits, `-` and `_`."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value == value \
        and abs(value) != float("inf")


def plain(value) -> str:
    """A value as text: JSON for lists and objects, nothing for None."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def num(value) -> str:
    """A number as a table cell's content in figures; anything else as escaped text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(plain(value))
    return f'<span class="num">{value if isinstance(value, int) else f"{value:.4g}"}</span>'


def with_stderr(value, stderr) -> str:
    """A number cell followed by its standard error, when there is one."""
    return num(value) + ("" if not is_number(stderr) else f" ± {num(stderr)}")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A table of HTML cells (already escaped)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(svg: str) -> str:
    return f'<div class="figure">{svg}</div>'

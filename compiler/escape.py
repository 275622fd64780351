"""Escaping text that came from a spec, a data file, a results file or the command
line before it is printed: one function per kind of output.

- `terminal_text`: for diagnostics, summaries and text diffs. Every character that
  is not printable (Python's `str.isprintable`: control characters, which end lines,
  move the cursor or start terminal escape sequences; format and bidirectional
  characters such as U+202E, which reorder text; line and paragraph separators;
  spaces other than U+0020; lone surrogates; unassigned code points) is written as
  `\\xNN`, `\\uXXXX` or `\\UXXXXXXXX`, so one printed line stays one line and shows
  what it holds. A tab is kept: it ends nothing.
- `visible_text`: for text drawn in a diagram or a report page, where a line may
  break: the same escapes, but a line break is kept.
- `markdown_text` and `markdown_code`: for `circ diff --format markdown`, the same
  escapes, plus markdown's own: table pipes, and code spans whose fence is longer
  than any run of backticks inside them.
"""
from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")
_MARKDOWN_ACTIVE = re.compile(r"([\\|`<\[\]*_])")


def is_hidden(ch: str) -> bool:
    """Whether `ch` must be shown as an escape rather than written as itself."""
    return ch != "\t" and not ch.isprintable()


def escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_text(text: str) -> str:
    """`text` with every hidden character escaped (see the module docstring)."""
    if text.isprintable():
        return text
    return "".join(escape_char(ch) if is_hidden(ch) else ch for ch in text)


def visible_text(text: str) -> str:
    """`text` with every hidden character but a line break escaped: a NUL ends no
    DOT string and U+202E reorders no label or prompt shown in a page."""
    if text.isprintable():
        return text
    return "".join(escape_char(ch) if ch != "\n" and is_hidden(ch) else ch for ch in text)


def markdown_text(text: str) -> str:
    """Plain markdown text: escaped, with the characters that start code, HTML, links,
    emphasis or a table cell (`\\ | ` < [ ] * _`) made literal."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", terminal_text(text))


def markdown_code(text: str, in_table: bool = False) -> str:
    """A code span showing `text` exactly, whatever backticks it holds; empty for "".
    In a table cell, pipes are written `\\|` as tables require."""
    if not text:
        return ""
    shown = terminal_text(text)
    if in_table:
        shown = shown.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or shown.strip(" ") == "" else ""
    return f"{fence}{pad}{shown}{pad}{fence}"

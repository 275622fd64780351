"""Diagnostics: one error with its code, message, span and hint, and the exception
that carries every diagnostic of a compilation.

Codes are grouped by stage: E1xx syntax, E2xx names, E3xx types and meaning,
E4xx ranges against the model's shape, E5xx files and input. `CODES` lists them all
with a one-line title (docs/language.md documents each with an example).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from circ.compiler.escape import terminal_text
from circ.compiler.ir import Span, source_lines

CODES = {
    "E100": "syntax error",
    "E101": "missing `=` in a definition",
    "E102": "unbalanced bracket",
    "E103": "unclosed string",
    "E104": "unknown statement keyword",
    "E105": "invalid escape in a string",
    "E106": "unexpected character",
    "E107": "invalid node literal",
    "E108": "missing value",
    "E110": "nesting too deep",
    "E111": "missing comma between arguments",
    "E112": "included file outside the spec's folder",
    "E114": "a path that cannot name a file",
    "E201": "undefined name",
    "E202": "duplicate definition",
    "E203": "name used before its definition",
    "E204": "reserved name",
    "E205": "unknown function",
    "E206": "unknown category",
    "E207": "statement given twice",
    "E301": "wrong type of argument",
    "E302": "missing required argument",
    "E303": "unknown argument",
    "E304": "invalid option value",
    "E305": "argument given twice or too many arguments",
    "E306": "metric not allowed for this analysis",
    "E307": "derivation of a dataset not made by mcq",
    "E308": "invalid accessor for this analysis",
    "E309": "node kind not allowed here",
    "E310": "not a per-node score",
    "E311": "attention term outside a categories block",
    "E312": "invalid position",
    "E313": "selection from a fixed or combined node set",
    "E314": "empty node set",
    "E315": "invalid rank constraint",
    "E316": "invalid render target",
    "E317": "`effect` without an analysis to read it from",
    "E318": "path receiver not downstream of any sender",
    "E319": "node not among the analysis's nodes",
    "E320": "dataset not evaluated by the analysis",
    "E321": "unknown position name",
    "E322": "position missing from a dataset it is read on",
    "E330": "expectation operands of the wrong form",
    "E331": "edge not measured by the analysis",
    "E332": "invalid attention target",
    "E333": "value not defined on the dataset's clean run",
    "E340": "`max` or `metric` in a rule without scores",
    "E341": "normalized metric with a source that does not run the model",
    "E360": "attention score at one query position",
    "E370": "attribute() at one position",
    "E371": "answer_logprob read at a position other than last",
    "E372": "direct logit attribution of a whole-answer metric",
    "E375": "`each` position where one position is needed",
    "E385": "ACDC threshold missing or misplaced",
    "E386": "a position for edges removed at every position",
    "E387": "top= or faithfulness= with an ACDC analysis",
    "E390": "curve() of something that is not a per-node analysis",
    "E391": "faithfulness target outside (0, 1]",
    "E392": "invalid `.size_at()` argument",
    "E393": "discover() needs exactly one of top= and faithfulness=",
    "E394": "discover(A, faithfulness=F) of an analysis with no per-node score or metric",
    "E395": "faithfulness(C) alone of a circuit not grown to a faithfulness",
    "E401": "layer out of range",
    "E402": "head out of range",
    "E403": "position out of range",
    "E404": "value exceeds the model's size",
    "E405": "MLP on a model without MLPs",
    "E501": "included file not found",
    "E502": "data file not found",
    "E503": "include cycle",
    "E504": "file is not UTF-8",
    "E505": "cannot read file",
    "E506": "model not found",
    "E510": "render path leaves the output folder",
    "E511": "model shape beyond what circ can check",
    "E516": "ACDC threshold negative or infinite",
    "E517": "curve() with more random orders than circ runs",
}


MAX_SHOWN = 200  # characters of a source line shown under a diagnostic
_NOT_TAB = re.compile(r"[^\t]")


@dataclass(frozen=True)
class Diagnostic:
    """One error at `span`, with an optional hint shown under the caret line."""

    code: str
    message: str
    span: Span
    hint: str | None = None

    def format(self, source_text: str | None, lines: list[str] | None = None) -> str:
        """`path:line:col: error[CODE]: message`, the source line with carets under
        the span, then the hint; one printed line per line, whatever the path,
        message or source hold (see escape.py). `lines`, when given, are
        `source_lines(source_text)` already split."""
        s = self.span
        out = [terminal_text(f"{s.path}:{s.line}:{s.col}: error[{self.code}]: {self.message}")]
        if lines is None:
            lines = source_lines(source_text) if source_text else []
        if 1 <= s.line <= len(lines):
            text = lines[s.line - 1]
            start = max(s.col - 1, 0)
            end = s.end_col - 1 if s.end_line == s.line else len(text)
            if len(text) > MAX_SHOWN:  # show a window of a very long line around the caret
                cut = max(0, start - MAX_SHOWN // 2)
                text, start, end = text[cut:cut + MAX_SHOWN], start - cut, end - cut
            start = min(start, len(text))
            width = max(1, len(terminal_text(text[start:max(end, start)])))
            gutter = f"{s.line:>4} | "
            pad = _NOT_TAB.sub(" ", terminal_text(text[:start]))
            out.append(gutter + terminal_text(text))
            out.append(" " * (len(gutter) - 2) + "| " + pad + "^" * width)
        if self.hint:
            out.append(terminal_text(f"  hint: {self.hint}"))
        return "\n".join(out)


class CircError(Exception):
    """Compilation failed; `.diagnostics` holds every error found, in source order."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = list(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        """Every diagnostic, formatted; each source is split into lines once."""
        split: dict[str, list[str]] = {}
        shown = []
        for d in self.diagnostics:
            path = d.span.path
            if path not in split:
                split[path] = source_lines(self.sources.get(path) or "")
            shown.append(d.format(None, split[path]))
        return "\n".join(shown)


def did_you_mean(name: str, candidates) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"did you mean `{close[0]}`?" if close else None


def one_of(options) -> str:
    """`a`, `b` or `c` — for messages listing valid choices."""
    items = [f"`{o}`" for o in options]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def a_or_an(word: str) -> str:
    """`an attribute`, `a patch`."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word

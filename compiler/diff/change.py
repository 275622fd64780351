"""One semantic difference between two specs: the `Change` record of the spec diff.

`spec.py`, with `categories.py` and `expectations.py`, produces them;
`rows.py` and `format.py` show them.
"""
from __future__ import annotations

from dataclasses import dataclass

from circ.compiler import ir

SECTION_ORDER = ("spec", "model", "datasets", "metrics", "analyses", "circuits",
                 "categories", "expectations", "renders")

# The singular word each section's change kinds start with.
SINGULAR = {"datasets": "dataset", "metrics": "metric", "analyses": "analysis",
            "circuits": "circuit", "categories": "category",
            "expectations": "expectation", "renders": "render"}


@dataclass(frozen=True)
class Change:
    """One semantic difference.

    kind: e.g. "dataset_renamed", "analysis_changed", "circuit_nodes_added".
    section: one of SECTION_ORDER; name: what changed within it (a dataset name,
    "output.correct_letter" for a category, the quantity for an expectation).
    field: which part of it changed ("source", "threshold", ...), or None.
    old, new: the values before and after (None for an added / removed side); node
    additions and removals carry tuples of node ids.
    """

    kind: str
    section: str
    name: str
    field: str | None = None
    old: object = None
    new: object = None
    old_span: ir.Span | None = None
    new_span: ir.Span | None = None


def span_of(item) -> ir.Span | None:
    """The span of an IR object, or None when it has none."""
    span = getattr(item, "span", None)
    return None if span is None or span == ir.NO_SPAN else span

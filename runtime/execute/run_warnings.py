"""Warnings of a run: statements that ran but said nothing, listed in results.json
(`warnings`), the summary and the report, each with the line of its statement.

  W001  a circuit's rule selects no node
  W002  a category matches no node of its (non-empty) circuit
  W003  an expectation reads an analysis of an empty node set
"""
from __future__ import annotations

from circ.compiler import ir


def _warning(code: str, span: ir.Span, message: str) -> dict:
    return {"code": code, "line": span.line, "message": message}


def empty_circuit(circuit: ir.Circuit) -> dict:
    return _warning("W001", circuit.span, f"circuit `{circuit.name}` selects no node: its rule "
                    "holds for none of the analysed nodes")


def empty_categories(categories: list[ir.Category], members) -> list[dict]:
    """W002 for each category that no member of a non-empty circuit falls into."""
    if not members:
        return []
    used = {m.category for m in members}
    return [_warning("W002", c.span, f"category `{c.circuit}.{c.name}` matches no node of "
                     f"`{c.circuit}`") for c in categories if c.name not in used]


def expectation_on_nothing(expectation: ir.Expectation, analysis: ir.Analysis) -> dict:
    nodes = analysis.nodes
    over = f" over `{nodes.analysis}`" if isinstance(nodes, ir.Select) else ""
    what = f"{analysis.kind}(){over}" if analysis.name.startswith("_") else f"`{analysis.name}`"
    return _warning("W003", expectation.span, f"this expectation reads {what}, whose node set "
                    "is empty in this run")

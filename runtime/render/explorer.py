"""The report's attention explorer: the `explorer` entry of an attention analysis as
an HTML block (pickers, a token strip) and its data as JSON in a
`<script type="application/json">` element, which the page's script reads.

Weights travel as integers in units of 10**-decimals (`scale`: 1000 for the 3
decimals the kernel keeps), a third of the text of decimal fractions; the script
divides them back. The JSON is written with `<`, `>` and `&` as `\\u` escapes, so no string from the
results can close the script element; the page builds its DOM from it with
`textContent` only.
"""
from __future__ import annotations

import json
from html import escape

from circ.runtime.render.diagram import RenderError
from circ.runtime.render.html_parts import is_number


def explorer_html(anchor: str, analysis: dict) -> str:
    """The explorer of one attention analysis, or "" when its results have none."""
    explorer = analysis.get("explorer")
    if explorer is None:
        return ""
    data = _checked(explorer)
    source = f"explorer-data-{anchor}"
    heads = len(analysis.get("values") or {}) or len(data["heads"])
    rows = ("every query position" if data["rows"] == "all"
            else f"the query positions ({escape(str(analysis.get('query', 'query')))}) only")
    note = (f"Patterns of the first {data['prompts']} of {data['of']} prompts "
            f"(<code>explore={escape(str(data.get('explore', data['prompts'])))}</code>), "
            f"for {len(data['heads'])} of {heads} heads, rows at {rows}, weights rounded to "
            f"{data['decimals']} decimals. Pick a prompt, a head and a "
            "query position (or click a token to make it the query); hover a token to read "
            "its weight.")
    return (f'<h3>explorer</h3><p class="note">{note}</p>'
            f'<div class="explorer" data-source="{source}">'
            '<label>prompt <select class="pick-prompt"></select></label> '
            '<label>head <select class="pick-head"></select></label> '
            '<label>query <select class="pick-query"></select></label>'
            '<div class="readout">&nbsp;</div><div class="tokens"></div></div>'
            + json_script(source, data))


def json_script(element_id: str, data) -> str:
    """`data` as a JSON script element that no string inside it can end early."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                       ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, code)
    return f'<script type="application/json" id="{escape(element_id)}">{text}</script>'


def _checked(explorer) -> dict:
    """The explorer entry with the shape the page's script reads, or RenderError."""
    if not isinstance(explorer, dict) or not isinstance(explorer.get("examples"), list) \
            or not isinstance(explorer.get("heads"), list):
        raise RenderError("its 'explorer' must be an object with 'heads' and 'examples' lists")
    heads = [str(h) for h in explorer["heads"]]
    decimals = explorer.get("decimals", 3)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 6:
        raise RenderError(f"its explorer's 'decimals' must be a whole number from 0 to 6, not {decimals!r}")
    scale = 10 ** decimals
    examples = []
    for number, example in enumerate(explorer["examples"], start=1):
        if not isinstance(example, dict) or not isinstance(example.get("tokens"), list) \
                or not isinstance(example.get("rows"), list) or not isinstance(example.get("patterns"), dict):
            raise RenderError(f"explorer prompt {number} must have 'tokens', 'rows' and 'patterns'")
        rows = [_position(q, number) for q in example["rows"]]
        query = [_position(q, number) for q in example.get("query") or []]
        patterns = {}
        for head in heads:
            weights = example["patterns"].get(head)
            if not isinstance(weights, list) or len(weights) != len(rows) or not all(
                    isinstance(row, list) and len(row) == q + 1 and all(is_number(w) for w in row)
                    for q, row in zip(rows, weights)):
                raise RenderError(f"explorer prompt {number}: the pattern of '{head}' must hold "
                                  "one row of q + 1 weights per query row q")
            patterns[head] = [[round(w * scale) for w in row] for row in weights]
        if any(q >= len(example["tokens"]) for q in rows):
            raise RenderError(f"explorer prompt {number} has a row beyond its tokens")
        examples.append({"tokens": [str(t) for t in example["tokens"]], "rows": rows,
                         "query": query, "patterns": patterns})
    return {"prompts": len(examples), "of": explorer.get("of", len(examples)),
            "explore": explorer.get("explore"), "rows": explorer.get("rows", "all"),
            "decimals": decimals, "scale": scale, "heads": heads, "examples": examples}


def _position(value, number: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RenderError(f"explorer prompt {number} has a position that is not a natural number: {value!r}")
    return value

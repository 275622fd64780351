"""Text to syntax tree and back: the Lark parser, syntax errors, the spec files a spec includes, the canonical printer and `circ fmt`."""

"""Canonical text of expressions and rules: single spaces around operators, `, `
between arguments, strings re-escaped, numbers as written, parentheses as written.
A string never holds a raw character that is not printable (control, format and
bidirectional characters such as U+202E, separators): each is written `\\uXXXX`
(above U+FFFF as a surrogate pair), as `escape.is_hidden` decides."""
from __future__ import annotations

from circ.compiler.escape import is_hidden
from circ.compiler.syntax import tree as s

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def string_literal(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif is_hidden(ch):
            units = ch.encode("utf-16-be", "surrogatepass")
            out.extend(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def arg_text(arg: s.Arg) -> str:
    if arg.name is None:
        return expr_text(arg.value)
    if arg.op == "=":
        return f"{arg.name}={expr_text(arg.value)}"
    return f"{arg.name} {arg.op} {expr_text(arg.value)}"


def args_text(args: tuple[s.Arg, ...]) -> str:
    return ", ".join(arg_text(a) for a in args)


def expr_text(e) -> str:
    """The canonical one-line text of an expression."""
    if isinstance(e, s.Name):
        return e.name
    if isinstance(e, s.NodeLit):
        return e.text
    if isinstance(e, s.Str):
        return string_literal(e.value)
    if isinstance(e, s.Num):
        return e.text.replace("E", "e")
    if isinstance(e, s.ListLit):
        return "[" + ", ".join(expr_text(i) for i in e.items) + "]"
    if isinstance(e, s.Call):
        return f"{e.func}({args_text(e.args)})"
    if isinstance(e, s.MethodCall):
        return f"{expr_text(e.base)}.{e.method}({args_text(e.args)})"
    if isinstance(e, s.Attr):
        return f"{expr_text(e.base)}.{e.attr}"
    if isinstance(e, s.Index):
        return f"{expr_text(e.base)}[{expr_text(e.index)}]"
    if isinstance(e, s.EdgeIndex):
        return f"{expr_text(e.base)}[{expr_text(e.sender)} -> {expr_text(e.receiver)}]"
    if isinstance(e, s.SetOp):
        return f"{expr_text(e.left)} {e.op} {expr_text(e.right)}"
    if isinstance(e, s.Paren):
        return f"({expr_text(e.inner)})"
    if isinstance(e, s.Where):
        return f"{expr_text(e.base)} where {rule_text(e.rule)}"
    raise TypeError(f"not an expression: {type(e).__name__}")


def term_text(t) -> str:
    if isinstance(t, s.TermCall):
        return f"{t.func}({term_text(t.arg)})"
    return expr_text(t)


def rule_text(r) -> str:
    """The canonical one-line text of a rule."""
    if isinstance(r, s.RuleCompare):
        return f"{term_text(r.left)} {r.op} {term_text(r.right)}"
    if isinstance(r, s.RuleBool):
        return f"{rule_text(r.left)} {r.op} {rule_text(r.right)}"
    if isinstance(r, s.RuleNot):
        return f"not {rule_text(r.rule)}"
    if isinstance(r, s.RuleParen):
        return f"({rule_text(r.rule)})"
    raise TypeError(f"not a rule: {type(r).__name__}")

"""Match call arguments to a builtin signature, and the primitive conversions.

`bind` reports unknown, repeated, missing and ill-typed arguments (all of them),
then raises Reported if any failed. Each argument is converted by the function that
the caller's table names for its parameter's type: `PRIMITIVES` converts numbers,
strings, booleans and raw expressions, and `binding.CONVERTERS` adds the domain
types (datasets, metrics, node sets, sources, positions, ...).
"""
from __future__ import annotations

from circ.compiler import ir
from circ.compiler.check.context import Context, Reported, Use
from circ.compiler.check.signatures import Param, Signature
from circ.compiler.diagnostics import did_you_mean
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.printer import expr_text


def bind(ctx: Context, sig: Signature, args: tuple[s.Arg, ...], span: ir.Span, use: Use,
         label: str, converters: dict) -> dict:
    """The converted arguments by parameter name (defaults filled in), each converted
    by the function `converters` names for its parameter's type."""
    given: dict[str, s.Arg] = {}
    failed = False
    positional = [p for p in sig.params if p.positional]
    next_positional = 0
    for arg in args:
        if arg.name is None:
            if next_positional >= len(positional):
                ctx.error("E305", f"too many positional arguments for {label}", arg.span,
                          _positional_hint(sig))
                failed = True
                continue
            param = positional[next_positional]
            next_positional += 1
        else:
            param = sig.param(arg.name)
            if param is None:
                names = [p.name for p in sig.params]
                ctx.error("E303", f"unknown argument `{arg.name}` of {label}", arg.name_span,
                          did_you_mean(arg.name, names) or
                          (f"{label} takes " + ", ".join(names) if names else f"{label} takes no arguments"))
                failed = True
                continue
        if param.name in given:
            ctx.error("E305", f"argument `{param.name}` of {label} is given twice", arg.span)
            failed = True
            continue
        is_bound = param.type == "rank_bound"
        if (arg.op != "=") != is_bound:
            ctx.error("E315" if is_bound else "E301",
                      f"`{param.name}` takes a bound such as `{param.name} <= 4`" if is_bound
                      else f"`{arg.name} {arg.op} ...` is a comparison; write `{arg.name}=VALUE`",
                      arg.span)
            failed = True
            continue
        given[param.name] = arg
    values = {}
    for param in sig.params:
        arg = given.get(param.name)
        if arg is not None:
            try:
                value = arg.value if param.type != "rank_bound" else (arg.op, arg.value)
                values[param.name] = converters[param.type](ctx, value, param, use)
            except Reported:
                failed = True
        elif param.required:
            ctx.error("E302", f"{label} needs the argument `{param.name}`", span)
            failed = True
        elif param.default is not None:
            values[param.name] = param.default
    if failed:
        raise Reported()
    return values


def _positional_hint(sig: Signature) -> str:
    names = [p.name for p in sig.params if p.positional]
    if not names:
        return "pass arguments by name, e.g. " + (f"{sig.params[0].name}=..." if sig.params else "none")
    return "positional arguments: " + ", ".join(names) + "; pass the others by name"


def describe(e) -> str:
    if isinstance(e, s.Str):
        return f"the string {expr_text(e)}"
    if isinstance(e, s.Num):
        return f"the number {e.text}"
    if isinstance(e, s.Name):
        return f"`{e.name}`"
    return f"`{expr_text(e)}`"


def expect_kind(ctx: Context, e, what: str, hint: str | None = None):
    ctx.fail("E301", f"expected {what}, got {describe(e)}", e.span, hint)


# --------------------------------------------------------------------------- scalars
MAX_INT = 10**9  # counts, seeds, ranks and indices; larger values are mistakes


def integer(ctx, e, param: Param, use, minimum=0):
    if not isinstance(e, s.Num) or not isinstance(e.value, int):
        expect_kind(ctx, e, "an integer" if minimum == 0 else "a positive integer")
    if e.value < minimum:
        expect_kind(ctx, e, "a non-negative integer" if minimum == 0 else "a positive integer")
    if e.value > MAX_INT:
        expect_kind(ctx, e, f"an integer of at most {MAX_INT:,}")
    return e.value


def _posint(ctx, e, param, use):
    return integer(ctx, e, param, use, minimum=1)


def _number(ctx, e, param, use):
    if not isinstance(e, s.Num):
        expect_kind(ctx, e, "a number")
    return e.value


def string(ctx, e, param, use):
    if not isinstance(e, s.Str):
        expect_kind(ctx, e, "a string", f'write it in quotes: "{expr_text(e)}"')
    return e.value


def _bool(ctx, e, param, use):
    if not isinstance(e, s.Name) or e.name not in ("true", "false"):
        expect_kind(ctx, e, "true or false")
    return e.name == "true"


def _expr(ctx, e, param, use):
    return e


PRIMITIVES = {"int": integer, "posint": _posint, "number": _number, "string": string, "bool": _bool,
              "expr": _expr}

"""Collect every definition: names must be unique across datasets, metrics,
analyses and circuits, must not be reserved words, and `spec`, `model` and each
circuit's `categories` block may appear once."""
from __future__ import annotations

from circ.compiler.check.context import Context, Declaration
from circ.compiler.check.signatures import ANALYSES, RESERVED
from circ.compiler.syntax import tree as s

_KINDS = {"data": "dataset", "metric": "metric", "analysis": "analysis", "circuit": "circuit"}


def declare(ctx: Context) -> None:
    seen_once: dict[str, s.Statement] = {}
    for order, statement in ctx.statements:
        if isinstance(statement, s.Definition):
            _define(ctx, order, statement)
        elif isinstance(statement, s.CategoriesStmt):
            _categories(ctx, order, statement)
        elif isinstance(statement, (s.SpecStmt, s.ModelStmt)):
            keyword = "spec" if isinstance(statement, s.SpecStmt) else "model"
            if isinstance(statement, s.SpecStmt) and statement.span.path != ctx.root_path:
                continue  # an included file's own name does not name the including spec
            first = seen_once.get(keyword)
            if first is not None:
                ctx.error("E207", f"`{keyword}` is given twice", statement.span,
                          f"first given at {first.span.path}:{first.span.line}")
            else:
                seen_once[keyword] = statement
                if isinstance(statement, s.SpecStmt):
                    ctx.spec_name = statement.name.value


def _define(ctx: Context, order: int, statement: s.Definition) -> None:
    name = statement.name
    if name in RESERVED:
        ctx.error("E204", f"`{name}` is a reserved word and cannot be defined", statement.name_span)
        return
    first = ctx.declarations.get(name)
    if first is not None:
        ctx.error("E202", f"`{name}` is already defined", statement.name_span,
                  f"first defined at {first.span.path}:{first.span.line}")
        return
    ctx.declarations[name] = Declaration(name, _KINDS[statement.keyword], order,
                                         statement.name_span, statement,
                                         _detail(ctx, statement))


def _detail(ctx: Context, statement: s.Definition) -> str | None:
    """The analysis kind as written: `patch(...)`, or `A.on(...)` of an analysis A."""
    value = statement.value
    if statement.keyword != "analysis":
        return None
    if isinstance(value, s.Call) and value.func in ANALYSES:
        return value.func
    if isinstance(value, s.MethodCall) and value.method == "on" and isinstance(value.base, s.Name):
        base = ctx.declarations.get(value.base.name)
        return base.detail if base is not None and base.kind == "analysis" else None
    return None


def _categories(ctx: Context, order: int, statement: s.CategoriesStmt) -> None:
    circuit = statement.circuit
    if circuit in ctx.categories:
        ctx.error("E207", f"categories of `{circuit}` are given twice", statement.span,
                  "put every category of a circuit in one block")
        return
    entries: dict[str, s.CategoryEntry] = {}
    for entry in statement.entries:
        if entry.name in entries:
            ctx.error("E202", f"category `{entry.name}` is already defined", entry.name_span,
                      f"first defined at line {entries[entry.name].span.line}")
            continue
        entries[entry.name] = entry
    ctx.categories[circuit] = entries
    ctx.category_orders[circuit] = order

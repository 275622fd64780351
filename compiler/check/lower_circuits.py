"""Lower circuits, their categories and what to render."""
from __future__ import annotations

import posixpath
from pathlib import PurePath

from circ.compiler import ir
from circ.compiler.check import lower_rules as rules
from circ.compiler.check import nodesets
from circ.compiler.check.context import Context, Reported
from circ.compiler.check.import_graph import imported_circuit
from circ.compiler.check.signatures import RENDER_FORMATS
from circ.compiler.diagnostics import one_of
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.spec_files import problem_in_path

CIRCUIT_NODE_KINDS = ("embed", "head", "mlp", "resid", "head_input")


def lower_circuits(ctx: Context) -> None:
    """Circuits, categories and renders, in statement order."""
    for order, statement in ctx.statements:
        use = ctx.use(order, statement)
        try:
            if isinstance(statement, s.Definition) and statement.keyword == "circuit" \
                    and ctx.owns(statement):
                value = statement.value
                if isinstance(value, s.Call) and value.func == "import":
                    ctx.circuits[statement.name] = imported_circuit(ctx, statement.name, value, use, statement.span)
                    continue
                nodes = nodesets.evaluate(ctx, value, use, CIRCUIT_NODE_KINDS)
                ctx.circuits[statement.name] = ir.Circuit(statement.name, nodes, statement.span)
            elif isinstance(statement, s.CategoriesStmt):
                _categories(ctx, statement, use)
            elif isinstance(statement, s.RenderStmt):
                ctx.renders.append(_render(ctx, statement, use))
        except Reported:
            pass


def _categories(ctx: Context, statement: s.CategoriesStmt, use) -> None:
    name = statement.circuit
    ctx.lookup(name, statement.circuit_span, use, ("circuit",))
    if ctx.category_orders.get(name) != use.order:
        return  # a second block for the same circuit, already reported
    circuit = ctx.circuits.get(name)
    scored = circuit is None or not isinstance(circuit.nodes, ir.NodeList)
    scope = rules.Scope(source=name, effect=scored, attention=True)
    for entry in ctx.categories[name].values():
        try:
            rule = rules.lower_rule(ctx, entry.rule, scope, use)
            ctx.category_list.append(ir.Category(name, entry.name, rule, entry.span))
        except Reported:
            pass


def _render(ctx: Context, statement: s.RenderStmt, use) -> ir.Render:
    ctx.lookup(statement.circuit, statement.circuit_span, use, ("circuit",))
    path = statement.path.value
    problem = problem_in_path(path)
    if problem is not None:
        ctx.fail("E114", f"cannot render to this path: it {problem}", statement.path.span)
    if PurePath(path).is_absolute() or path.startswith(("/", "\\")) or ".." in PurePath(path).parts:
        ctx.fail("E510", f"cannot render to `{path}`: it leaves the output folder", statement.path.span,
                 "diagrams are written inside the output folder; give a relative path without `..`")
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if extension not in RENDER_FORMATS:
        ctx.fail("E316", f"cannot render to `{path}`: unknown format", statement.path.span,
                 "the file name must end in " + one_of("." + f for f in RENDER_FORMATS))
    first = next((r for r in ctx.renders if r.path == path), None)
    if first is not None:
        ctx.fail("E207", f"`{path}` is rendered twice", statement.path.span,
                 f"first rendered at line {first.span.line}")
    clash = next((r for r in ctx.renders if _is_folder_of(r.path, path) or _is_folder_of(path, r.path)), None)
    if clash is not None:
        ctx.fail("E316", f"cannot render to both `{clash.path}` and `{path}`: one would have to be "
                 "a folder holding the other", statement.path.span,
                 f"`{clash.path}` is rendered at line {clash.span.line}")
    return ir.Render(statement.circuit, path, statement.span)


def _is_folder_of(folder: str, path: str) -> bool:
    folder, path = posixpath.normpath(folder), posixpath.normpath(path)
    return path.startswith(folder.rstrip("/") + "/")

"""The compiler's front door: compile a spec file or text to a checked `Spec`, and
plan it into a graph of operations."""
from __future__ import annotations

import os
from pathlib import Path

from circ.compiler import ir
from circ.compiler.check.context import Context
from circ.compiler.check.passes import run_passes
from circ.compiler.cycle_collection import without_cycle_collection
from circ.compiler.diagnostics import CircError, Diagnostic
from circ.compiler.syntax.spec_files import load_sources


def compile_file(path: str | Path, *, model_override=None,
                 shape: ir.Shape | None = None, include_outside: bool = False) -> ir.Spec:
    """The checked Spec of the file at `path`; raises CircError with every
    diagnostic of the file (and of the files it includes).

    model_override replaces the spec's model: an ir.Model, or a function from the
    spec's own ir.Model to the one to use (keeping, say, its dtype); shape replaces the shape read from the
    model's configuration (for models measured only once loaded, such as GGUF).
    include_outside allows `include` of files outside the spec's folder tree."""
    return _compile(str(path), None, model_override, shape, include_outside)


def compile_source(text: str, path: str = "<string>", *, model_override=None,
                   shape: ir.Shape | None = None, include_outside: bool = False) -> ir.Spec:
    """Like compile_file, for text; relative paths are taken from `path`'s folder."""
    return _compile(path, text, model_override, shape, include_outside)


def plan(spec: ir.Spec):
    """The networkx DiGraph of operations that runs `spec` (see plan/planner.py)."""
    from circ.compiler.plan.planner import build_plan

    return build_plan(spec)


def _compile(path: str, text: str | None, model_override, shape, include_outside=False) -> ir.Spec:
    ctx = Context(path, model_override=model_override, shape_override=shape,
                  include_outside=include_outside)
    try:
        with without_cycle_collection():
            load_sources(ctx, text)
            if not ctx.diagnostics:
                run_passes(ctx)
    except RecursionError:
        ctx.diagnostics.append(Diagnostic("E110", "expression nested too deeply",
                                          ir.Span(path, 1, 1, 1, 2)))
    if ctx.diagnostics:
        raise CircError(_in_source_order(ctx), ctx.sources)
    return _assemble(ctx)


def _in_source_order(ctx: Context) -> list[Diagnostic]:
    file_order = {f.path: i for i, f in enumerate(ctx.files)}
    return sorted(dict.fromkeys(ctx.diagnostics), key=lambda d: (
        file_order.get(d.span.path, len(file_order)), d.span.line, d.span.col, d.code))


def _assemble(ctx: Context) -> ir.Spec:
    root = next(f for f in ctx.files if f.path == ctx.root_path)
    lines = ir.source_lines(root.text) or [""]
    span = ir.Span(ctx.root_path, 1, 1, len(lines), len(lines[-1]) + 1)
    name = ctx.spec_name or os.path.splitext(os.path.basename(ctx.root_path))[0]
    return ir.Spec(
        name=name,
        path=ctx.root_path,
        model=ctx.model,
        shape=ctx.shape,
        datasets=tuple(ctx.datasets.values()),
        metrics=tuple(ctx.metrics.values()),
        analyses=tuple(ctx.analyses.values()),
        circuits=tuple(ctx.circuits.values()),
        categories=tuple(ctx.category_list),
        expectations=tuple(ctx.expectations),
        renders=tuple(ctx.renders),
        includes=tuple(ctx.includes),
        span=span,
    )

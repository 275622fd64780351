"""Load a spec and the files it includes: read, decode as UTF-8, parse, follow
`include` statements (relative to the including file; each file once; cycles are an
error at the include line). Statements are flattened in order: an included file's
statements come before those of the file that includes it."""
from __future__ import annotations

import os

from circ.compiler.bounded_read import SPEC_LIMIT, read_limited
from circ.compiler.check.context import Context
from circ.compiler.diagnostics import CircError, Diagnostic
from circ.compiler.ir import Span
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.parser import parse_source


def read_text(path: str) -> tuple[str | None, Diagnostic | None, str]:
    """(text, None, text) on success; (None, diagnostic, best-effort text) on failure."""
    try:
        data = read_limited(path, SPEC_LIMIT)
    except OSError as error:
        reason = error.strerror or str(error)
        return None, Diagnostic("E505", f"cannot read `{path}`: {reason}", Span(path, 1, 1, 1, 1)), ""
    try:
        return data.decode("utf-8-sig"), None, ""
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        col = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        span = Span(path, line, col, line, col + 1)
        message = f"`{path}` is not UTF-8 text (byte 0x{data[error.start]:02x})"
        return None, Diagnostic("E504", message, span), data.decode("utf-8", "replace")


def load_sources(ctx: Context, root_text: str | None = None) -> None:
    """Fill ctx.files and ctx.statements (with global order numbers)."""
    statements: list[s.Statement] = []
    if root_text is None:
        root_text, problem, shown = read_text(ctx.root_path)
        if problem is not None:
            ctx.files.append(s.SourceFile(ctx.root_path, shown, (), ()))
            ctx.diagnostics.append(problem)
            return
    _load(ctx, ctx.root_path, root_text, [os.path.realpath(ctx.root_path)], set(), statements)
    ctx.statements = list(enumerate(statements))


def _load(ctx: Context, path: str, text: str, chain: list[str], seen: set[str],
          out: list[s.Statement]) -> None:
    seen.add(os.path.realpath(path))
    try:
        parsed = parse_source(text, path)
    except CircError as error:
        ctx.files.append(s.SourceFile(path, text, (), ()))
        ctx.diagnostics.extend(error.diagnostics)
        return
    ctx.files.append(parsed)
    own = []
    for statement in parsed.statements:
        if isinstance(statement, s.IncludeStmt):
            _include(ctx, statement, path, chain, seen, out)
        else:
            own.append(statement)
    out.extend(own)


def _include(ctx: Context, statement: s.IncludeStmt, path: str, chain: list[str],
             seen: set[str], out: list[s.Statement]) -> None:
    target = statement.path.value
    resolved = target if os.path.isabs(target) else os.path.normpath(
        os.path.join(os.path.dirname(path), target))
    real = os.path.realpath(resolved)
    if real in chain:
        names = [os.path.basename(p) for p in chain[chain.index(real):]] + [os.path.basename(real)]
        ctx.error("E503", "include cycle: " + " -> ".join(names), statement.path.span)
        return
    if real in seen:
        return
    if not os.path.isfile(resolved):
        ctx.error("E501", f"included file `{resolved}` not found", statement.path.span)
        return
    text, problem, shown = read_text(resolved)
    if problem is not None:
        ctx.files.append(s.SourceFile(resolved, shown, (), ()))
        ctx.diagnostics.append(problem)
        return
    ctx.includes.append(resolved)
    _load(ctx, resolved, text, chain + [real], seen, out)

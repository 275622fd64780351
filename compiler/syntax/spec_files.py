"""Load a spec and the files it includes: read, decode as UTF-8, parse, follow
`include` statements (relative to the including file; each file once; cycles are an
error at the include line). Statements are flattened in order: an included file's
statements come before those of the file that includes it.

An included file must lie inside the spec's folder tree (after following links)
unless the caller allows files outside it (`circ check --include-outside`). The text
of an included file is shown under diagnostics only when it is a `.circ` file inside
that tree: a file that merely happens to be readable (a token, `/proc/self/environ`)
is never echoed, only located."""
from __future__ import annotations

import os

from circ.compiler.bounded_read import SPEC_LIMIT, read_limited
from circ.compiler.check.context import Context
from circ.compiler.diagnostics import CircError, Diagnostic
from circ.compiler.ir import Span, source_lines
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.parser import parse_source


def read_text(path: str) -> tuple[str | None, Diagnostic | None, str]:
    """(text, None, "") on success; (None, diagnostic, best-effort text) on failure."""
    problem = problem_in_path(path)
    if problem is not None:
        return None, Diagnostic("E114", f"file name {problem}", Span(path, 1, 1, 1, 1)), ""
    try:
        data = read_limited(path, SPEC_LIMIT)
    except OSError as error:
        reason = error.strerror or str(error)
        return None, Diagnostic("E505", f"cannot read `{path}`: {reason}", Span(path, 1, 1, 1, 1)), ""
    try:
        return data.decode("utf-8-sig"), None, ""
    except UnicodeDecodeError as error:
        before = source_lines(data[:error.start].decode("utf-8", "replace") + "^")
        span = Span(path, len(before), len(before[-1]), len(before), len(before[-1]) + 1)
        message = f"`{path}` is not UTF-8 text (byte 0x{data[error.start]:02x})"
        return None, Diagnostic("E504", message, span), data.decode("utf-8", "replace")


def load_sources(ctx: Context, root_text: str | None = None) -> None:
    """Fill ctx.files and ctx.statements (with global order numbers)."""
    statements: list[s.Statement] = []
    if problem_in_path(ctx.root_path) is not None or root_text is None:
        root_text, problem, shown = read_text(ctx.root_path)
        if problem is not None:
            ctx.files.append(s.SourceFile(ctx.root_path, shown, (), ()))
            ctx.diagnostics.append(problem)
            return
    _load(ctx, ctx.root_path, root_text, [os.path.realpath(ctx.root_path)], set(), statements)
    ctx.statements = list(enumerate(statements))


NAME_MAX = 255  # bytes in one file or folder name, on every common file system


def problem_in_path(path: str) -> str | None:
    """Why `path` cannot name a file (a NUL or unencodable character, a name longer
    than NAME_MAX bytes), or None."""
    if "\0" in path:
        return "contains a NUL character"
    try:
        parts = os.fsencode(path).split(os.fsencode(os.sep))
    except UnicodeError:
        return "contains a character that cannot be part of a file name"
    if any(len(part) > NAME_MAX for part in parts):
        return f"has a name longer than {NAME_MAX} bytes"
    return None


def spec_folder(ctx: Context) -> str:
    """The real folder of the root spec: the tree its includes must stay in."""
    return os.path.realpath(os.path.dirname(os.path.abspath(ctx.root_path)))


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def _load(ctx: Context, path: str, text: str, chain: list[str], seen: set[str],
          out: list[s.Statement]) -> None:
    seen.add(os.path.realpath(path))
    try:
        parsed = parse_source(text, path)
    except CircError as error:
        ctx.files.append(s.SourceFile(path, text, (), ()))
        ctx.diagnostics.extend(error.diagnostics if path not in ctx.hidden else [
            Diagnostic(d.code, "not circ text: a syntax error here (the text of a file that is "
                       "not a .circ file in the spec's folder is not shown)", d.span)
            for d in error.diagnostics])
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
    problem = problem_in_path(target)
    if problem is not None:
        ctx.error("E114", f"included path {problem}", statement.path.span)
        return
    resolved = target if os.path.isabs(target) else os.path.normpath(
        os.path.join(os.path.dirname(path), target))
    real = os.path.realpath(resolved)
    folder = spec_folder(ctx)
    inside = _inside(real, folder)
    if not inside and not ctx.include_outside:
        ctx.error("E112", f"included file `{target}` is outside the spec's folder `{folder}`",
                  statement.path.span, "move it under the spec's folder, or allow it with "
                  "`--include-outside` (its text is then never shown in diagnostics)")
        return
    if real in chain:
        names = [os.path.basename(p) for p in chain[chain.index(real):]] + [os.path.basename(real)]
        ctx.error("E503", "include cycle: " + " -> ".join(names), statement.path.span)
        return
    if real in seen:
        return
    if not os.path.isfile(resolved):
        ctx.error("E501", f"included file `{resolved}` not found", statement.path.span)
        return
    if not (inside and resolved.endswith(".circ")):
        ctx.hidden.add(resolved)
    text, problem, shown = read_text(resolved)
    if problem is not None:
        ctx.files.append(s.SourceFile(resolved, shown, (), ()))
        ctx.diagnostics.append(problem)
        return
    ctx.includes.append(resolved)
    _load(ctx, resolved, text, chain + [real], seen, out)

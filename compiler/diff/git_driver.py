"""`circ diff --git`: the semantic diff as git's external diff driver.

With `*.circ diff=circ` in .gitattributes and `git config diff.circ.command
'circ diff --git'`, git runs the command with seven arguments,
`path old-file old-hex old-mode new-file new-hex new-mode` (nine for a rename, with
the new path and a rename message; one for an unmerged path). A side that does not
exist is `/dev/null`: the diff is then against an empty spec, so every definition
shows as added or removed. A side that does not compile gets its diagnostics and a
plain line diff instead. Git stops at a driver that exits non-zero, so the driver
always exits 0 once it has printed its diff.
"""
from __future__ import annotations

import difflib
import os
import sys
from dataclasses import replace

from circ.compiler.diff.format import DiffReport, format_report
from circ.compiler.diff.inputs import (
    RESULTS,
    SPEC,
    DiffInputError,
    Operand,
    compile_operand,
    load_results,
    operand_kind,
)
from circ.compiler.diff.results import ResultsError, diff_results
from circ.compiler.diff.spec import diff_specs

ABSENT = "/dev/null"
USAGE = ("usage: circ diff --git PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE "
         "[NEW-PATH RENAME-MESSAGE]")


def _read_side(file_name: str, repo_path: str, label: str) -> Operand | None:
    if file_name == ABSENT:
        return None
    with open(file_name, "rb") as handle:
        text = handle.read().decode("utf-8", "replace")
    return Operand(label, text, os.path.abspath(repo_path), operand_kind(repo_path, text))


def _empty_like(spec):
    return replace(spec, datasets=(), metrics=(), analyses=(), circuits=(), categories=(),
                   expectations=(), renders=())


def _spec_report(old: Operand | None, new: Operand | None) -> DiffReport:
    old_spec = compile_operand(old) if old else None
    new_spec = compile_operand(new) if new else None
    old_spec = old_spec or _empty_like(new_spec)
    new_spec = new_spec or _empty_like(old_spec)
    return DiffReport(old.label if old else ABSENT, new.label if new else ABSENT,
                      spec_changes=diff_specs(old_spec, new_spec))


def _results_report(old: Operand | None, new: Operand | None) -> DiffReport:
    old_results = load_results(old) if old else {"analyses": {}}
    new_results = load_results(new) if new else {"analyses": {}}
    try:
        diff = diff_results(old_results, new_results)
    except ResultsError as error:
        raise DiffInputError(str(error)) from None
    return DiffReport(old.label if old else ABSENT, new.label if new else ABSENT, results=diff)


def _line_diff(old: Operand | None, new: Operand | None, old_label: str, new_label: str) -> str:
    old_lines = old.text.splitlines(keepends=True) if old else []
    new_lines = new.text.splitlines(keepends=True) if new else []
    lines = difflib.unified_diff(old_lines, new_lines, old_label, new_label)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def git_driver_main(argv: list[str], *, color: bool = False) -> int:
    """Run as git's external diff command; prints the diff to stdout."""
    if len(argv) == 1:
        print(f"* Unmerged path {argv[0]}")
        return 0
    if len(argv) not in (7, 9):
        print(USAGE, file=sys.stderr)
        return 2
    path, old_file, new_file = argv[0], argv[1], argv[4]
    new_path = argv[7] if len(argv) == 9 else path
    old_label, new_label = f"a/{path}", f"b/{new_path}"
    print(f"diff --circ {old_label} {new_label}")
    try:
        old = _read_side(old_file, path, old_label)
        new = _read_side(new_file, new_path, new_label)
    except OSError as error:
        print(f"error: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    kind = (old or new).kind if old or new else SPEC
    try:
        report = (_results_report if kind == RESULTS else _spec_report)(old, new)
    except DiffInputError as error:
        print(str(error).rstrip())
        print("(not comparable semantically; line diff follows)")
        sys.stdout.write(_line_diff(old, new, old_label, new_label))
        return 0
    sys.stdout.write(format_report(report, "text", color))
    return 0

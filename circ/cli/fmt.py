"""`circ fmt`: rewrite specs in canonical layout, or list those that would change.
A spec is rewritten atomically with its own permissions, never through a symbolic
link (`safe_write`)."""
from __future__ import annotations

import os

from circ.compiler.diagnostics import CircError
from circ.compiler.escape import terminal_text
from circ.compiler.syntax.fmt import format_source
from circ.compiler.syntax.spec_files import read_text
from circ.runtime.results.safe_write import write_inside


def fmt_paths(paths, check: bool, out, err) -> int:
    """Rewrite files in canonical layout, or with `check` list those that would change."""
    status = 0
    for path in paths:
        text, problem, shown = read_text(path)
        if problem is not None:
            print(CircError([problem], {path: shown}).render(), file=err)
            status = 1
            continue
        try:
            formatted = format_source(text, path)
        except CircError as error:
            print(error.render(), file=err)
            status = 1
            continue
        if formatted == text:
            continue
        if check:
            print(terminal_text(f"would reformat {path}"), file=out)
            status = 1
        else:
            try:
                _rewrite(path, formatted)
            except OSError as error:
                print(terminal_text(f"circ: cannot rewrite {path}: {error.strerror or error}"), file=err)
                status = 1
                continue
            print(terminal_text(f"reformatted {path}"), file=err)
    return status


def _rewrite(path: str, text: str) -> None:
    full = os.path.abspath(path)
    mode = os.stat(full, follow_symlinks=False).st_mode & 0o7777
    write_inside(os.path.dirname(full), os.path.basename(full), text, mode=mode)

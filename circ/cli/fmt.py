"""`circ fmt`: rewrite specs in canonical layout, or list those that would change."""
from __future__ import annotations

import os
import tempfile

from circ.compiler.diagnostics import CircError
from circ.compiler.escape import terminal_text
from circ.compiler.syntax.fmt import format_source
from circ.compiler.syntax.spec_files import read_text


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
            _write_atomically(path, formatted)
            print(terminal_text(f"reformatted {path}"), file=err)
    return status


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".circ-fmt-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        mode = os.stat(path).st_mode & 0o777
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise

"""`circ check`: compile each file and print its diagnostics, or `PATH: ok`."""
from __future__ import annotations

from circ.compiler.api import compile_file
from circ.compiler.diagnostics import CircError
from circ.compiler.escape import terminal_text


def check_paths(paths, err, include_outside: bool = False) -> int:
    """Check every file; print diagnostics (or `PATH: ok`) to `err`; 1 if any failed."""
    status = 0
    for path in paths:
        try:
            compile_file(path, include_outside=include_outside)
        except CircError as error:
            print(error.render(), file=err)
            status = 1
        else:
            print(terminal_text(f"{path}: ok"), file=err)
    return status

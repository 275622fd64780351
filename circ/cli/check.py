"""`circ check`: compile each file and print its diagnostics, or `PATH: ok`.
With `--model M`, ranges are checked against the model `circ run --model M` uses."""
from __future__ import annotations

from circ.compiler.api import compile_file
from circ.compiler.diagnostics import CircError
from circ.compiler.escape import terminal_text
from circ.running import model_from_option


def check_paths(paths, err, model: str | None = None, include_outside: bool = False) -> int:
    """Check every file; print diagnostics (or `PATH: ok`) to `err`; 1 if any failed."""
    override = (lambda base: model_from_option(model, base)) if model is not None else None
    status = 0
    for path in paths:
        try:
            compile_file(path, model_override=override, include_outside=include_outside)
        except CircError as error:
            print(error.render(), file=err)
            status = 1
        else:
            print(terminal_text(f"{path}: ok"), file=err)
    return status

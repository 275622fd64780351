"""`circ check`: compile each file and print its diagnostics, or `PATH: ok`.
With `--model M`, ranges are checked against the model `circ run --model M` uses."""
from __future__ import annotations

from circ.cli.model_option import model_from_option, spec_model
from circ.compiler.api import compile_file
from circ.compiler.diagnostics import CircError


def check_paths(paths, err, model: str | None = None) -> int:
    """Check every file; print diagnostics (or `PATH: ok`) to `err`; 1 if any failed."""
    status = 0
    for path in paths:
        override = model_from_option(model, spec_model(path)) if model is not None else None
        try:
            compile_file(path, model_override=override)
        except CircError as error:
            print(error.render(), file=err)
            status = 1
        else:
            print(f"{path}: ok", file=err)
    return status

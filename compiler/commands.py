"""The bodies of `circ check`, `circ fmt` and `circ plan`: each takes paths and
output streams and returns the exit status, so the CLI stays a thin shell."""
from __future__ import annotations

import os
import tempfile

from .api import compile_file
from .diagnostics import CircError
from .fmt import format_source
from .sources import read_text


def check_paths(paths, err) -> int:
    """Check every file; print diagnostics (or `PATH: ok`) to `err`; 1 if any failed."""
    status = 0
    for path in paths:
        try:
            compile_file(path)
        except CircError as error:
            print(error.render(), file=err)
            status = 1
        else:
            print(f"{path}: ok", file=err)
    return status


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
            print(f"would reformat {path}", file=out)
            status = 1
        else:
            _write_atomically(path, formatted)
            print(f"reformatted {path}", file=err)
    return status


def plan_path(path, fmt: str, out, err) -> int:
    """Print the plan of one spec in `fmt` (text, json or dot)."""
    from .api import plan
    from .plan_output import render_plan

    try:
        spec = compile_file(path)
    except CircError as error:
        print(error.render(), file=err)
        return 1
    out.write(render_plan(plan(spec), fmt))
    return 0


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".circ-fmt-")
    with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)
    mode = os.stat(path).st_mode & 0o777
    os.chmod(temporary, mode)
    os.replace(temporary, path)

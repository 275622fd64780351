"""`circ render`: a circuit diagram from results (a results.json or a run folder)
or, for a hypothesis that has not run, from a spec. No torch is imported.

Exit 0 when the diagram is written; 2 when the spec does not compile (its
diagnostics), or, with a one-line message, when the results cannot be read or
drawn (not JSON, numbers out of range, nesting too deep, values of the wrong type)
or the diagram cannot be written."""
from __future__ import annotations

from pathlib import Path


def render_path(source: str, output: str, circuit: str | None, stderr) -> int:
    from circ.compiler.diagnostics import CircError
    from circ.compiler.escape import terminal_text
    from circ.runtime.render.diagram import RenderError, hypothesis_dot
    from circ.runtime.render.graphviz import render

    path = Path(source)
    if path.is_dir():
        path = path / "results.json"
    try:
        if path.suffix == ".circ":
            from circ.compiler.api import compile_file

            dot = hypothesis_dot(compile_file(path), circuit)
        else:
            dot = _results_dot(path, circuit)
        written = render(dot, Path(output))
    except CircError as error:
        print(error.render(), file=stderr)
        return 2
    except RenderError as error:
        print(terminal_text(f"circ: {error}"), file=stderr)
        return 2
    print(terminal_text(f"wrote {written}"), file=stderr)
    return 0


def _results_dot(path: Path, circuit: str | None) -> str:
    """The diagram of a results file; any value of the wrong type or out of range
    (the file may have been edited by hand, or by someone else) is a RenderError."""
    from circ.runtime.render.diagram import RenderError, circuit_dot

    results = _read_results(path)
    try:
        return circuit_dot(results, circuit)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError,
            RecursionError) as error:
        raise RenderError(f"{path}: a value in the results is not what circ wrote "
                          f"({type(error).__name__}: {str(error)[:200]})") from None


def _read_results(path: Path) -> dict:
    from circ.runtime.render.diagram import RenderError

    from circ.compiler.diff.inputs import read_results_file

    try:
        return read_results_file(path)
    except FileNotFoundError:
        raise RenderError(f"{path}: no such file") from None
    except ValueError as error:
        raise RenderError(f"{path}: {error}") from None

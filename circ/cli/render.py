"""`circ render`: a circuit diagram from results (a results.json or a run folder)
or, for a hypothesis that has not run, from a spec. Exit 0 written, 2 when the input
is broken or the picture cannot be written. No torch is imported."""
from __future__ import annotations

import json
from pathlib import Path


def render_path(source: str, output: str, circuit: str | None, stderr) -> int:
    from circ.compiler.diagnostics import CircError
    from circ.runtime.render.diagram import RenderError, circuit_dot, hypothesis_dot
    from circ.runtime.render.graphviz import render

    path = Path(source)
    if path.is_dir():
        path = path / "results.json"
    try:
        if path.suffix == ".circ":
            from circ.compiler.api import compile_file

            dot = hypothesis_dot(compile_file(path), circuit)
        else:
            dot = circuit_dot(_read_results(path), circuit)
        written = render(dot, Path(output))
    except CircError as error:
        print(error.render(), file=stderr)
        return 2
    except RenderError as error:
        print(f"circ: {error}", file=stderr)
        return 2
    print(f"wrote {written}", file=stderr)
    return 0


def _read_results(path: Path) -> dict:
    from circ.runtime.render.diagram import RenderError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RenderError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RenderError(f"{path}: not a results.json file ({error})") from None

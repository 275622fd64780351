"""Everything a run leaves in its output folder: results.json, the diagrams the spec
renders, and report.html (with the first rendered circuit, else the first circuit).
Each file is written through `safe_write`: inside the folder, never through a
symbolic link, atomically."""
from __future__ import annotations

from pathlib import Path

from circ.runtime.render.diagram import circuit_dot
from circ.runtime.render.graphviz import RenderError, inline_svg, render
from circ.runtime.render.report import write_report
from circ.runtime.results.write import write_results


def write_outputs(results: dict, spec_text: str, folder: Path, renders: tuple = (), *,
                  per_prompt: dict | None = None, prompts: dict | None = None) -> tuple[Path, list[str]]:
    """Write the run's files into `folder`; `renders` holds (circuit, relative path)
    pairs; `per_prompt` and `prompts` (per_prompt.json's values and the datasets'
    prompt texts), when given, add the per-prompt views to the report. Returns results.json's path and the problems met drawing diagrams (a
    missing Graphviz, say) or writing the report, which leave the other files
    written. OSError when results.json cannot be written."""
    folder = Path(folder)
    path = write_results(folder / "results.json", results)
    problems = []
    for circuit, target in renders:
        try:
            render(circuit_dot(results, circuit), folder / target, root=folder)
        except RenderError as error:
            problems.append(str(error))
    diagram = None
    if results.get("circuit"):
        try:
            diagram = inline_svg(circuit_dot(results, renders[0][0] if renders else None))
        except RenderError as error:
            problems.append(f"report without a diagram: {error}")
    try:
        write_report(results, spec_text, folder / "report.html", diagram_svg=diagram, per_prompt=per_prompt,
                     prompts=prompts)
    except OSError as error:
        problems.append(f"cannot write {folder / 'report.html'}: {error.strerror or error}")
    return path, problems

"""`circ plan`: the graph of operations a spec compiles to, as text, JSON or dot."""
from __future__ import annotations

from circ.compiler.api import compile_file, plan
from circ.compiler.diagnostics import CircError
from circ.compiler.plan.output import render_plan


def plan_path(path, fmt: str, out, err, include_outside: bool = False) -> int:
    """Print the plan of one spec in `fmt` (text, json or dot)."""
    try:
        spec = compile_file(path, include_outside=include_outside)
    except CircError as error:
        print(error.render(), file=err)
        return 1
    out.write(render_plan(plan(spec), fmt))
    return 0

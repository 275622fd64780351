"""`circ plan FILE --estimate`: count every dataset's prompt tokens (no weights, no
torch; see runtime/data/token_counts.py) and print the compiler's cost estimate of
the plan."""
from __future__ import annotations

import json

from circ.compiler import ir
from circ.compiler.diagnostics import CircError
from circ.compiler.escape import terminal_text
from circ.compiler.estimate.cost_shapes import (
    CostShape,
    EstimateError,
    cost_shape,
    from_config,
    from_ir_shape,
)
from circ.runtime.data.token_counts import measure_prompts, model_folder


def estimate_path(path: str, model_shape: str | None, batch_size: int, fmt: str, out, err,
                  include_outside: bool = False) -> int:
    """Print the estimate of the spec at `path`: 0, or 1 for a spec or dataset error,
    or 2 for an unusable `--model-shape`."""
    from circ.compiler.api import compile_file, plan
    from circ.compiler.estimate.cost import estimate_plan
    from circ.compiler.estimate.output import estimate_json, estimate_text
    from circ.runtime.data.readers import DatasetError

    try:
        shape = cost_shape(model_shape) if model_shape else None
    except EstimateError as error:
        print(terminal_text(f"circ: {error}"), file=err)
        return 2
    try:
        spec = compile_file(path, shape=shape.ir_shape() if shape else None,
                            include_outside=include_outside)
    except CircError as error:
        print(error.render(), file=err)
        return 1
    try:
        shape = shape or spec_cost_shape(spec)
        lengths, starts = measure_prompts(spec)
        estimate = estimate_plan(spec, plan(spec), shape, lengths, batch_size, starts)
    except (EstimateError, DatasetError, ValueError) as error:
        print(terminal_text(f"circ: {error}"), file=err)
        return 1
    out.write(estimate_json(estimate) if fmt == "json" else estimate_text(estimate))
    return 0


def spec_cost_shape(spec: ir.Spec) -> CostShape:
    """The cost shape of the spec's own model: its config.json when it has one."""
    folder = model_folder(spec.model)
    name = "demo" if spec.model.source == "demo" else str(spec.model.location)
    if folder is not None and (folder / "config.json").is_file():
        try:
            return from_config(json.loads((folder / "config.json").read_text(encoding="utf-8")), name)
        except (OSError, ValueError, RecursionError):  # unreadable: fall back to the spec's shape
            pass
    if spec.shape is None:
        raise EstimateError(f"the shape of {name} is known only once it loads: pass --model-shape")
    return from_ir_shape(spec.shape, name)

"""Show a cost `Estimate` as a text table or as JSON."""
from __future__ import annotations

import json
from dataclasses import asdict

from circ.compiler.estimate.cost import Estimate

_SI = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BINARY = ((2 ** 50, "PiB"), (2 ** 40, "TiB"), (2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB"))


def si(value: float) -> str:
    """1234567 -> '1.23M'."""
    for scale, suffix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def binary_bytes(value: float) -> str:
    """3 * 2**30 -> '3 GiB'."""
    for scale, suffix in _BINARY:
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{int(value)} B"


def estimate_text(estimate: Estimate) -> str:
    shape = estimate.shape
    lines = [f"estimate of {estimate.spec} on {shape.name}: {shape.n_layers} layers x {shape.n_heads} heads, "
             f"d_model {shape.d_model}, {si(shape.params)} parameters, {estimate.dtype}, "
             f"batch size {estimate.batch_size}"]
    rows = [("op", "what", "forwards", "backwards", "FLOPs", "activations")]
    for op in estimate.ops:
        mark = "<=" if op.bounded else ""
        rows.append((op.op, op.what, f"{mark}{op.forwards:,}", f"{op.backwards:,}", f"{mark}{si(op.flops)}",
                     binary_bytes(op.peak_bytes)))
    mark = "<=" if estimate.bounded else ""
    rows.append(("total", "", f"{mark}{estimate.forwards:,}", f"{estimate.backwards:,}",
                 f"{mark}{si(estimate.flops)}", binary_bytes(estimate.peak_bytes)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        left = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        right = [cell.rjust(width) for cell, width in zip(row[2:], widths[2:])]
        lines.append("  ".join(left + right).rstrip())
        if number == 0 or number == len(rows) - 2:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    lines.append(f"weights: {binary_bytes(estimate.weight_bytes)}; activations: the most any one op holds at "
                 f"once (largest batch, cached hooks and logits); a backward costs 2x its forward")
    if estimate.bounded:
        lines.append("<= : node sets chosen at run time (top, best, circuits) are counted at their largest")
    return "\n".join(lines) + "\n"


def estimate_json(estimate: Estimate) -> str:
    document = {
        "spec": estimate.spec,
        "shape": {**asdict(estimate.shape), "params": estimate.shape.params},
        "dtype": estimate.dtype,
        "batch_size": estimate.batch_size,
        "ops": [asdict(op) for op in estimate.ops],
        "total": {"forwards": estimate.forwards, "backwards": estimate.backwards, "flops": estimate.flops,
                  "peak_bytes": estimate.peak_bytes, "weight_bytes": estimate.weight_bytes,
                  "bounded": estimate.bounded},
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"

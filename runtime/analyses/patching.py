"""Activation patching by method: exact (`exact_patching.py`) or estimated by
attribution (`attribution.py`).

value = metric(patched) - metric(clean), averaged over prompts (normalised by the
clean and source runs for a normalised metric); see exact_patching.py for which
activation each node patches and what effect="total" and effect="direct" hold.
method="attribution" estimates the value to first order from one backward pass;
verify=k re-runs the k largest estimates exactly, steps=K integrates gradients over
K points between the clean and source inputs. position "each" patches every token
position on its own (`position_patching.py`).
"""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError, check_nodes
from circ.runtime.analyses.exact_patching import EFFECTS, PATCHABLE, exact_patch

METHODS = ("exact", "attribution")


def patch(loaded, prompts, nodes, metric: ir.Metric, source, *, effect: str = "total",
          position: ir.Position = ir.ALL, batch_size: int = 32, show_progress: bool = True,
          method: str = "exact", verify: int = 0, kernel: str = "auto", steps: int = 1) -> dict:
    """{"values": {node id: mean effect}, "baseline": {"clean": m, "patched_source": m or None}};
    method="attribution" adds "exact": {node id: exact effect} for the verified nodes; position "each"
    adds "positions": {node id: {position: effect}} and "tokens"."""
    if effect not in EFFECTS:
        raise AnalysisError(f"unknown effect {effect!r}; use total or direct")
    if method not in METHODS:
        raise AnalysisError(f"unknown patching method {method!r}; use exact or attribution")
    if metric.normalized and not source.runs_model:
        raise AnalysisError(f'the normalised metric "{metric.name}" needs a patch source that runs the model '
                            "(dataset, corrupt or resample), not mean or zero")
    nodes = check_nodes(nodes, loaded.shape, PATCHABLE, "patch")
    if method == "attribution" and position.kind == "each":
        raise AnalysisError("patching at each position needs method=exact")
    if method == "attribution":
        from circ.runtime.analyses.attribution import attribution_patch

        return attribution_patch(loaded, prompts, nodes, metric, source, effect=effect, position=position,
                                 batch_size=batch_size, show_progress=show_progress, verify=verify, kernel=kernel,
                                 steps=steps)
    if verify or steps != 1:
        raise AnalysisError("verify and steps apply to attribution estimates; they need method=attribution")
    if position.kind == "each":
        from circ.runtime.analyses.position_patching import patch_each_position

        return patch_each_position(loaded, prompts, nodes, metric, source, position=position, effect=effect,
                                   batch_size=batch_size, show_progress=show_progress, kernel=kernel)
    return exact_patch(loaded, prompts, nodes, metric, source, effect=effect, position=position,
                       batch_size=batch_size, show_progress=show_progress, kernel=kernel)

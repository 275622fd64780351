"""A TransformerBridge the caller already loaded, described like a loaded spec model,
so that a notebook runs specs on its model without a second load."""
from __future__ import annotations

from circ.runtime.models.loading import LoadedModel, ModelError, shape_of


def wrap_bridge(bridge, name: str | None = None) -> LoadedModel:
    """`bridge` as a LoadedModel; its numerics are those the bridge runs with now."""
    cfg = getattr(bridge, "cfg", None)
    if cfg is None or getattr(bridge, "tokenizer", None) is None:
        raise ModelError("a model given to circ must be a TransformerBridge with a tokenizer")
    dtype = str(getattr(cfg, "dtype", "float32")).removeprefix("torch.")
    return LoadedModel(
        bridge=bridge,
        name=name or str(getattr(cfg, "model_name", None) or "in-memory model"),
        shape=shape_of(bridge),
        numerics="compat" if getattr(bridge, "compatibility_mode", False) else "raw",
        tokenizer=bridge.tokenizer,
        source="memory",
        location=None,
        dtype=dtype,
        device=str(cfg.device),
    )

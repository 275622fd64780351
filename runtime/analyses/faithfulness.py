"""Circuit faithfulness: how much of the metric the circuit alone carries.

Three runs per prompt: clean; circuit_only, with every head (its z) and MLP (its
output) outside the circuit replaced from the ablation source; all_ablated, with
every head and MLP replaced. The embeddings are never ablated.

    value = (circuit_only - all_ablated) / (clean - all_ablated)

Metrics are used raw (the ratio already normalises them).
"""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.analyses.common import (
    check_nodes,
    mlp_out_hook,
    patch_hook,
    progress,
    run_cached,
    run_hooked,
    z_hook,
)
from circ.runtime.analyses.metrics import metric_values


def faithfulness(loaded, prompts, circuit, metric: ir.Metric, source, *, batch_size: int = 32,
                 show_progress: bool = True) -> dict:
    """{"value", "clean", "circuit_only", "all_ablated"}; value is None when clean == all_ablated."""
    shape = loaded.shape
    circuit = check_nodes(circuit, shape, ("head", "mlp", "embed"), "faithfulness")
    kept_heads = {(n.layer, n.head) for n in circuit if n.kind == "head"}
    kept_mlps = {n.layer for n in circuit if n.kind == "mlp"}
    hooks = [z_hook(layer) for layer in range(shape.n_layers)]
    hooks += [mlp_out_hook(layer) for layer in range(shape.n_layers)] if shape.has_mlp else []
    totals = {"clean": 0.0, "circuit_only": 0.0, "all_ablated": 0.0}
    raw = ir.Metric(metric.name, metric.kind, metric.position)
    with progress(3 * len(prompts), "faithfulness", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            clean_logits, _ = run_cached(loaded.bridge, batch.tokens, [])
            replacement = source.fetch(batch, hooks).activations
            runs = {
                "clean": clean_logits,
                "circuit_only": run_hooked(loaded.bridge, batch.tokens,
                                           ablation_hooks(replacement, shape, kept_heads, kept_mlps)),
                "all_ablated": run_hooked(loaded.bridge, batch.tokens, ablation_hooks(replacement, shape, set(), set())),
            }
            for name, logits in runs.items():
                totals[name] += float(metric_values(logits, batch, raw, clean_logits=clean_logits).sum())
            bar.update(3 * len(batch))
    means = {name: total / len(prompts) for name, total in totals.items()}
    gap = means["clean"] - means["all_ablated"]
    value = (means["circuit_only"] - means["all_ablated"]) / gap if gap != 0 else None
    return {"value": value, **means}


def ablation_hooks(replacement: dict, shape: ir.Shape, kept_heads: set, kept_mlps: set) -> list:
    """Hooks writing the source into every head and MLP not kept."""
    hooks = []
    for layer in range(shape.n_layers):
        ablated = [head for head in range(shape.n_heads) if (layer, head) not in kept_heads]
        if ablated:
            hooks.append((z_hook(layer), _heads_hook(replacement[z_hook(layer)], ablated)))
        if shape.has_mlp and layer not in kept_mlps:
            hooks.append((mlp_out_hook(layer), patch_hook(replacement[mlp_out_hook(layer)], None, None, shape.n_heads)))
    return hooks


def _heads_hook(source, heads: list[int]):
    def hook(z, hook):
        out = z.clone()
        out[:, :, heads] = source.to(z.device, z.dtype).expand_as(z)[:, :, heads]
        return out

    return hook

"""Exact activation patching: write a source's activation into one node of a clean run.

Nodes and where they are patched: a head at its z (`hook_z`, that head only), a
head's q/k/v input at `hook_q/k/v` (that head only), an MLP at `hook_mlp_out`,
EMBED at the input to block 0, a residual node `L{n}.RESID` at the stream entering
block n (n = n_layers: the stream after the last block). Only the chosen positions
are patched (`position`; all positions by default).

effect="total": the rest of the model runs normally after the patch.
effect="direct": the attention and MLP outputs of every later component are held
at their clean values, so the patch reaches the logits only through the residual
stream, directly.

value = metric(clean) - metric(patched), negated for a lower-is-better metric (loss,
kl), so that a node that helps is positive; averaged over prompts, with its standard
error (`common.patch_values`). For a normalised metric both terms are first
normalised with the clean run (1) and the source run (0), so value = (clean -
patched) / (clean - source); that needs a source that runs the model (dataset,
corrupt, resample).

The exact value comes from the fast kernel of `fast_patching.py` when the model is
one its engine reproduces and has no offloaded weights (kernel="auto"), otherwise
(or with kernel="hooks") from one hooked forward pass per node and batch.
"""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.analyses.common import (
    AnalysisError,
    check_nodes,
    frozen_hooks,
    node_site,
    output_hooks,
    patch_hook,
    patch_values,
    progress,
    run_cached,
    run_hooked,
)
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.node_stats import PerPrompt
from circ.runtime.analyses.resumed_blocks import resumer_for

PATCHABLE = ("head", "head_input", "mlp", "embed", "resid")
EFFECTS = ("total", "direct")


def exact_patch(loaded, prompts, nodes, metric: ir.Metric, source, *, effect: str = "total",
                position: ir.Position = ir.ALL, batch_size: int = 32, show_progress: bool = True,
                kernel: str = "auto") -> dict:
    """{"values": {node id: mean effect}, "baseline": {"clean": m, "patched_source": m or None}}."""
    if effect not in EFFECTS:
        raise AnalysisError(f"unknown effect {effect!r}; use total or direct")
    if metric.normalized and not source.runs_model:
        raise AnalysisError(f'the normalised metric "{metric.name}" needs a patch source that runs the model '
                            "(dataset, corrupt or resample), not mean or zero")
    nodes = check_nodes(nodes, loaded.shape, PATCHABLE, "patch")
    resumer = resumer_for(loaded, prompts, kernel)
    if resumer is not None:
        from circ.runtime.analyses.fast_patching import fast_patch

        return fast_patch(loaded, resumer, prompts, nodes, metric, source, effect=effect, position=position,
                          batch_size=batch_size, show_progress=show_progress)
    return _patch_with_hooks(loaded, prompts, nodes, metric, source, effect=effect, position=position,
                             batch_size=batch_size, show_progress=show_progress)


def _patch_with_hooks(loaded, prompts, nodes, metric: ir.Metric, source, *, effect: str, position: ir.Position,
                      batch_size: int, show_progress: bool) -> dict:
    """One hooked forward pass per node and batch."""
    shape = loaded.shape
    sites = {node: node_site(node, shape) for node in nodes}
    bridge = loaded.bridge
    per_prompt = PerPrompt()
    with progress(len(prompts) * len(nodes), f"patch ({effect})", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            clean_logits, clean = run_cached(bridge, batch.tokens, output_hooks(shape) if effect == "direct" else [])
            fetched = source.fetch(batch, sorted({site.hook for site in sites.values()}))
            mask = None if position.kind == "all" else batch.position_mask(position)
            per_prompt.add("clean", metric_values(clean_logits, batch, metric, clean_logits=clean_logits))
            if fetched.logits is not None:
                per_prompt.add("source", metric_values(fetched.logits, batch, metric, clean_logits=clean_logits))
            for node, site in sites.items():
                hooks = [(site.hook, patch_hook(fetched.activations[site.hook], site.head, mask, shape.n_heads))]
                if effect == "direct":
                    hooks += frozen_hooks(clean, *frozen_layers(node, shape.n_layers), shape.has_mlp)
                logits = run_hooked(bridge, batch.tokens, hooks)
                per_prompt.add(node, metric_values(logits, batch, metric, clean_logits=clean_logits))
                bar.update(len(batch))
    return patch_values({node: per_prompt.of(node) for node in nodes}, per_prompt.of("clean"),
                        per_prompt.of("source") if source.runs_model else None, metric, source.runs_model)


def frozen_layers(node: ir.Node, n_layers: int) -> tuple[range, range]:
    """The layers whose attention and MLP outputs a direct effect holds at clean values."""
    if node.kind == "embed":
        return range(n_layers), range(n_layers)
    if node.kind == "resid":
        return range(node.layer, n_layers), range(node.layer, n_layers)
    if node.kind == "mlp":
        return range(node.layer + 1, n_layers), range(node.layer + 1, n_layers)
    return range(node.layer + 1, n_layers), range(node.layer, n_layers)


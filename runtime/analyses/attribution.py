"""Attribution patching: every node's patching effect estimated to first order from one
clean forward pass with gradients and the source run.

AtP (Nanda's attribution patching; Kramár et al. 2024): the metric of the patched run
is expanded around the clean run in the patched activation a,

    M(patched) - M(clean) ~= sum over positions of (a_source - a_clean) . dM/da,

where a is the node's activation at its patch site (a head's z, a q/k/v input, an
MLP's output, the residual stream), dM/da the gradient of the summed metric in the
clean run, and only the patched positions (and, for a head, its own slot) differ.
The estimate equals the exact effect when the metric is linear in a and approaches
it as the change shrinks.

AtP* fix for attention saturation (Kramár et al.): for a query or key input the
linearisation through the softmax is poor when attention is saturated, so the
patched attention pattern of that head is recomputed exactly and only the rest of
the model is linearised: effect ~= (pattern_patched - pattern_clean) . dM/dpattern.
It needs the engine of `resumed_blocks.py`; without it (a model the engine does not run)
q and k are linearised like every other node ("estimator": "AtP").

steps=K > 1 (total effects, with a source that runs the model): integrated
gradients along the inputs, as EAP-IG does (Hanna et al. 2024). dM/da is the mean of
its values at K points, the input embeddings moved k/K of the way from the clean to
the source prompt (k = 0 .. K-1; k = 0 is the clean run), so a metric that saturates
between the two runs is no longer read from its slope at the clean end alone. It
costs K forward and backward passes instead of one.

effect="direct": every later component is held at its clean output, so the patch
changes the final residual stream by exactly the node's output change `delta`
(`fast_patching.residual_change`, with a q/k/v input's head recomputed exactly); the
estimate is delta . dM/d(final stream), linear only through the final LayerNorm.

Each prompt's estimate of M(patched) - M(clean) is signed and summarised like an
exact patching value (`common.patch_values`: positive when the node helps, mean,
stderr, n).

The metric of a KL divergence from the clean run has zero gradient there, so its
estimates are zero. verify=k re-runs the k largest estimates (by size) exactly.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    AnalysisError,
    check_nodes,
    head_slot,
    node_site,
    part_hook,
    patch_values,
    pattern_hook,
    progress,
    run_cached,
)
from circ.runtime.analyses.fast_patching import (
    clean_hooks,
    head_part,
    heads_reading,
    last_token_view,
    residual_change,
)
from circ.runtime.analyses.gradients import (
    gradient_run,
    input_embeddings,
    patched_at,
    read_like,
)
from circ.runtime.analyses.metrics import metric_values, reads_last_only
from circ.runtime.analyses.node_stats import PerPrompt
from circ.runtime.analyses.resumed_blocks import Resumer, resumer_for

ATTRIBUTABLE = ("head", "head_input", "mlp", "embed", "resid")


def attribution_patch(loaded, prompts, nodes, metric: ir.Metric, source, *, effect: str = "total",
                      position: ir.Position = ir.ALL, batch_size: int = 32, show_progress: bool = True,
                      verify: int = 0, kernel: str = "auto", steps: int = 1) -> dict:
    """{"values": {node id: estimated effect}, "baseline": {"clean": m, "patched_source": m or None},
    "exact": {node id: exact effect, for the `verify` largest estimates}, "estimator": "AtP*" or "AtP"
    (with " + IG(K)" for steps=K > 1)}."""
    if effect not in ("total", "direct"):
        raise AnalysisError(f"unknown effect {effect!r}; use total or direct")
    if not isinstance(verify, int) or isinstance(verify, bool) or verify < 0:
        raise AnalysisError(f"verify takes a number of nodes (0 or more), not {verify!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise AnalysisError(f"steps takes a number of points (1 or more), not {steps!r}")
    if steps > 1 and (effect != "total" or not hasattr(source, "tokens")):
        raise AnalysisError("steps > 1 integrates along the inputs: it needs effect=total and a patch source "
                            "that runs the model on other prompts (dataset, corrupt or resample)")
    if metric.normalized and not source.runs_model:
        raise AnalysisError(f'the normalised metric "{metric.name}" needs a patch source that runs the model '
                            "(dataset, corrupt or resample), not mean or zero")
    nodes = check_nodes(nodes, loaded.shape, ATTRIBUTABLE, "attribution patching")
    resumer = resumer_for(loaded, prompts, kernel)
    if resumer is None and effect == "direct":
        raise AnalysisError("attribution of direct effects needs a model the fast engine runs; use method=exact")
    sites = sorted({node_site(node, loaded.shape).hook for node in nodes})
    per_prompt = PerPrompt()
    with progress(len(prompts) * len(nodes), f"attribution ({effect})", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            fetched = source.fetch(batch, sites)
            mask = None if position.kind == "all" else batch.position_mask(position)
            if effect == "direct":
                clean_values, source_values, estimates = _direct_batch(loaded, resumer, batch, metric, nodes,
                                                                       fetched, mask)
            else:
                toward = source.tokens(batch) if steps > 1 else None
                clean_values, source_values, estimates = _total_batch(loaded, resumer, batch, metric, nodes,
                                                                      fetched, mask, toward, steps)
            per_prompt.add("clean", clean_values)
            if source_values is not None:
                per_prompt.add("source", source_values)
            for node, values in estimates.items():
                per_prompt.add(node, values)
            bar.update(len(batch) * len(nodes))
    clean = per_prompt.of("clean")
    # an estimate of metric(patched) - metric(clean) per prompt; patched = clean + estimate
    out = patch_values({node: clean + per_prompt.of(node) for node in nodes}, clean,
                       per_prompt.of("source") if source.runs_model else None, metric, source.runs_model)
    values = out["values"]
    exact = {}
    if verify:
        from circ.runtime.analyses.exact_patching import exact_patch

        top = sorted(nodes, key=lambda node: -abs(values[node.id]))[:verify]
        exact = exact_patch(loaded, prompts, top, metric, source, effect=effect, position=position, batch_size=batch_size,
                      show_progress=show_progress, kernel=kernel)["values"]
    estimator = ("AtP" if resumer is None else "AtP*") + (f" + IG({steps})" if steps > 1 else "")
    return {**out, "exact": exact, "estimator": estimator}


def _total_batch(loaded, resumer: Resumer | None, batch, metric, nodes, fetched, mask, toward, steps: int):
    hooks = set()
    for node in nodes:
        if _attention_fix(node, resumer):
            hooks |= {part_hook(node.layer, "q"), part_hook(node.layer, "k"), pattern_hook(node.layer)}
        else:
            hooks.add(node_site(node, loaded.shape).hook)
    run = gradient_run(loaded, resumer, batch, metric, hooks)
    if steps > 1:
        run = _integrated(run, loaded, resumer, batch, metric, hooks, toward, steps)
    products: dict[str, torch.Tensor] = {}
    estimates = {}
    for node in nodes:
        if _attention_fix(node, resumer):
            estimates[node] = _pattern_estimate(node, run, fetched.activations, mask, resumer, batch)
            continue
        site = node_site(node, loaded.shape)
        if site.hook not in products:
            products[site.hook] = _linear_products(site.hook, run, fetched.activations, mask, batch, loaded.shape)
        by_slot = products[site.hook]
        slot = None if site.head is None else head_slot(run.activations[site.hook], site.head, loaded.shape.n_heads)
        estimates[node] = by_slot.sum(1) if slot is None else by_slot[:, slot]
    return run.values, _source_values(fetched, batch, metric, run), estimates


def _integrated(run, loaded, resumer, batch, metric, hooks, toward, steps: int):
    """The clean run with each gradient replaced by its mean over the inputs moved
    k/steps of the way toward the source's, k = 0 .. steps - 1."""
    totals = dict(run.gradients)
    embeddings = input_embeddings(loaded, resumer, toward)
    for k in range(1, steps):
        moved = gradient_run(loaded, resumer, batch, metric, hooks, toward=(embeddings, k / steps))
        for name, gradient in moved.gradients.items():
            totals[name] = totals[name] + gradient
    return replace(run, gradients={name: total / steps for name, total in totals.items()})


def _attention_fix(node: ir.Node, resumer: Resumer | None) -> bool:
    return resumer is not None and node.kind == "head_input" and node.part in ("q", "k")


def _linear_products(hook: str, run, fetched, mask, batch, shape: ir.Shape) -> torch.Tensor:
    """(patched - clean) . gradient at `hook` per prompt [batch, slots], summed over
    positions and kept apart per head slot (dimension 2) for attention hooks (one
    slot otherwise); patching every slot at
    once changes each slot exactly as patching it alone does."""
    clean, patched = patched_at(run, hook, fetched[hook], None, mask, batch, shape.n_heads)
    product = (patched - clean) * run.gradients[hook]
    return product.sum((1, 3)) if product.dim() == 4 else product.reshape(product.shape[0], 1, -1).sum(-1)


def _pattern_estimate(node, run, fetched, mask, resumer: Resumer, batch) -> torch.Tensor:
    """AtP*: the attention pattern of each head reading the patched query or key (a
    grouped key serves several) recomputed with it; the estimate per prompt [batch]."""
    layer = node.layer
    names = {p: part_hook(layer, p) for p in ("q", "k")}
    _, moved = patched_at(run, names[node.part], fetched[names[node.part]], node.head, mask, batch, resumer.n_heads)
    query_positions = run.positions[names["q"]]
    total = torch.zeros(len(batch), device=moved.device)
    for head in heads_reading(node, resumer):
        own = {p: head_part(run.activations[names[p]], head, resumer.n_heads) for p in names}
        patched = {**own, node.part: head_part(moved, head, resumer.n_heads)}
        before = resumer.pattern(own["q"], own["k"], query_positions)[:, 0]
        after = resumer.pattern(patched["q"], patched["k"], query_positions)[:, 0]
        product = (after - before) * run.gradients[pattern_hook(layer)][:, head]
        total = total + product.reshape(product.shape[0], -1).sum(-1)
    return total


def _direct_batch(loaded, resumer: Resumer, batch, metric, nodes, fetched, mask):
    n_layers = resumer.n_layers
    clean_logits, clean = run_cached(loaded.bridge, batch.tokens, clean_hooks(nodes, n_layers))
    final = clean[f"blocks.{n_layers - 1}.hook_resid_post"]
    read = batch.last.to(final.device)[:, None] if reads_last_only(metric) else None
    view = batch if read is None else last_token_view(batch)

    def at_read(x):
        return x if read is None else x.gather(1, read[..., None].expand(-1, -1, x.shape[-1]))

    with torch.enable_grad():
        stream = at_read(final).detach().requires_grad_(True)
        logits = resumer.logits(stream)
        values = metric_values(logits, view, metric, clean_logits=logits.detach())
        (gradient,) = torch.autograd.grad(values.sum(), [stream])
    with torch.no_grad():
        estimates = {node: (at_read(residual_change(node, clean, fetched.activations, mask, resumer,
                                                    loaded.shape).delta) * gradient).sum((1, 2))
                     for node in nodes}
    source_values = None
    if fetched.logits is not None:
        source_logits = fetched.logits if read is None else fetched.logits.gather(
            1, read[..., None].expand(-1, -1, fetched.logits.shape[-1]))
        source_values = metric_values(source_logits, view, metric, clean_logits=logits.detach())
    return values.detach(), source_values, estimates


def _source_values(fetched, batch, metric, run):
    if fetched.logits is None:
        return None
    return metric_values(read_like(run, batch, fetched.logits), run.view, metric, clean_logits=run.logits)

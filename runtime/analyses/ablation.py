"""Ablate a set of nodes together: the metric before and after.

Two runs per prompt: clean, and ablated, with every chosen node's activation (a
head's z, an MLP's output, the embeddings) replaced from the ablation source in the
same forward pass. Per prompt the metric of each run and how much the nodes help it,

    value = metric(clean) - metric(ablated), negated for a lower-is-better metric
            (loss, kl)

so that, as everywhere in the results, positive means the nodes help the behaviour;
each averaged over prompts with its standard error (paired, for the value) and the
prompt count.
"""
from __future__ import annotations

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    AnalysisError,
    check_nodes,
    mean_and_stderr,
    node_site,
    progress,
    replaced,
    run_cached,
    run_hooked,
)
from circ.runtime.analyses.metrics import metric_values

LOWER_IS_BETTER = ("loss", "kl")  # metric kinds that fall when the behaviour improves


def ablate(loaded, prompts, nodes, metric: ir.Metric, source, *, batch_size: int = 32,
           show_progress: bool = True) -> dict:
    """{"value": how much the nodes help, "clean", "ablated", "stderr": {...}, "n", "nodes"}."""
    if metric.normalized:
        raise AnalysisError("ablate() reports the metric itself; use a metric that is not normalised, "
                            f'not "{metric.name}"')
    nodes = check_nodes(nodes, loaded.shape, ("embed", "head", "mlp"), "ablate")
    if not nodes:
        raise AnalysisError("ablate() got no nodes to ablate")
    heads_by_hook: dict[str, list[int | None]] = {}
    for node in nodes:
        site = node_site(node, loaded.shape)
        heads_by_hook.setdefault(site.hook, []).append(site.head)
    samples = {"clean": [], "ablated": []}
    with progress(2 * len(prompts), "ablate", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            clean_logits, _ = run_cached(loaded.bridge, batch.tokens, [])
            replacement = source.fetch(batch, list(heads_by_hook)).activations
            hooks = [(hook, _writer(replacement[hook], heads, loaded.shape.n_heads))
                     for hook, heads in heads_by_hook.items()]
            ablated_logits = run_hooked(loaded.bridge, batch.tokens, hooks)
            for name, logits in (("clean", clean_logits), ("ablated", ablated_logits)):
                values = metric_values(logits, batch, metric, clean_logits=clean_logits)
                samples[name] += values.double().tolist()
            bar.update(2 * len(batch))
    helps = -1.0 if metric.kind in LOWER_IS_BETTER else 1.0
    samples["value"] = [helps * (c - a) for a, c in zip(samples["ablated"], samples["clean"])]
    means, stderr = {}, {}
    for name, values in samples.items():
        means[name], stderr[name] = mean_and_stderr(values)
    return {**means, "stderr": stderr, "n": len(prompts), "nodes": [n.id for n in nodes]}


def _writer(source: torch.Tensor, heads: list[int | None], n_heads: int):
    """A hook writing `source` into the listed heads of one activation (all of it for None)."""

    def hook(activation, hook):
        for head in heads:
            activation = replaced(activation, source, head, None, n_heads)
        return activation

    return hook


"""The clean run of a dataset: one batched forward, the mean of every spec metric."""
from __future__ import annotations

import torch
from circ.compiler import ir


def metric_means(loaded, prompts, metrics: tuple[ir.Metric, ...], batch_size: int) -> dict:
    """{metric name: mean over prompts} for the metrics a clean run defines
    (KL to the clean run is 0 by definition and normalised metrics need a
    corrupted run, so both are left out), on the datasets that have the position
    each reads (the checker makes sure every analysis uses a metric only there)."""
    from circ.runtime.analyses.metrics import metric_values

    wanted = [m for m in metrics if m.kind != "kl" and not m.normalized
              and (m.position.kind != "named" or m.position.name in prompts.marks)]
    sums = dict.fromkeys((m.name for m in wanted), 0.0)
    with torch.no_grad():
        for batch in prompts.batches(batch_size):
            logits = loaded.bridge(batch.tokens)
            for metric in wanted:
                sums[metric.name] += float(metric_values(logits, batch, metric).sum())
    return {name: total / len(prompts) for name, total in sums.items()}

"""The clean run of a dataset: one batched forward, the mean of every spec metric,
and, read from that same forward, the attention summaries the spec's attention
analyses on the dataset ask for."""
from __future__ import annotations

import torch
from circ.compiler import ir


def clean_run(loaded, prompts, metrics: tuple[ir.Metric, ...], batch_size: int,
              queries: tuple[ir.Position, ...] = ()) -> tuple[dict, dict]:
    """({metric name: mean over prompts}, {str(query): AttentionSums of every head}).

    The metrics are those a clean run defines (KL to the clean run is 0 by definition
    and normalised metrics need a corrupted run, so both are left out), on the
    datasets that have the position each reads (the checker makes sure every analysis
    uses a metric only there) and, for a metric of one answer token, whose answers are
    one token each (an analysis that uses it on other prompts says so itself)."""
    from circ.runtime.analyses.attention import AttentionSums
    from circ.runtime.analyses.common import run_hooked
    from circ.runtime.analyses.metrics import metric_values, reads_one_token

    wanted = [m for m in metrics if m.kind != "kl" and not m.normalized
              and (m.position.kind != "named" or m.position.name in prompts.marks) and reads_one_token(m, prompts)]
    sums = dict.fromkeys((m.name for m in wanted), 0.0)
    attention = {str(q): AttentionSums(q, prompts, loaded.tokenizer) for q in queries}
    layers = range(loaded.shape.n_layers)
    with torch.no_grad():
        for batch in prompts.batches(batch_size):
            hooks = [hook for recorder in attention.values() for hook in recorder.hooks(batch, layers)]
            logits = run_hooked(loaded.bridge, batch.tokens, hooks) if hooks else loaded.bridge(batch.tokens)
            for metric in wanted:
                sums[metric.name] += float(metric_values(logits, batch, metric).sum())
    return {name: total / len(prompts) for name, total in sums.items()}, attention

"""Exact activation patching without a full forward pass per node.

Computes the same per-prompt values as the hook kernel of `exact_patching.py`
(summarised by `common.patch_values`), where the patched run writes the source's activation into one node.
It shares, per batch, one cached clean run and one source run between every node,
and runs each patched variant from the patch onward only:

- the patch changes the residual stream by `delta` at one point, everything before
  that point is the clean run: a head's z changes the stream entering its layer's MLP
  by (z' - z)[head] @ W_O[head] (the other heads' outputs and the attention pattern
  are untouched); a q/k/v input changes it by the same with z' recomputed from the
  patched input for that head alone (for every head of its group, for a grouped key
  or value: they share the slot the hook patches); an MLP, EMBED or a residual node change the
  stream entering the next block by their own change. The variant then resumes from
  the cached stream plus `delta` (`Resumer.run`);
- positions before the first real token where `delta` is nonzero in any prompt of the
  batch are the clean run's (the model is causal) and are not recomputed; a node whose
  `delta` is zero everywhere has an effect of exactly 0;
- a metric read at the last position needs the last block and the unembedding only
  there;
- several variants are stacked along the batch axis into one forward.

The direct effect holds every later attention and MLP output at its clean value, so
the final residual stream is the clean one plus `delta` and no block runs at all:
only the final LayerNorm and the unembedding, at the read positions. The variants of
all nodes are stacked together (not one resume point at a time), and a logit
difference is read as one direction per prompt, final_norm(stream) . (W_U[:, answer]
- mean W_U[:, wrong]) + the same difference of b_U, instead of every logit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from circ.compiler import ir
from circ.runtime.analyses.common import (
    head_slot,
    mlp_out_hook,
    node_site,
    part_hook,
    patch_values,
    progress,
    replaced,
    run_cached,
    z_hook,
)
from circ.runtime.analyses.metrics import (
    logit_diff_direction,
    metric_values,
    position_mean,
    reads_last_only,
)
from circ.runtime.analyses.node_stats import PerPrompt
from circ.runtime.analyses.resumed_blocks import Resumer, mix

ELEMENTS_PER_FORWARD = 1 << 24  # cap on the widest activation of one stacked forward (floats)


@dataclass
class ResidualChange:
    """A node's patch seen in the residual stream: `delta` [batch, seq, d_model] added
    where the stream enters block `layer`'s attention (stage "attn") or its MLP
    ("mlp"); layer == n_layers is the final stream."""

    node: ir.Node
    layer: int
    stage: str
    delta: torch.Tensor


def clean_hooks(nodes, n_layers: int) -> list[str]:
    """The clean activations fast patching reads for `nodes`."""
    first = 0 if any(n.kind == "embed" for n in nodes) else min((n.layer for n in nodes), default=0)
    names = {f"blocks.{n_layers - 1}.hook_resid_post"}
    for layer in range(first, n_layers):
        names |= {f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.hook_resid_mid",
                  part_hook(layer, "k"), part_hook(layer, "v")}
    for node in nodes:
        if node.kind == "head":
            names.add(z_hook(node.layer))
        elif node.kind == "head_input":
            names |= {z_hook(node.layer), *(part_hook(node.layer, p) for p in "qkv")}
        elif node.kind == "mlp":
            names.add(mlp_out_hook(node.layer))
    return sorted(names)


def resume_point(node: ir.Node) -> tuple[int, str]:
    """(layer, stage) where a patch of `node` first changes the residual stream."""
    if node.kind in ("head", "head_input"):
        return node.layer, "mlp"
    if node.kind == "mlp":
        return node.layer + 1, "attn"
    return (0 if node.kind == "embed" else node.layer), "attn"


def residual_change(node: ir.Node, clean: dict, fetched: dict, mask, resumer: Resumer,
                    shape: ir.Shape) -> ResidualChange:
    """Where and by how much patching `node` changes the residual stream."""
    layer, stage = resume_point(node)
    if node.kind == "head":
        z_new, z_old = head_output(node, node.head, clean, fetched, mask, resumer)
        return ResidualChange(node, layer, stage, (z_new - z_old) @ resumer.W_O[node.layer, node.head])
    if node.kind == "head_input":
        delta = 0
        for head in heads_reading(node, resumer):
            z_new, z_old = head_output(node, head, clean, fetched, mask, resumer)
            delta = delta + (z_new - z_old) @ resumer.W_O[node.layer, head]
        return ResidualChange(node, layer, stage, delta)
    old = clean[node_site(node, shape).hook]
    new = replaced(old, fetched[node_site(node, shape).hook], None, mask, resumer.n_heads)
    return ResidualChange(node, layer, stage, new - old)


def heads_reading(node: ir.Node, resumer: Resumer) -> range:
    """The heads whose output a patch of a q/k/v input changes: the node's own head for
    a query, every head of its group for grouped keys or values (they share one slot,
    as the hook at `hook_k` / `hook_v` holds it)."""
    group = resumer.n_heads // resumer.n_kv_heads
    if node.part == "q" or group == 1:
        return range(node.head, node.head + 1)
    first = node.head // group * group
    return range(first, first + group)


def head_output(node: ir.Node, head: int, clean: dict, fetched: dict, mask, resumer: Resumer):
    """(patched z, clean z) of `head`, [batch, seq, d_head]. For a q/k/v input both are
    recomputed from the cached q, k and v, so that an unchanged input gives an exactly
    unchanged z."""
    layer = node.layer
    if node.kind == "head":
        z = clean[z_hook(layer)]
        return replaced(z, fetched[z_hook(layer)], head, mask, resumer.n_heads)[:, :, head], z[:, :, head]
    parts = {p: head_part(clean[part_hook(layer, p)], head, resumer.n_heads) for p in "qkv"}
    patched = dict(parts)
    full = clean[part_hook(layer, node.part)]
    source = head_part(fetched[part_hook(layer, node.part)].expand_as(full), head, resumer.n_heads)
    patched[node.part] = replaced(parts[node.part], source, None, mask, 1)
    return _one_head(resumer, patched), _one_head(resumer, parts)


def head_part(activation: torch.Tensor, head: int, n_heads: int) -> torch.Tensor:
    """The slot [batch, seq, 1, d_head] of a q, k or v activation that `head` reads."""
    slot = head_slot(activation, head, n_heads)
    return activation[:, :, slot:slot + 1]


def _one_head(resumer: Resumer, parts: dict) -> torch.Tensor:
    q, k, v = parts["q"], parts["k"], parts["v"]
    positions = torch.arange(q.shape[1], device=q.device).expand(q.shape[0], -1)
    return mix(resumer.pattern(q, k, positions), v)[:, :, 0]


def fast_patch(loaded, resumer: Resumer, prompts, nodes, metric: ir.Metric, source, *, effect: str,
               position: ir.Position, batch_size: int, show_progress: bool) -> dict:
    """The values of `patching.patch` (method exact), computed as described above."""
    n_layers = resumer.n_layers
    sites = sorted({node_site(node, loaded.shape).hook for node in nodes})
    per_prompt = PerPrompt()
    groups: dict[tuple[int, str], list[ir.Node]] = {}
    for node in nodes:
        groups.setdefault(resume_point(node), []).append(node)
    groups = list(groups.values())
    with progress(len(prompts) * len(nodes), f"patch ({effect})", show_progress) as bar:
        for batch in prompts.batches(batch_size):
            clean_logits, clean = run_cached(loaded.bridge, batch.tokens, clean_hooks(nodes, n_layers))
            fetched = source.fetch(batch, sites)
            scorer = _Scorer(resumer, batch, metric, clean_logits, clean)
            per_prompt.add("clean", scorer.clean_values)
            if fetched.logits is not None:
                per_prompt.add("source", metric_values(fetched.logits, batch, metric, clean_logits=clean_logits))
            mask = None if position.kind == "all" else batch.position_mask(position)
            for group in groups:  # the changes of one group at a time, to bound memory
                with torch.no_grad():
                    changes = [residual_change(node, clean, fetched.activations, mask, resumer, loaded.shape)
                               for node in group]
                    scored = scorer.direct(changes) if effect == "direct" else scorer.total(changes)
                for node, values in scored.items():
                    per_prompt.add(node, values)
                bar.update(len(batch) * len(group))
            with torch.no_grad():
                for node, values in scorer.flush().items():  # the direct variants still stacked
                    per_prompt.add(node, values)
    return patch_values({node: per_prompt.of(node) for node in nodes}, per_prompt.of("clean"),
                        per_prompt.of("source") if source.runs_model else None, metric, source.runs_model)


class _Scorer:
    """Per batch: the metric of patched variants, from their residual changes."""

    def __init__(self, resumer: Resumer, batch, metric: ir.Metric, clean_logits, clean: dict):
        self.resumer, self.batch, self.metric, self.clean = resumer, batch, metric, clean
        n_layers = resumer.n_layers
        self.final = clean[f"blocks.{n_layers - 1}.hook_resid_post"]
        self.real = batch.real_mask().to(self.final.device)
        if reads_last_only(metric):
            self.read = batch.last.to(self.final.device)[:, None]
            self.view = last_token_view(batch)
            self.clean_logits = clean_logits.gather(1, self.read[..., None].expand(-1, -1, clean_logits.shape[-1]))
        else:
            self.read, self.view, self.clean_logits = None, batch, clean_logits
        self.clean_values = metric_values(self.clean_logits, self.view, metric, clean_logits=self.clean_logits)
        self.final_read = self._at_read(self.final)
        self.pending: list[tuple[ir.Node, torch.Tensor]] = []  # direct variants not yet scored
        unembedding = resumer.unembedding if metric.kind == "logit_diff" else None
        self.direction = None if unembedding is None else logit_diff_direction(*unembedding, batch)

    def direct(self, changes: list[ResidualChange]) -> dict:
        """Per-prompt metric(clean final stream + delta) [batch]: for unchanged
        streams at once, for the others whenever enough are pending to fill a stack
        (the rest by `flush`)."""
        out = {}
        for change in changes:
            if self._changed(change.delta).any():
                self.pending.append((change.node, self.final_read + self._at_read(change.delta)))
            else:
                out[change.node] = self.clean_values
        if self.pending:
            final = self.pending[0][1]
            columns = int(final.shape[-1]) if self.direction is not None else int(self.resumer.bridge.cfg.d_vocab)
            per_forward = max(1, ELEMENTS_PER_FORWARD // (final.shape[0] * final.shape[1] * columns))
            while len(self.pending) >= per_forward:
                out.update(self._direct_scores(self.pending[:per_forward]))
                del self.pending[:per_forward]
        return out

    def flush(self) -> dict:
        """The per-prompt metrics of the direct variants still pending."""
        out = self._direct_scores(self.pending) if self.pending else {}
        self.pending = []
        return out

    def _direct_scores(self, chunk: list[tuple[ir.Node, torch.Tensor]]) -> dict:
        finals = torch.cat([final for _, final in chunk])  # [n * batch, read, d_model]
        if self.direction is None:
            logits = self.resumer.logits(finals).split(len(self.batch))
            return {node: self._metric(part) for (node, _), part in zip(chunk, logits)}
        direction, offset = self.direction
        normed = self.resumer.final_norm(finals).float()
        normed = normed.reshape(len(chunk), len(self.batch), *normed.shape[1:])
        per_position = torch.einsum("nbrd,bd->nbr", normed, direction.float().to(normed.device))
        per_position = per_position + offset.float().to(normed.device)[None, :, None]
        return {node: position_mean(part, self.view, self.metric.position)
                for (node, _), part in zip(chunk, per_position)}

    def total(self, changes: list[ResidualChange]) -> dict:
        """Per-prompt metrics [batch] of each variant, resumed from its change
        (all changes resume at the same point)."""
        out, pending = {}, []
        for change in changes:
            changed = self._changed(change.delta)
            if changed.any():
                pending.append((int(torch.where(changed.any(0))[0][0]), change))
            else:
                out[change.node] = self.clean_values
        pending.sort(key=lambda item: item[0])
        for chunk in self._chunks(pending):
            out.update(self._resume(chunk[0][1].layer, chunk[0][1].stage, chunk))
        return out

    def _at_read(self, x: torch.Tensor) -> torch.Tensor:
        """x [batch, seq, d] at the read positions (all of them when the metric reads every one)."""
        if self.read is None:
            return x
        return x.gather(1, self.read[..., None].expand(-1, -1, x.shape[-1]))

    def _changed(self, delta: torch.Tensor) -> torch.Tensor:
        return (delta != 0).any(-1) & self.real

    def _chunks(self, group):
        """Runs of variants small enough to stack into one forward."""
        cfg = self.resumer.bridge.cfg
        width = self.batch.tokens.shape[1]
        widest = max(4 * int(cfg.d_model), int(getattr(cfg, "d_mlp", 0) or 0))
        chunk = []
        for item in group:
            start = min(item[0], chunk[0][0]) if chunk else item[0]
            rows = len(self.batch) * (len(chunk) + 1)
            read_width = width - start if self.read is None else 1
            elements = max(rows * (width - start) * widest, rows * read_width * int(cfg.d_vocab))
            if chunk and elements > ELEMENTS_PER_FORWARD:
                yield chunk
                chunk = []
            chunk.append(item)
        if chunk:
            yield chunk

    def _resume(self, layer: int, stage: str, chunk) -> dict:
        resumer, n = self.resumer, len(chunk)
        start = min(first for first, _ in chunk)
        if layer == resumer.n_layers:
            final = torch.cat([self.final[:, start:] + c.delta[:, start:] for _, c in chunk])
            if self.read is not None:
                index = (self.read.repeat(n, 1) - start).clamp(min=0)
                final = final.gather(1, index[..., None].expand(-1, -1, final.shape[-1]))
        else:
            point = f"blocks.{layer}.hook_resid_pre" if stage == "attn" else f"blocks.{layer}.hook_resid_mid"
            base = self.clean[point][:, start:]
            resid = torch.cat([base + c.delta[:, start:] for _, c in chunk])
            prefix = None
            if start > 0:
                prefix = {l: (self.clean[f"blocks.{l}.attn.hook_k"][:, :start].repeat(n, 1, 1, 1),
                              self.clean[f"blocks.{l}.attn.hook_v"][:, :start].repeat(n, 1, 1, 1))
                          for l in range(layer, resumer.n_layers)}
            read = None if self.read is None else self.read.repeat(n, 1)
            final = resumer.run(resid, layer, stage, start=start, prefix=prefix, read=read)
        if self.read is not None:
            untouched = (self.read < start).repeat(n, 1)[..., None]
            final = torch.where(untouched, self._at_read(self.final).repeat(n, 1, 1), final)
        logits = resumer.logits(final).split(len(self.batch))
        out = {}
        for (_, change), part in zip(chunk, logits):
            if self.read is None and start > 0:
                part = torch.cat([self.clean_logits[:, :start], part], dim=1)
            out[change.node] = self._metric(part)
        return out

    def _metric(self, logits: torch.Tensor) -> torch.Tensor:
        return metric_values(logits, self.view, self.metric, clean_logits=self.clean_logits)


def last_token_view(batch):
    """The batch cut down to each prompt's last token, for metrics read there only."""
    last = batch.last[:, None]
    return replace(batch, tokens=batch.tokens.gather(1, last), lengths=torch.ones_like(batch.lengths),
                   corrupt=None, marks={})


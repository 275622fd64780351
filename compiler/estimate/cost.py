"""What a plan will cost before anything runs: forward and backward passes, FLOPs and
the activations held at once, per op that runs the model. Pure arithmetic on the
plan, a `CostShape` and the token length of every prompt (no weights, no torch).

The counts follow the runtime's kernels, batch by batch (batches are consecutive
slices of `batch_size` prompts, padded to their longest prompt):

  run:D          1 forward per prompt (the clean run and its metrics); in it, for each
                 query position the dataset's attention analyses ask for, every
                 head's query row of its pattern
  mean:D         1 forward per prompt for each consumer that asks for hooks not yet averaged
  attribute      1 forward per prompt, and at each position the metric reads, every
                 head's output through W_O and every part (EMBED, heads, MLPs, biases)
                 onto the logit-difference direction; with at=each once more at every
                 position (or each listed one)
  attention      the sums its dataset's clean run gathered, and 1 forward for each of
                 the explorer's first `explore` prompts; with a score, 1 forward per
                 prompt and every row of each head's pattern
  patch exact    1 clean + s source + 1 per node            (s = 1 for dataset, corrupt
  patch attrib.  K gradient runs + s source + `verify`       and resample sources, which
                 exact, and K backwards per prompt          run the model; 0 for mean, zero;
                 (K = steps, the first the clean run)       K = 1 without steps)
  patch at=each  a patch exact, once per position of the longest prompt (or listed)
  path_patch     1 clean + s source + 1 per sender with an edge + 1 per edge
  faithfulness   1 clean + s source + 2 ablated runs
  circuit grown  discover(A, faithfulness=F): 1 clean + s source + 1 all-ablated run
                 + one run per size 1, 2, 4, ... and N, then per halving step
                 (at most log2 N) 1 clean + s source + 2 runs; counted at that bound
  curve          1 clean + s source + 1 all-ablated run + one run per nonempty size
                 (min(points, N), N the heads and MLPs or edges ranked; or the listed
                 sizes, the largest N) and order
                 (the ranking and `random` random ones)
  ablate         1 clean + s source + 1 run with the nodes ablated together
  subspace       1 fit forward per fit prompt, then per head, per part group and per
                 scored dataset: 2 + (number of ranks) forwards per prompt

On models whose patched runs circ resumes from the patch point (`CostShape.resumable`,
GPT-2-like), a node's exact patched run is counted as resumed: it computes only the
blocks after the patch enters the residual stream (the last block and the unembedding
at the metric's positions only), and for a direct effect only the final norm and the
unembedding there: the whole vocabulary, or for a logit difference one direction per
prompt (answer minus mean wrong column). Each node's change to the stream is counted
too: a head's (or a q/k/v input's recomputed head's) output change through W_O at
every position.

A forward of one prompt padded to width T costs 2 * params * T + 4 * layers * heads *
d_head * T^2 FLOPs (see `CostShape.forward_flops`); a backward costs twice its forward.
Node sets chosen at run time (`top`, `best`, circuits) are counted at their largest,
and the op is marked as an upper bound.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from circ.compiler import ir
from circ.compiler.estimate.cost_shapes import CostShape, EstimateError
from circ.compiler.plan.output import ordered_ids

DTYPE_BYTES = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "half": 2, "bfloat16": 2, "bf16": 2,
               "float64": 8}
RUN_SOURCES = ("dataset", "corrupt", "resample")
WHOLE_ANSWER = ("answer_logprob",)  # metrics read at every token of the answer: up to every position


@dataclass(frozen=True)
class OpCost:
    """The model work of one op. `peak_bytes`: activations and logits held at once
    for the largest batch; `bounded`: the counts are upper bounds."""

    op: str
    what: str
    forwards: int
    backwards: int
    calls: int
    flops: int
    peak_bytes: int
    bounded: bool = False
    resumed: int = 0  # of the forwards, patched runs resumed from the patch point (not full passes)


@dataclass(frozen=True)
class Estimate:
    spec: str
    shape: CostShape
    dtype: str
    batch_size: int
    ops: tuple[OpCost, ...]

    @property
    def forwards(self) -> int:
        return sum(op.forwards for op in self.ops)

    @property
    def backwards(self) -> int:
        return sum(op.backwards for op in self.ops)

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self.ops)

    @property
    def peak_bytes(self) -> int:
        return max((op.peak_bytes for op in self.ops), default=0)

    @property
    def weight_bytes(self) -> int:
        return self.shape.params * DTYPE_BYTES[self.dtype]

    @property
    def bounded(self) -> bool:
        return any(op.bounded for op in self.ops)


def estimate_plan(spec: ir.Spec, graph, shape: CostShape, lengths: Mapping[str, Sequence[int]],
                  batch_size: int = 32, starts: Mapping[tuple[str, str], Sequence[int]] | None = None) -> Estimate:
    """The cost of every op of `graph` (spec's plan) that runs the model.
    `lengths[name]`: the token count of each prompt of dataset `name` (BOS included).
    `starts[(target, source)]`: for each prompt of dataset `target`, the first token
    where its patch source (a dataset name, or "corrupt") differs from it; resumed
    patched runs compute from there on (from 0 where unknown)."""
    if batch_size < 1:
        raise EstimateError(f"batch size must be at least 1, got {batch_size}")
    if spec.model.dtype not in DTYPE_BYTES:
        raise EstimateError(f"unknown dtype `{spec.model.dtype}`")
    missing = sorted({d.name for d in spec.datasets} - set(lengths))
    if missing:
        raise EstimateError(f"no prompt lengths for dataset(s) {', '.join(missing)}")
    costs = _Costs(spec, shape, lengths, batch_size, DTYPE_BYTES[spec.model.dtype], starts or {})
    ops = []
    for op_id in ordered_ids(graph):
        op = graph.nodes[op_id]["op"]
        cost = costs.of(op, graph)
        if cost is not None:
            ops.append(cost)
    return Estimate(spec.name, shape, spec.model.dtype, batch_size, tuple(ops))


class _Costs:
    """The cost of each op kind, from the spec, the shape and the prompts' tokens."""

    def __init__(self, spec, shape: CostShape, lengths, batch_size: int, dtype_bytes: int, starts):
        self.spec, self.shape, self.batch_size, self.bytes = spec, shape, batch_size, dtype_bytes
        self.lengths = {name: tuple(int(n) for n in values) for name, values in lengths.items()}
        self.starts = {key: tuple(int(n) for n in values) for key, values in starts.items()}
        self.averaged: dict[str, set] = {}

    # ------------------------------------------------------------------ dispatch
    def of(self, op, graph) -> OpCost | None:
        if op.kind == "cache_run":
            name = op.arg("dataset")
            queries = len({str(a.option("query", ir.LAST)) for a in self.spec.analyses
                           if a.kind == "attention" and a.dataset == name})
            rows = queries * self.shape.n_layers * self.shape.n_heads
            what = (f"clean run, attention of every head at {queries} {'query' if queries == 1 else 'queries'}"
                    if queries else "clean run")
            return self._cost(op.id, what, name, 1, extra=0, logits=1, pattern_layers=1 if queries else 0,
                              per_prompt=lambda width: rows * self.shape.pattern_row_flops(width))
        if op.kind == "mean":
            return self._mean(op, graph)
        if op.kind == "analysis":
            return self._analysis(op.id, self.spec.analysis(op.arg("name")))
        if op.kind == "circuit":
            return self._growth(op.id, self.spec.circuit(op.arg("name")).nodes)
        return None

    # ------------------------------------------------------------------ arithmetic
    def _batches(self, name: str, starts: tuple | None = None) -> list[tuple[int, int, int]]:
        """(prompts, padded width, first position a patch changes) of each batch of
        dataset `name`, given that position for each prompt (`starts`, default 0)."""
        values, size = self.lengths[name], self.batch_size
        starts = starts or (0,) * len(values)
        return [(len(values[i:i + size]), max(values[i:i + size]), min(starts[i:i + size]))
                for i in range(0, len(values), size)]

    def _explorer(self, op_id: str, what: str, a: ir.Analysis, bounded: bool) -> OpCost:
        """An attention analysis: its summaries come from the clean run; only the
        explorer's first `explore` prompts run again, in batches of their own."""
        values = self.lengths[a.dataset][:a.option("explore", 8)]
        chunks = [values[i:i + self.batch_size] for i in range(0, len(values), self.batch_size)]
        flops = sum(len(chunk) * self.shape.forward_flops(max(chunk)) for chunk in chunks)
        width = max(values, default=0)
        held = self.shape.n_layers * self.shape.n_heads * width * width + self.shape.d_vocab * width
        return OpCost(op_id, what, len(values), 0, len(chunks), flops,
                      held * min(self.batch_size, len(values)) * self.bytes, bounded)

    def _largest(self, name: str) -> tuple[int, int]:
        values = self.lengths[name]
        return (min(self.batch_size, len(values)), max(values)) if values else (0, 0)

    def _cost(self, op_id: str, what: str, name: str, forwards: int, *, backwards: int = 0, extra: int,
              logits: int, bounded: bool = False, pattern_layers: int = 0, resumed=(),
              reads: int | None = None, starts: tuple | None = None, columns: int | None = None,
              per_prompt=None) -> OpCost:
        """`forwards` full passes and `backwards` per prompt of `name`, plus one resumed
        pass per (layer, stage) entry point in `resumed` that reads `reads` positions
        (None: all) from the first position the patch changes (`starts`, per prompt)
        and unembeds `columns` logits there, plus `per_prompt(width)` FLOPs per prompt
        padded to `width` (the kernel's own products); `extra` elements per token held
        besides `logits` logit tensors and attention patterns of `pattern_layers`."""
        batches = self._batches(name, starts)
        one_pass = sum(b * self.shape.forward_flops(width) for b, width, _ in batches)
        partial = sum(b * self.shape.resumed_flops(width, layer, stage, reads, start, columns)
                      for layer, stage in resumed for b, width, start in batches)
        if per_prompt is not None:
            partial += sum(b * per_prompt(width) for b, width, _ in batches)
        b, width = self._largest(name)
        per_token = extra + logits * self.shape.d_vocab + pattern_layers * self.shape.n_heads * width
        n = len(self.lengths[name])
        return OpCost(op_id, what, (forwards + len(resumed)) * n, backwards * n, (forwards + backwards) * len(batches),
                      (forwards + 2 * backwards) * one_pass + partial, per_token * b * width * self.bytes, bounded,
                      len(resumed) * n)

    # ------------------------------------------------------------------ hooks and nodes
    def _site_width(self, node: ir.Node) -> tuple[str, int]:
        """The hook a node is patched at and its elements per token."""
        s = self.shape
        if node.kind == "head":
            return f"z{node.layer}", s.n_heads * s.d_head
        if node.kind == "head_input":
            heads = s.n_heads if node.part == "q" else s.n_kv_heads
            return f"{node.part}{node.layer}", heads * s.d_head
        if node.kind == "mlp":
            return f"mlp{node.layer}", s.d_model
        return ("embed", s.d_model) if node.kind == "embed" else (f"resid{node.layer}", s.d_model)

    def _sites(self, nodes) -> dict[str, int]:
        return dict(self._site_width(node) for node in nodes)

    def _all_outputs(self) -> dict[str, int]:
        """Every head's z and every MLP output."""
        s = self.shape
        sites = {f"z{layer}": s.n_heads * s.d_head for layer in range(s.n_layers)}
        if s.has_mlp:
            sites.update({f"mlp{layer}": s.d_model for layer in range(s.n_layers)})
        return sites

    def _frozen(self) -> int:
        """Elements per token of every attention and MLP output (held for direct effects)."""
        return self.shape.n_layers * self.shape.d_model * (2 if self.shape.has_mlp else 1)

    def _nodes(self, nodes: ir.NodeSet) -> tuple[list[ir.Node], int, bool]:
        """(nodes it may hold, how many it holds at most, whether that is a bound)."""
        if isinstance(nodes, ir.NodeList):
            if nodes.unexpanded is not None and not nodes.nodes:
                raise EstimateError(f"`{nodes.unexpanded}` needs the model's shape: pass --model-shape")
            return list(nodes.nodes), len(nodes.nodes), False
        if isinstance(nodes, ir.Combine):
            left, left_count, _ = self._nodes(nodes.left)
            if nodes.op in ("-", "&"):
                return left, left_count, True
            right, right_count, _ = self._nodes(nodes.right)
            pool = list(dict.fromkeys(left + right))
            return pool, min(left_count + right_count, len(pool)), True
        names = {c.name for c in self.spec.circuits}
        upstream = (self.spec.circuit(nodes.analysis).nodes if nodes.analysis in names
                    else self.spec.analysis(nodes.analysis).nodes)
        pool, count, _ = self._nodes(upstream)
        if nodes.best:
            count = min(1, count)
        elif nodes.top is not None:
            count = min(2 * nodes.top if nodes.edges else nodes.top, count)
        return pool, count, True

    # ------------------------------------------------------------------ ops
    def _mean(self, op, graph) -> OpCost:
        name = op.arg("dataset")
        passes, bounded, widths = 0, False, {}
        order = {op_id: number for number, op_id in enumerate(ordered_ids(graph))}
        for consumer in sorted(graph.successors(op.id), key=order.get):
            consumer_op = graph.nodes[consumer]["op"]
            if consumer_op.kind == "circuit":  # grown to a faithfulness: every output ablated
                kind = "faithfulness"
            else:
                analysis = self.spec.analysis(consumer_op.arg("name"))
                kind = analysis.kind
            if kind not in ("patch", "path_patch", "faithfulness", "curve", "ablate"):
                continue  # subspace ablates to its own fitted mean
            if kind in ("faithfulness", "curve"):
                wanted = self._all_outputs()
            else:
                pool, _, bounded_here = self._nodes(analysis.nodes)
                wanted = self._sites(pool)
                bounded = bounded or bounded_here
            if not set(wanted) <= self.averaged.setdefault(name, set()):
                passes += 1
                self.averaged[name] |= set(wanted)
            widths.update(wanted)
        return self._cost(op.id, f"mean activations, {len(widths)} hooks", name, passes,
                          extra=sum(widths.values()), logits=1, bounded=bounded)

    def _analysis(self, op_id: str, a: ir.Analysis) -> OpCost:
        runs = 1 if a.source is not None and a.source.kind in RUN_SOURCES else 0
        if a.kind in ("attribute", "attention"):
            pool, count, bounded = self._nodes(a.nodes)
            if a.kind == "attention":
                if a.option("score"):
                    layers = len({n.layer for n in pool if n.kind == "head"})
                    heads = min(count, sum(1 for n in pool if n.kind == "head"))
                    return self._cost(op_id, f"{a.option('score')} scores of {'<=' if bounded else ''}{count} heads",
                                      a.dataset, 1, extra=0, logits=1, pattern_layers=layers,
                                      per_prompt=lambda width: heads * width * self.shape.pattern_row_flops(width))
                return self._explorer(op_id, f"attention of {'<=' if bounded else ''}{count} heads, from the clean run",
                                      a, bounded)
            extra = self.shape.d_model + sum(self._all_outputs().values()) + 1
            reads = _positions_read(self.spec.metric(a.metric).position)
            at = a.option("position")  # each position (or each listed one) projected once more
            return self._cost(op_id, f"attribution of {count} nodes", a.dataset, 1, extra=extra, logits=1,
                              bounded=bounded,
                              per_prompt=lambda width: self.shape.attribution_flops(reads or width) + (
                                  self.shape.attribution_flops(len(at.items) or width) if at else 0))
        if a.kind == "patch" and a.option("position", ir.ALL).kind == "each":
            return self._each_position(op_id, a, runs)
        if a.kind == "patch":
            return self._patch(op_id, a, runs)
        if a.kind == "path_patch":
            return self._path_patch(op_id, a, runs)
        if a.kind == "edges" and a.option("method") in ("exact", "acdc"):
            pool, count, bounded = self._nodes(a.nodes)
            edges = graph_edge_count(pool)
            what = "exact edge scores" if a.option("method") == "exact" else "ACDC pruning (at most)"
            return self._cost(op_id, f"{what}: {edges} edges among {count} nodes, one pass each", a.dataset,
                              1 + edges + runs, extra=sum(self._sites(pool).values()), logits=2 + runs,
                              bounded=bounded or a.option("method") == "acdc")
        if a.kind == "edges":
            pool, count, bounded = self._nodes(a.nodes)
            steps = int(a.option("steps", 1) or 1) if a.option("method") == "eap_ig" else 1
            return self._cost(op_id, f"edge attribution among {count} nodes"
                              + (f", {steps} steps" if steps > 1 else ""), a.dataset, steps + runs,
                              backwards=steps, extra=sum(self._sites(pool).values()) + self._backward_elements(a.dataset),
                              logits=1 + runs, bounded=bounded)
        if a.kind == "faithfulness":
            extra = sum(self._all_outputs().values()) if runs else 0
            return self._cost(op_id, "faithfulness", a.dataset, 3 + runs, extra=extra, logits=3 + runs)
        if a.kind == "curve":
            ranked = self._ranked(a.nodes.analysis)
            orders = 1 + a.option("random", 5)
            listed = a.option("sizes")
            runs_per_order = (len({min(k, ranked) for k in listed} | {ranked}) if listed
                              else min(a.option("points", 10), ranked))
            extra = sum(self._all_outputs().values()) if runs else 0
            what = "edges" if self.spec.analysis(a.nodes.analysis).kind == "edges" else "nodes"
            return self._cost(op_id, f"faithfulness curve, {orders} orders of {ranked} {what}", a.dataset,
                              2 + runs + orders * runs_per_order, extra=extra,
                              logits=2 + runs + orders * runs_per_order)
        if a.kind == "ablate":
            pool, count, bounded = self._nodes(a.nodes)
            return self._cost(op_id, f"ablation of {'<=' if bounded else ''}{count} nodes together", a.dataset,
                              2 + runs, extra=sum(self._sites(pool).values()), logits=2 + runs, bounded=bounded)
        if a.kind == "subspace":
            return self._subspace(op_id, a)
        raise EstimateError(f"no cost model for analysis kind `{a.kind}`")

    def _ranked(self, name: str) -> int:
        """How many items a curve or a growth ranks from analysis `name`: every edge among
        an edges analysis's nodes and into the logits (a head's q, k, v apart), else
        its heads and MLPs."""
        analysis = self.spec.analysis(name)
        pool, _, _ = self._nodes(analysis.nodes)
        if analysis.kind != "edges":
            return sum(1 for node in pool if node.kind in ("head", "mlp"))
        receivers = [ir.Node(n.layer, "head_input", n.head, part) for n in pool if n.kind == "head"
                     for part in "qkv"] + [n for n in pool if n.kind == "mlp"]
        return sum(1 for s in pool for r in receivers if _precedes(s, r)) + len(pool)

    def _growth(self, op_id: str, nodes: ir.NodeSet) -> OpCost | None:
        """discover(A, faithfulness=F): a pass over sizes 1, 2, 4, ... and the whole
        ranking, then one pass per halving, each with a clean and an all-ablated run."""
        grown = [s for s in _selections(nodes) if s.grow is not None]
        if not grown:
            return None
        forwards, extra = 0, 0
        for select in grown:
            steps = self._ranked(select.analysis).bit_length()
            runs = 1 if select.grow.source.kind in RUN_SOURCES else 0
            forwards += (2 + runs + steps + 1) + steps * (3 + runs)
            extra = max(extra, sum(self._all_outputs().values()) if runs else 0)
        return self._cost(op_id, f"growth to faithfulness {grown[0].grow.target:g}", grown[0].grow.dataset,
                          forwards, extra=extra, logits=3, bounded=True)

    def _patch(self, op_id: str, a: ir.Analysis, runs: int) -> OpCost:
        pool, count, bounded = self._nodes(a.nodes)
        effect = a.option("effect", "total")
        held = sum(self._sites(pool).values()) + (self._frozen() if effect == "direct" else 0)
        if a.option("method", "exact") == "attribution":
            verify = min(int(a.option("verify", 0) or 0), count)
            steps = int(a.option("steps", 1) or 1)
            return self._cost(op_id, f"attribution patching of {count} nodes, {verify} verified"
                              + (f", {steps} steps" if steps > 1 else ""), a.dataset,
                              steps + runs + verify, backwards=steps, extra=held + self._backward_elements(a.dataset),
                              logits=2 + runs, bounded=bounded)
        if not self.shape.resumable:
            return self._cost(op_id, f"patch {count} nodes ({effect})", a.dataset, 1 + runs + count, extra=held,
                              logits=2 + runs, bounded=bounded)
        # the fast kernel: a cached clean run, then each node's change to the residual
        # stream, resumed where it enters (for a node set chosen at run time: the `count`
        # costliest, earliest entry points and costliest changes)
        entries = sorted(_entry(node) for node in pool)[:count]
        metric = self.spec.metric(a.metric)
        starts, columns = self._patch_starts(a), None
        if effect == "direct":  # later outputs are held: only the final norm and unembedding run,
            entries = [(self.shape.n_layers, "attn")] * count  # at every read position once anything changes
            starts = tuple(0 if start < n else n for start, n in zip(starts, self.lengths[a.dataset]))
            columns = 1 if metric.kind == "logit_diff" else None
        s = self.shape
        resume_cache = s.n_layers * (2 * s.d_model + 2 * s.n_kv_heads * s.d_head)
        reads = 1 if metric.position.kind == "last" and metric.kind not in WHOLE_ANSWER else None

        def changes(width: int) -> int:
            return sum(sorted((s.change_flops(node.kind, width) for node in pool), reverse=True)[:count])

        return self._cost(op_id, f"patch {count} nodes ({effect}, resumed)", a.dataset, 1 + runs,
                          extra=held + resume_cache, logits=2 + runs, bounded=bounded, resumed=entries,
                          reads=reads, starts=starts, columns=columns, per_prompt=changes)

    def _each_position(self, op_id: str, a: ir.Analysis, runs: int) -> OpCost:
        """patch(at=each): one patch at a single position per token of the longest
        prompt (or per listed position), each costed as a patch at all positions (an
        upper bound)."""
        one = self._patch(op_id, replace(a, options=tuple((k, ir.ALL if k == "position" else v)
                                                          for k, v in a.options)), runs)
        width = len(a.option("position").items) or max(self.lengths[a.dataset], default=1)
        return replace(one, what=f"{one.what} at each of {width} positions", forwards=one.forwards * width,
                       backwards=one.backwards * width, calls=one.calls * width, flops=one.flops * width,
                       resumed=one.resumed * width)

    def _patch_starts(self, a: ir.Analysis) -> tuple[int, ...]:
        """Per prompt, the first position a patch can change: where a dataset or
        corrupted source first differs from the prompt, and no earlier than the first
        patched position (`last` or a fixed index)."""
        lengths = self.lengths[a.dataset]
        source = {"corrupt": "corrupt", "dataset": a.source.dataset}.get(a.source.kind)
        differs = self.starts.get((a.dataset, source), (0,) * len(lengths))
        position = a.option("position", ir.ALL)
        if position.kind == "last":
            floor = [n - 1 for n in lengths]
        elif position.kind == "index":
            floor = [position.index if position.index >= 0 else n + position.index for n in lengths]
        else:
            floor = [0] * len(lengths)
        return tuple(max(d, f) for d, f in zip(differs, floor))

    def _backward_elements(self, name: str) -> int:
        """Elements per token autograd keeps for one backward pass (Korthikanti et al.
        2022 without dropout masks): per layer, attention 5 d_model + 2 heads * T,
        MLP d_model + 2 d_mlp (3 d_mlp gated), two norms 2 d_model."""
        s = self.shape
        _, width = self._largest(name)
        mlp = (s.d_model + (3 if s.gated_mlp else 2) * s.d_mlp) if s.has_mlp else 0
        return s.n_layers * (5 * s.d_model + 2 * s.n_heads * width + mlp + 2 * s.d_model)

    def _path_patch(self, op_id: str, a: ir.Analysis, runs: int) -> OpCost:
        senders, n_senders, bounded_s = self._nodes(a.nodes)
        receivers, n_receivers, bounded_r = self._nodes(a.receivers)
        bounded = bounded_s or bounded_r
        if bounded:
            edges, active = n_senders * n_receivers, n_senders
        else:
            pairs = [(s, r) for s in senders for r in receivers if _precedes(s, r)]
            edges, active = len(pairs), len({s for s, _ in pairs})
        widths = [self._receiver_width(r) for r in receivers]
        recorded = n_receivers * max(widths, default=0) if bounded else sum(widths)
        held = self._frozen() + sum(self._sites(senders).values()) + recorded
        return self._cost(op_id, f"path patch {edges} edges from {active} senders", a.dataset,
                          1 + runs + active + edges, extra=held, logits=2 + runs, bounded=bounded)

    def _receiver_width(self, receiver: ir.Node) -> int:
        s = self.shape
        if receiver.kind == "mlp":
            return s.d_model
        q, kv = s.n_heads * s.d_head, s.n_kv_heads * s.d_head
        if receiver.kind == "head":
            return q + 2 * kv
        return q if receiver.part == "q" else kv

    def _subspace(self, op_id: str, a: ir.Analysis) -> OpCost:
        pool, heads, bounded = self._nodes(a.nodes)
        parts = tuple(a.option("parts", ("q", "k", "v")))
        ranks = {r for r in a.option("ranks", (1, 2, 4, "full")) if r != "full"}
        groups = 1 + (len(parts) if len(parts) > 1 else 0)
        scored = list(dict.fromkeys([a.dataset, *a.option("eval", ())]))
        fit_hooks = sum(self._receiver_width(ir.Node(0, "head_input", 0, p)) for p in parts)
        fit = self._cost(op_id, "", a.dataset, 1, extra=fit_hooks * min(heads, self.shape.n_layers), logits=1)
        per_run = [self._cost(op_id, "", name, heads * groups * (2 + len(ranks)), extra=0, logits=2)
                   for name in scored]
        runs = [fit, *per_run]
        return OpCost(op_id, f"subspace of {heads} heads, {len(ranks)} ranks, {len(scored)} datasets",
                      sum(r.forwards for r in runs), 0, sum(r.calls for r in runs), sum(r.flops for r in runs),
                      max(r.peak_bytes for r in runs), bounded)


def _selections(nodes: ir.NodeSet) -> list[ir.Select]:
    if isinstance(nodes, ir.Combine):
        return _selections(nodes.left) + _selections(nodes.right)
    return [nodes] if isinstance(nodes, ir.Select) else []


def _positions_read(position: ir.Position) -> int | None:
    """Positions per prompt a metric reads: one, or None for up to every position."""
    return 1 if position.kind in ("last", "index") else None


def _entry(node: ir.Node) -> tuple[int, str]:
    """Where a node's patch enters the residual stream: (block, "attn" or "mlp")."""
    if node.kind in ("head", "head_input"):
        return node.layer, "mlp"
    if node.kind == "mlp":
        return node.layer + 1, "attn"
    return (0, "attn") if node.kind == "embed" else (node.layer, "attn")


def _precedes(sender: ir.Node, receiver: ir.Node) -> bool:
    """Whether an edge sender -> receiver exists (sequential attention then MLP)."""
    if sender.kind == "embed" or sender.layer < receiver.layer:
        return True
    return sender.layer == receiver.layer and sender.kind == "head" and receiver.kind == "mlp"


def graph_edge_count(nodes) -> int:
    """Edges among `nodes` as edges(method=exact|acdc) builds them: from EMBED, a head or
    an MLP to each later head's q, k and v, each later MLP (a layer's heads feed its own
    MLP) and LOGITS."""
    senders = [n for n in nodes if n.kind in ("embed", "head", "mlp")]

    def feeds(sender, receiver) -> bool:
        if sender.kind == "embed" or sender.layer < receiver.layer:
            return True
        return sender.layer == receiver.layer and sender.kind == "head" and receiver.kind == "mlp"

    inputs = sum(3 if r.kind == "head" else 1 for r in senders for s in senders
                 if r.kind != "embed" and feeds(s, r))
    return inputs + len(senders)

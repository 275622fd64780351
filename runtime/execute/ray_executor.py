"""Run a plan with its patching sweeps spread over a Ray cluster (`circ run --executor ray`).

Everything but exact activation patching, path patching, exact edge scores and the
faithfulness measurements of curves and growth runs as in `Executor`, on this machine
(ACDC too: each edge it tries depends on the ones before). A patch analysis's nodes,
a path patching analysis's senders (those with an edge to some receiver; each chunk
takes every receiver), or the senders of exact edge scores (along the residual stream;
each chunk scores their edges in the whole graph) are split, in canonical order, into
chunks; a pool of Ray actors (`PatchWorker`), each of which
loads the model once from the spec's model description (the model itself is never
sent), runs the analysis on one chunk at a time. What every chunk reads is put in
Ray's object store once and passed by reference: the spec, each tokenised dataset,
and the patch source's activations for every batch (computed here, once per
analysis). The chunks' entries are merged in chunk order into the entry the local
executor would write.

A curve's points (every prefix of the ranking and of each random order) and growth's
doubling sizes are measured together, independently of one another: those circuits are
split, in order, into chunks that the actors measure (each with its own clean and
all-ablated runs, which every chunk gives alike), and the per-circuit numbers are joined
in chunk order. Growth's bisection measures one size per step, each depending on the
last: it runs here.

A chunk whose actor dies (a lost node, an out-of-memory kill) is given to another
actor, and a fresh actor replaces the dead one; a chunk is tried at most
`MAX_ATTEMPTS` times. Errors raised by the analysis itself (bad nodes, a metric that
cannot be normalised) are raised here as they would be locally.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from circ.compiler import ir
from circ.runtime.execute.analysis_runner import ranking_measure
from circ.runtime.execute.executor import Executor, RunError

MAX_ATTEMPTS = 3
CHUNKS_PER_WORKER = 4
AGREEMENT = 1e-6  # chunks' shared numbers (baselines) must agree to this relative tolerance


@dataclass
class PrecomputedSource:
    """A patch source served from activations fetched in advance, batch by batch
    (keyed by the batch's first row), so that workers need not run it again."""

    batches: dict
    runs_model: bool

    def fetch(self, batch, hooks):
        from circ.runtime.analyses.patch_sources import SourceBatch

        stored = self.batches[int(batch.rows[0])]
        return SourceBatch({hook: stored.activations[hook] for hook in hooks}, stored.logits)


def distributable(analysis: ir.Analysis) -> bool:
    """Exact patching (independent patched runs per node), path patching and exact edge
    scores (per sender). ACDC is not: each removal it tries depends on every one before."""
    if analysis.kind == "edges":
        return analysis.option("method") == "exact"
    return analysis.kind == "path_patch" or (analysis.kind == "patch" and analysis.option("method", "exact") == "exact")


def chunked(nodes: list, count: int) -> list[list]:
    """`nodes` split into `count` consecutive chunks of near-equal size (none empty)."""
    count = max(1, min(count, len(nodes)))
    size, extra = divmod(len(nodes), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        chunks.append(nodes[start:end])
        start = end
    return chunks


def merge_entries(entries: list[dict]) -> dict:
    """One results entry from the chunks' entries: fields every chunk gives alike are
    kept; per-node tables (dicts that differ) are joined in chunk order."""
    merged = {}
    for key in entries[0]:
        values = [entry.get(key) for entry in entries]
        if all(_agree(value, values[0]) for value in values):
            merged[key] = values[0]
        elif all(isinstance(value, dict) for value in values):
            merged[key] = {k: v for value in values for k, v in value.items()}
        else:
            raise ValueError(f"the chunks of a distributed analysis disagree on {key!r}")
    return merged


def merge_measured(parts: list[dict]) -> dict:
    """One faithfulness measurement from the chunks' (each of some of the circuits, in
    order): per-circuit lists joined in chunk order, the shared means kept."""
    lists = [key for key, value in parts[0].items() if isinstance(value, list)]
    shared = merge_entries([{k: v for k, v in part.items() if k not in lists} for part in parts])
    return {**shared, **{key: [value for part in parts for value in part[key]] for key in lists}}


def _agree(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= AGREEMENT * max(1.0, abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_agree(a[k], b[k]) for k in a)
    return a == b


class PatchWorker:
    """A Ray actor holding one loaded model; runs analyses on chunks of nodes."""

    def __init__(self, model: ir.Model, spec_dir: str, trust_remote_code: bool, seed: int, batch_size: int,
                 exit_on_first_chunk: bool = False):
        import torch
        from circ.runtime.models.loading import load_model

        torch.manual_seed(seed)
        self.loaded = load_model(model, spec_dir=Path(spec_dir), trust_remote_code=trust_remote_code)
        self.batch_size = batch_size
        self.exit_on_first_chunk = exit_on_first_chunk

    def run_chunk(self, spec: ir.Spec, analysis: ir.Analysis, prompts, source) -> dict:
        from circ.runtime.execute.analysis_runner import AnalysisContext, run_analysis

        self._fault()
        context = AnalysisContext(self.loaded, spec, {analysis.dataset: prompts}, lambda _source, _target: source,
                                  lambda nodes: list(nodes.nodes), self.batch_size, False)
        return run_analysis(analysis, context)

    def measure_chunk(self, name: str, ranked_by: dict, metric: ir.Metric, prompts, source, circuits: list,
                      description: str) -> dict:
        """The faithfulness of `circuits`, prefixes of analysis `name`'s ranking."""
        self._fault()
        _, measure, _, _ = ranking_measure(name, ranked_by, self.loaded, prompts, metric, source,
                                           batch_size=self.batch_size, show_progress=False, description=description)
        return measure(circuits)

    def _fault(self):
        if self.exit_on_first_chunk:  # fault injection for tests: die like a lost node
            os._exit(1)


class RayExecutor(Executor):
    """`Executor` with exact patching, path patching and exact edge sweeps, and the
    measurements of curves and growth, run by a pool of Ray actors.

    address: a running cluster ("auto", "ray://host:10001", "host:6379"), or None for
    the cluster this process already joined, else a local one. workers: actors in
    the pool (default: as many as the cluster's GPUs hold copies of the model, each
    with every GPU of its device map, when it runs on GPUs; else one per CPU). crash_first_worker: for tests, the first actor exits abruptly on
    its first chunk."""

    def __init__(self, spec, graph, loaded, settings, sources, *, address: str | None = None,
                 trust_remote_code: bool = False, workers: int | None = None, crash_first_worker: bool = False):
        super().__init__(spec, graph, loaded, settings, sources)
        self.address, self.trust_remote_code = address, trust_remote_code
        self.workers, self.crash_first_worker = workers, crash_first_worker
        self._actors: list = []
        self._refs: dict[str, object] = {}
        self._running = None  # the op being run: where a chunk that keeps failing is reported
        self.started_actors = 0

    def run(self) -> None:
        ray = _ray(self.spec)
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = self.address or "a new local instance"
                raise RunError(self.spec.span, f"cannot reach the Ray cluster at {where}: {error}") from None
        try:
            super().run()
        finally:
            for actor in self._actors:
                ray.kill(actor)
            self._actors, self._refs = [], {}
            if started_here:
                ray.shutdown()

    def _execute(self, op):
        self._running = op
        return super()._execute(op)

    def _analysis(self, op):
        analysis = self.spec.analysis(op.arg("name"))
        nodes = self._spread(analysis) if distributable(analysis) else []
        if len(nodes) < 2:
            return super()._analysis(op)
        entry = self._distributed(analysis, nodes)
        self.analyses[analysis.name] = entry
        return entry

    def _spread(self, analysis: ir.Analysis) -> list[ir.Node]:
        """The nodes to split: a patch's nodes, path patching's senders that have an edge
        (a chunk without one would fail); none where path patching rejects its nodes,
        so that it runs here and says why."""
        from circ.runtime.analyses.common import AnalysisError
        from circ.runtime.analyses.path_patching import path_edges

        nodes = self._nodes_of(analysis.nodes)
        if analysis.kind == "edges":  # senders along the stream: chunks' edges follow one another
            from circ.runtime.analyses.edge_circuit import stream_order

            return sorted(dict.fromkeys(nodes), key=stream_order)
        if analysis.kind != "path_patch":
            return nodes
        try:
            edges = path_edges(self.loaded, nodes, self._nodes_of(analysis.receivers))
        except AnalysisError:
            return []
        return list(dict.fromkeys(sender for sender, _ in edges))

    # ------------------------------------------------------------------ one analysis
    def _distributed(self, analysis: ir.Analysis, nodes: list[ir.Node]) -> dict:
        import ray
        from circ.runtime.analyses.common import node_site

        target = self._prompts(analysis.dataset)
        hooks = sorted({node_site(node, self.loaded.shape).hook for node in nodes})
        source_ref = ray.put(self._precomputed(self._source_for(analysis.source, target), target, hooks))
        prompts_ref, spec_ref = self._ref(f"data:{analysis.dataset}", target), self._ref("spec", self.spec)
        pool = self._pool()
        chunks = chunked(nodes, len(pool) * CHUNKS_PER_WORKER)
        receivers = analysis.receivers and ir.NodeList(tuple(self._nodes_of(analysis.receivers)),
                                                       analysis.receivers.span)
        if analysis.kind == "edges":  # each chunk: edges from its senders within the whole graph
            receivers = ir.NodeList(tuple(nodes), analysis.nodes.span)
        tasks = [replace(analysis, nodes=ir.NodeList(tuple(chunk), analysis.nodes.span), receivers=receivers)
                 for chunk in chunks]
        if self.settings.show_progress:
            print(f"  {analysis.name}: {len(nodes)} nodes in {len(tasks)} chunks on {len(pool)} Ray workers",
                  file=self.settings.log, flush=True)
        entries = self._schedule(tasks, lambda actor, task: actor.run_chunk.remote(spec_ref, task, prompts_ref,
                                                                                    source_ref), analysis.name)
        return merge_entries(entries)

    def _ranking_measure(self, name: str, ranked_by: dict, loaded, prompts, metric: ir.Metric, source,
                         **options) -> tuple:
        """ranking_measure() whose measure runs two or more circuits (a curve's points,
        growth's doubling sizes) in chunks on the pool; one (a bisection step) runs here."""
        import ray
        from circ.runtime.analyses.faithfulness_curve import ablated_hooks

        ranking, measure, ids, level = super()._ranking_measure(name, ranked_by, loaded, prompts, metric, source,
                                                                **options)
        description, refs = options.get("description", "curve"), {}

        def spread(circuits: list[list]) -> dict:
            if len(circuits) < 2:
                return measure(circuits)
            if not refs:  # what every chunk reads, in the object store once
                hooks = ablated_hooks(loaded.shape, ranking, level)
                refs.update(ranked_by=ray.put(ranked_by), prompts=ray.put(prompts),
                            source=ray.put(self._precomputed(source, prompts, hooks)))
            pool = self._pool()
            chunks = chunked(circuits, len(pool) * CHUNKS_PER_WORKER)
            if self.settings.show_progress:
                print(f"  {description} along {name}: {len(circuits)} circuits in {len(chunks)} chunks on "
                      f"{len(pool)} Ray workers", file=self.settings.log, flush=True)
            parts = self._schedule(chunks, lambda actor, chunk: actor.measure_chunk.remote(
                name, refs["ranked_by"], metric, refs["prompts"], refs["source"], chunk, description),
                f"the {description} along {name}")
            return merge_measured(parts)

        return ranking, spread, ids, level

    def _precomputed(self, source, target, hooks: list[str]) -> PrecomputedSource:
        """`source`'s activations at `hooks` for every batch of `target`, on the CPU."""
        batches = {}
        for batch in target.batches(self.settings.batch_size):
            fetched = source.fetch(batch, hooks)
            fetched.activations = {hook: value.cpu() for hook, value in fetched.activations.items()}
            fetched.logits = None if fetched.logits is None else fetched.logits.cpu()
            batches[int(batch.rows[0])] = fetched
        return PrecomputedSource(batches, source.runs_model)

    def _ref(self, key: str, value):
        import ray

        if key not in self._refs:
            self._refs[key] = ray.put(value)
        return self._refs[key]

    def _schedule(self, tasks: list, call, name: str) -> list[dict]:
        """Run every task on the pool (`call(actor, task)` submits one), retrying a task
        whose actor died on another one; the results in task order."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        pending, running, idle = deque(range(len(tasks))), {}, list(self._actors)
        results: dict[int, dict] = {}
        attempts = dict.fromkeys(range(len(tasks)), 0)
        while pending or running:
            while pending and idle:
                index, actor = pending.popleft(), idle.pop()
                attempts[index] += 1
                running[call(actor, tasks[index])] = (index, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            index, actor = running.pop(ready[0])
            try:
                results[index] = ray.get(ready[0])
                idle.append(actor)
            except RayTaskError as error:
                raise (error.cause if isinstance(error.cause, Exception) else error) from None
            except RayActorError:
                if attempts[index] >= MAX_ATTEMPTS:
                    raise RunError(self._running.span, f"a chunk of {name} failed on "
                                   f"{MAX_ATTEMPTS} Ray workers in a row; giving up") from None
                self._actors.remove(actor)
                self._actors.append(self._start_actor())
                idle.append(self._actors[-1])
                pending.appendleft(index)
        return [results[index] for index in range(len(tasks))]

    # ------------------------------------------------------------------ the pool
    def _pool(self) -> list:
        if not self._actors:
            for _ in range(self._pool_size()):
                self._actors.append(self._start_actor())
        return self._actors

    def _pool_size(self) -> int:
        import ray

        if self.workers:
            return self.workers
        resources = ray.cluster_resources()
        if self._gpus():
            return max(1, int(resources.get("GPU", 1)) // self._gpus())
        return max(1, int(resources.get("CPU", 1)))

    def _gpus(self) -> int:
        """GPUs one copy of the model needs (all the devices of its device map)."""
        if not self.loaded.device.startswith("cuda"):
            return 0
        return max(1, int(getattr(self.loaded.bridge.cfg, "n_devices", 1) or 1))

    def _start_actor(self):
        import ray

        crash = self.crash_first_worker and self.started_actors == 0
        self.started_actors += 1
        resources = {"num_gpus": self._gpus()} if self._gpus() else {"num_cpus": 1}
        actor_class = ray.remote(**resources)(PatchWorker)
        return actor_class.remote(self.spec.model, str(Path(self.spec.path).parent), self.trust_remote_code,
                                  self.settings.seed, self.settings.batch_size, crash)


def _ray(spec: ir.Spec):
    try:
        import ray
    except ImportError:
        raise RunError(spec.span, "--executor ray needs Ray: .venv/bin/pip install 'circ[ray]'") from None
    return ray

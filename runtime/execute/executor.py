"""Walk a compiled plan in topological order and build the results.

Each op kind has one handler. An op's value is kept only while an op that needs it
has yet to run: tokenised datasets and mean activations are dropped as soon as
their last consumer is done. Any failure inside an op is raised as `RunError`
carrying the span of the spec text the op came from.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace

import networkx as nx
from circ.compiler import ir
from circ.runtime.data.datasets import build_examples, dataset_entry
from circ.runtime.execute import circuits as circuit_rules
from circ.runtime.execute import run_warnings
from circ.runtime.execute.analysis_runner import AnalysisContext, ranking_measure, run_analysis
from circ.runtime.execute.expectations import Readings, evaluate
from circ.runtime.execute.node_rules import NodeFacts


class RunError(Exception):
    """A failure while running one op, located at the spec text it came from.
    `internal`: no check foresaw it (an error type the kernels do not raise for bad
    input); reported the same way, with its type."""

    def __init__(self, span: ir.Span, message: str, internal: bool = False):
        super().__init__(message)
        self.span = span
        self.message = message
        self.internal = internal


@dataclass
class Settings:
    batch_size: int = 32
    seed: int = 0
    show_progress: bool = True
    log: object = field(default=sys.stderr, repr=False)
    store: object = field(default=None, repr=False)  # resume.ResultStore: finished ops on disk
    report_op: object = field(default=None, repr=False)  # (number, total, op_id) -> None; default: a log line


@dataclass
class DatasetRun:
    """A dataset's tokens, the mean of every spec metric on its clean run, and the
    attention summaries read from that run ({str(query): AttentionSums})."""

    prompts: object
    metrics: dict
    attention: dict = field(default_factory=dict)


class Executor:
    def __init__(self, spec: ir.Spec, graph: nx.DiGraph, loaded, settings: Settings, sources: dict):
        self.spec, self.graph, self.loaded, self.settings = spec, graph, loaded, settings
        self.sources_text = sources
        self.values: dict[str, object] = {}
        self.analyses: dict[str, dict] = {}
        self.members: dict[str, list[circuit_rules.Member]] = {}
        self.circuit_edges: dict[str, list[dict]] = {}  # the kept edges of discovered circuits
        self.circuit_growth: dict[str, dict] = {}  # grown circuits by name: what growing measured
        self.grown: dict[ir.Select, tuple] = {}  # discover(A, faithfulness=F): (members, kept edges or None, measured)
        self.expectations: list[dict] = []
        self.warnings: list[dict] = []  # run_warnings: statements that ran but said nothing
        self.dataset_entries: dict[str, dict] = {}
        self.prompt_texts: dict[str, list[str]] = {}  # each dataset's prompts, for the report's per-prompt views
        self._handlers = {
            "model": self._model, "dataset": self._dataset, "cache_run": self._cache_run,
            "mean": self._mean, "analysis": self._analysis, "circuit": self._circuit,
            "categories": self._categories, "expect": self._expect, "render": self._render,
            "results": self._results,
        }

    # ------------------------------------------------------------------ walking
    def run(self) -> None:
        order = list(nx.lexicographical_topological_sort(self.graph))
        waiting = {op_id: self.graph.out_degree(op_id) for op_id in order}
        for number, op_id in enumerate(order, 1):
            op = self.graph.nodes[op_id]["op"]
            if self.settings.report_op is not None:
                self.settings.report_op(number, len(order), op_id)
            elif self.settings.show_progress:
                print(f"[{number}/{len(order)}] {op_id}", file=self.settings.log, flush=True)
            try:
                self.values[op_id] = self._execute(op)
            except RunError:
                raise
            except Exception as error:  # noqa: BLE001 - every failure maps to its spec line
                if not _is_user_error(error):  # a case no check foresaw: still located, never a traceback
                    raise RunError(op.span, f"cannot run this: {type(error).__name__}: "
                                   f"{str(error)[:500]}", internal=True) from error
                raise RunError(op.span, str(error)) from error
            for dep in self.graph.predecessors(op_id):
                waiting[dep] -= 1
                if waiting[dep] == 0:
                    self.values.pop(dep, None)

    def _execute(self, op):
        """Run `op`, or take its result from an earlier run's store; store what it gives."""
        store = self.settings.store
        stored = store.load(op) if store is not None else None
        if stored is not None:
            self.analyses[op.arg("name")] = stored
            return stored
        value = self._handlers[op.kind](op)
        if store is not None:
            store.save(op, value)
        return value

    # ------------------------------------------------------------------ ops
    def _model(self, op):
        return self.loaded

    def _dataset(self, op):
        from circ.runtime.data.prompts import prepends_bos, tokenize
        from circ.runtime.data.token_vocabulary import TokenVocabulary

        dataset = self.spec.dataset(op.arg("name"))
        tokenizer = self.loaded.tokenizer
        examples = build_examples(dataset, self.spec, TokenVocabulary.from_hf(tokenizer, prepends_bos(self.loaded)))
        prompts = tokenize(self.loaded, examples, source_name=_source_name(dataset))
        self.dataset_entries[dataset.name] = dataset_entry(dataset, examples, prompts, tokenizer)
        self.prompt_texts[dataset.name] = [example.prompt for example in examples]
        return prompts

    def _cache_run(self, op):
        from circ.runtime.execute.baselines import clean_run

        name = op.arg("dataset")
        prompts = self.values[f"data:{name}"]
        queries = tuple(dict.fromkeys(a.option("query", ir.LAST) for a in self.spec.analyses
                                      if a.kind == "attention" and a.dataset == name
                                      and a.option("score") is None))
        metrics = self.spec.metrics + ((ACCURACY,) if op.arg("accuracy") else ())
        means, attention = clean_run(self.loaded, prompts, metrics, self.settings.batch_size, queries)
        if op.arg("accuracy"):
            if ACCURACY.name not in means:  # left out: an answer of several tokens
                from circ.runtime.analyses.metrics import MetricError, split_message

                raise MetricError(split_message(ACCURACY, prompts))
            self.dataset_entries[name]["accuracy"] = means.pop(ACCURACY.name)
        self.dataset_entries[name]["metrics"] = means
        return DatasetRun(prompts, means, attention)

    def _mean(self, op):
        from circ.runtime.analyses.patch_sources import make_source

        name = op.arg("dataset")
        prompts = self._prompts(name)
        return make_source(self.loaded, prompts, ir.PatchSource("mean", name), {name: prompts},
                           seed=self.settings.seed, batch_size=self.settings.batch_size)

    def _analysis(self, op):
        analysis = self.spec.analysis(op.arg("name"))
        ctx = AnalysisContext(self.loaded, self.spec, _LazyDatasets(self), self._source_for,
                              self._nodes_of, self.settings.batch_size, self.settings.show_progress,
                              self._recorded_attention, self.analyses, self._ranking_measure)
        self.analyses[analysis.name] = run_analysis(analysis, ctx)
        return self.analyses[analysis.name]

    def _circuit(self, op):
        circuit = self.spec.circuit(op.arg("name"))
        self.members[circuit.name] = self._members(circuit.nodes)
        if circuit.edges:
            self.circuit_edges[circuit.name] = [{"src": src, "dst": dst, "part": part, "weight": None}
                                                for src, dst, part in circuit.edges]
        if isinstance(circuit.nodes, ir.Select) and circuit.nodes.edges and circuit.nodes.grow is None:
            entry = self.analyses.get(circuit.nodes.analysis, {})
            self.circuit_edges[circuit.name] = circuit_rules.discover(circuit.nodes, entry.get("values", {}),
                                                                      entry.get("kept"))[1]
        if isinstance(circuit.nodes, ir.Select) and circuit.nodes.grow is not None:
            _, kept_edges, self.circuit_growth[circuit.name] = self.grown[circuit.nodes]
            if kept_edges is not None:
                self.circuit_edges[circuit.name] = kept_edges
        if not isinstance(circuit.nodes, ir.NodeList) and not self.members[circuit.name]:
            self.warnings.append(run_warnings.empty_circuit(circuit))
        return self.members[circuit.name]

    def _categories(self, op):
        name = op.arg("circuit")
        categories = [c for c in self.spec.categories if c.circuit == name]
        circuit = self.spec.circuit(name)
        facts = self._facts(op.arg("attention"))
        effect_from = circuit.nodes.analysis if isinstance(circuit.nodes, ir.Select) else None
        if isinstance(circuit.nodes, ir.Combine):  # `effect` reads the members' own scores
            effect_from = name
            facts.values[name] = {m.id: m.score for m in self.members[name]}
        self.members[name] = circuit_rules.categorize(self.members[name], categories, facts, effect_from)
        self.warnings += run_warnings.empty_categories(categories, self.members[name])
        return self.members[name]

    def _expect(self, op):
        expectation = self.spec.expectations[op.arg("index") - 1]
        line = _source_line(self.sources_text, expectation.span)
        categories = {name: {m.id: m.category for m in members} for name, members in self.members.items()}
        readings = Readings(self.analyses, self.dataset_entries,
                            lambda nodes: [m.id for m in self._members(nodes)], categories,
                            self.circuit_growth)
        result = evaluate(expectation, readings, line)
        left = expectation.left
        read = self.spec.analysis(left.analysis) \
            if isinstance(left, ir.Quantity) and left.analysis in self.analyses else None
        # a curve's nodes name its ranking analysis, whose edges are no node set
        if read is not None and read.kind != "curve" and not self._nodes_of(read.nodes):
            self.warnings.append(run_warnings.expectation_on_nothing(expectation, read))
        self.expectations.append(result)
        return result

    def _render(self, op):
        return op.arg("path")

    def _results(self, op):
        return None

    # ------------------------------------------------------------------ helpers
    def _recorded_attention(self, dataset: str, query: ir.Position):
        """The attention sums the dataset's clean run gathered for `query`, if any."""
        run = self.values.get(f"run:{dataset}")
        return run.attention.get(str(query)) if run is not None else None

    def _prompts(self, name: str):
        run = self.values.get(f"run:{name}")
        return run.prompts if run is not None else self.values[f"data:{name}"]

    def _source_for(self, source: ir.PatchSource | None, target):
        from circ.runtime.analyses.patch_sources import make_source

        if source is None:
            return None
        if source.kind == "mean":
            return self.values[f"mean:{source.dataset}"]
        datasets = {source.dataset: self._prompts(source.dataset)} if source.dataset else {}
        return make_source(self.loaded, target, source, datasets, seed=self.settings.seed,
                           batch_size=self.settings.batch_size)

    def _nodes_of(self, nodes: ir.NodeSet) -> list[ir.Node]:
        if isinstance(nodes, ir.NodeList):
            return list(nodes.nodes)
        return [circuit_rules.node_from_id(m.id) for m in self._members(nodes)]

    def _members(self, nodes: ir.NodeSet) -> list[circuit_rules.Member]:
        if isinstance(nodes, ir.NodeList):
            return [circuit_rules.Member(n.id, 0.0) for n in nodes.nodes]
        if isinstance(nodes, ir.Combine):
            return circuit_rules.combine(nodes.op, self._members(nodes.left), self._members(nodes.right))
        source = self.analyses.get(nodes.analysis, {})
        if nodes.grow is not None:
            return self._grow(nodes)
        if nodes.edges:
            return circuit_rules.discover(nodes, source.get("values", {}), source.get("kept"))[0]
        return circuit_rules.select(nodes, self._facts(None), self.members)

    def _grow(self, nodes: ir.Select) -> list[circuit_rules.Member]:
        """The members of `discover(A, faithfulness=F)`, grown once and kept (with the
        kept edges when A is an edges analysis)."""
        from circ.runtime.analyses.faithfulness_curve import grow

        if nodes not in self.grown:
            growth = nodes.grow
            prompts = self._prompts(growth.dataset)
            ranked_by = self.analyses[nodes.analysis]
            ranking, measure, ids, level = self._ranking_measure(
                nodes.analysis, ranked_by, self.loaded, prompts, self.spec.metric(growth.metric),
                self._source_for(growth.source, prompts), batch_size=self.settings.batch_size,
                show_progress=self.settings.show_progress, description="discover")
            measured = {**grow(ranking, measure, growth.target), "level": level}
            values = ranked_by["values"]
            if level == "edges":
                members, kept_edges = circuit_rules.discover(replace(nodes, top=measured["size"]), values)
            else:
                kept = circuit_rules.ordered(ids[:measured["size"]])
                members, kept_edges = [circuit_rules.Member(i, float(values[i])) for i in kept], None
            self.grown[nodes] = (members, kept_edges, measured)
        return self.grown[nodes][0]

    def _ranking_measure(self, *args, **kwargs) -> tuple:
        """ranking_measure(): what curves and growth measure prefixes of a ranking with."""
        return ranking_measure(*args, **kwargs)

    def _facts(self, attention: str | None) -> NodeFacts:
        values = {name: r["values"] for name, r in self.analyses.items()
                  if r["kind"] in ("attribute", "patch") or r.get("score") is not None}
        attn = self.analyses.get(attention, {}) if attention else {}
        return NodeFacts(values, attn.get("values", {}), attn.get("spread", {}), self._clean_metrics())

    def _clean_metrics(self) -> dict[str, float]:
        """The clean metric value behind each analysis's and circuit's scores (a rule's `metric`)."""
        metrics = {name: r.get("total", (r.get("baseline") or {}).get("clean"))
                   for name, r in self.analyses.items() if r["kind"] in ("attribute", "patch")}
        for circuit in self.spec.circuits:
            source = circuit.nodes
            while isinstance(source, ir.Select) and source.analysis not in metrics:
                source = next((c.nodes for c in self.spec.circuits if c.name == source.analysis), None)
            if isinstance(source, ir.Select):
                metrics[circuit.name] = metrics[source.analysis]
        return metrics


# The accuracy an expectation reads (`accuracy(D)`); a user's names cannot start with `_`.
ACCURACY = ir.Metric("_accuracy", "accuracy")


class _LazyDatasets(dict):
    """Tokenised datasets by name, read from the executor's live values."""

    def __init__(self, executor: Executor):
        super().__init__()
        self._executor = executor

    def __missing__(self, name):
        return self._executor._prompts(name)


def _source_name(dataset: ir.Dataset) -> str:
    path = dataset.param("path")
    return f"{path}" if path else f"dataset `{dataset.name}`"


def _source_line(sources: dict, span: ir.Span) -> str:
    lines = ir.source_lines(sources.get(span.path, ""))
    return lines[span.line - 1] if 0 < span.line <= len(lines) else ""


def _is_user_error(error: Exception) -> bool:
    """Errors that a spec, dataset or model can cause: reported at the op's line."""
    from circ.runtime.analyses.common import AnalysisError
    from circ.runtime.analyses.metrics import MetricError
    from circ.runtime.data.readers import DatasetError
    from circ.runtime.models.loading import ModelError

    return isinstance(error, (AnalysisError, MetricError, ModelError, DatasetError, ValueError, NotImplementedError))

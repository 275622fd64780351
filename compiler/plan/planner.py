"""The planner: a checked Spec becomes a networkx DiGraph of operations.

Each graph node is an op id (a stable string); its `op` attribute is an `Op`.
Edges point from what an op needs to the op. Shared work is one op: every analysis
on dataset D reads the same cached run `run:D`, and every mean ablation over D the
same `mean:D`.

  model                the model                      (no dependencies)
  data:NAME            a dataset                      <- model, data:BASE for derivations
  run:NAME             one cached forward of a dataset <- data:NAME
                       (with `accuracy` when an expectation reads it)
  mean:NAME            mean activations of a dataset  <- run:NAME
  analysis:NAME        an analysis                    <- runs/means it reads, analyses
                                                         and circuits its nodes come from
                                                         (every side of a `+`/`-` of them)
  circuit:NAME         a circuit                      <- analyses/circuits it selects from
                                                         (and, grown to a faithfulness,
                                                         the run and source it measures on)
  categories:CIRCUIT   a circuit's categories         <- circuit, analyses its rules read
  expect:N             the N-th expectation           <- the analysis, circuits or
                                                         dataset run it reads (the grown
                                                         circuit for faithfulness(C))
  render:PATH          a circuit diagram              <- circuit, categories
  results              results.json                   <- every op nothing else reads
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
from circ.compiler import ir


@dataclass(frozen=True)
class Op:
    id: str
    kind: str
    args: tuple[tuple[str, ir.Value], ...] = ()
    span: ir.Span = field(default=ir.NO_SPAN, compare=False)

    def arg(self, name: str, default=None):
        return dict(self.args).get(name, default)


def build_plan(spec: ir.Spec) -> nx.DiGraph:
    return _Planner(spec).graph


class _Planner:
    def __init__(self, spec: ir.Spec):
        self.spec = spec
        self.graph = nx.DiGraph(spec=spec.name, path=spec.path)
        self.circuits = {c.name for c in spec.circuits}
        self.categorised = {c.circuit for c in spec.categories}
        self.accuracy_on = {e.left.dataset for e in spec.expectations if isinstance(e.left, ir.Accuracy)}
        self._add(Op("model", "model", (("source", spec.model.source),
                                        ("location", spec.model.location)), spec.model.span))
        for dataset in spec.datasets:
            self._dataset(dataset)
        for analysis in spec.analyses:
            self._analysis(analysis)
        for circuit in spec.circuits:
            self._circuit(circuit)
        for circuit in dict.fromkeys(c.circuit for c in spec.categories):
            self._categories(circuit)
        for number, expectation in enumerate(spec.expectations, 1):
            self._expectation(number, expectation)
        for render in spec.renders:
            deps = [f"circuit:{render.circuit}"]
            if render.circuit in self.categorised:
                deps.append(f"categories:{render.circuit}")
            self._add(Op(f"render:{render.path}", "render",
                         (("circuit", render.circuit), ("path", render.path)), render.span), deps)
        terminal = sorted(n for n in self.graph if self.graph.out_degree(n) == 0)
        self._add(Op("results", "results", (), spec.span), terminal)

    def _add(self, op: Op, deps=()) -> None:
        self.graph.add_node(op.id, op=op)
        for dep in deps:
            self.graph.add_edge(dep, op.id)

    def _dataset(self, dataset: ir.Dataset) -> None:
        deps = ["model"] + ([f"data:{dataset.base}"] if dataset.base else [])
        self._add(Op(f"data:{dataset.name}", "dataset",
                     (("name", dataset.name), ("kind", dataset.kind)), dataset.span), deps)

    def _run(self, name: str) -> str:
        op_id = f"run:{name}"
        if op_id not in self.graph:
            args = (("dataset", name),) + ((("accuracy", True),) if name in self.accuracy_on else ())
            self._add(Op(op_id, "cache_run", args, self.spec.dataset(name).span), [f"data:{name}"])
        return op_id

    def _mean(self, name: str) -> str:
        op_id = f"mean:{name}"
        if op_id not in self.graph:
            self._add(Op(op_id, "mean", (("dataset", name),), self.spec.dataset(name).span),
                      [self._run(name)])
        return op_id

    def _source(self, source: ir.PatchSource | None) -> list[str]:
        if source is None or source.dataset is None:
            return []
        if source.kind == "mean":
            return [self._mean(source.dataset)]
        return [self._run(source.dataset)]

    def _select(self, nodes) -> list[str]:
        """The ops a node set chosen at run time waits for (a combination: both sides')."""
        if isinstance(nodes, ir.Combine):
            return list(dict.fromkeys(self._select(nodes.left) + self._select(nodes.right)))
        if not isinstance(nodes, ir.Select):
            return []
        if nodes.analysis in self.circuits:
            deps = [f"circuit:{nodes.analysis}"]
            if nodes.category is not None:
                deps.append(f"categories:{nodes.analysis}")
        else:
            deps = [f"analysis:{nodes.analysis}"]
        if nodes.grow is not None:  # discover(A, faithfulness=F) runs the model to measure what it grows
            deps += [self._run(nodes.grow.dataset)] + self._source(nodes.grow.source)
        return deps + [f"analysis:{name}" for name in rule_fields(nodes.where)]

    def _analysis(self, analysis: ir.Analysis) -> None:
        deps = [self._run(analysis.dataset)] + self._source(analysis.source)
        deps += [self._run(name) for name in analysis.option("eval", ())]
        deps += self._select(analysis.nodes) + self._select(analysis.receivers)
        implicit = analysis.name.startswith("_")
        self._add(Op(f"analysis:{analysis.name}", "analysis",
                     (("name", analysis.name), ("kind", analysis.kind),
                      ("dataset", analysis.dataset), ("implicit", implicit)), analysis.span), deps)

    def _circuit(self, circuit: ir.Circuit) -> None:
        deps = self._select(circuit.nodes) or ["model"]
        self._add(Op(f"circuit:{circuit.name}", "circuit", (("name", circuit.name),), circuit.span),
                  deps)

    def _categories(self, circuit: str) -> None:
        categories = [c for c in self.spec.categories if c.circuit == circuit]
        deps = [f"circuit:{circuit}"]
        for category in categories:
            deps += [f"analysis:{name}" for name in rule_fields(category.rule)]
        attention = categories[0].attention
        if attention is not None:
            deps.append(f"analysis:{attention}")
        self._add(Op(f"categories:{circuit}", "categories",
                     (("circuit", circuit), ("names", tuple(c.name for c in categories)),
                      ("attention", attention)), categories[0].span), dict.fromkeys(deps))

    def _expectation(self, number: int, expectation: ir.Expectation) -> None:
        left = expectation.left
        if isinstance(left, ir.Quantity):
            args = (("analysis", left.analysis), ("accessor", left.accessor))
            deps = [f"analysis:{left.analysis}"]
        elif isinstance(left, ir.GrownFaithfulness):
            args = (("circuit", left.circuit), ("accessor", "faithfulness"))
            deps = [f"circuit:{left.circuit}"]
        elif isinstance(left, (ir.Accuracy, ir.MetricMean)):
            kind = "accuracy" if isinstance(left, ir.Accuracy) else "metric"
            args = (("dataset", left.dataset), ("accessor", kind))
            deps = [self._run(left.dataset)]
        else:
            sets = [left.nodes] if isinstance(left, ir.Count) else [expectation.right]
            if expectation.form == "relation":
                sets.insert(0, left)
            args = (("accessor", "count" if isinstance(left, ir.Count) else expectation.form),)
            deps = [dep for nodes in sets for dep in self._select(nodes)] or ["model"]
        threshold = expectation.right if expectation.form == "number" else None
        self._add(Op(f"expect:{number}", "expect",
                     (("index", number),) + args + (("op", expectation.op), ("threshold", threshold)),
                     expectation.span), dict.fromkeys(deps))


def rule_fields(rule) -> list[str]:
    """Names of the analyses a rule reads (not `effect`), in order, once each."""
    if rule is None:
        return []
    return list(dict.fromkeys(leaf.name for leaf in ir.rule_leaves(rule)
                              if isinstance(leaf, ir.Field) and leaf.name != "effect"))

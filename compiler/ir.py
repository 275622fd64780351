"""The checked intermediate representation of a spec: frozen dataclasses with spans.

The parser builds a syntax tree (`syntax/tree.py`), the passes of `check/passes.py`
lower it into these classes and check them, and everything after that (planner, runtime,
renderer, diff) reads only these classes. Every class carries the `Span` of the
source text it came from, so that any later error can point at a line and column.
Spans never take part in equality (`compare=False`): two specs that differ only in
layout or comments compare equal.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file, 1-based lines and columns, end exclusive."""

    path: str
    line: int
    col: int
    end_line: int
    end_col: int


NO_SPAN = Span("<none>", 0, 0, 0, 0)


def normalize_line_ends(text: str) -> str:
    """`text` with every line end (`\\r\\n`, `\\r`) written as `\\n`."""
    return _LINE_END.sub("\n", text) if "\r" in text else text


def source_lines(text: str) -> list[str]:
    """The lines that a Span's line numbers count: only `\\n`, `\\r\\n` and `\\r` end a
    line (a form feed, U+0085 or U+2028 is a character within its line). The parser,
    diagnostics, the report and results.json all split text with this function."""
    lines = _LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _span():
    return field(default=NO_SPAN, compare=False, repr=False)


# --------------------------------------------------------------------------- values
# A literal argument value as written in the spec: numbers, strings, booleans,
# bare words (enumerated options such as `direct` or `random_letters`) and lists.
Value = Union[int, float, str, bool, "Word", tuple]


@dataclass(frozen=True)
class Word:
    """A bare identifier used as an enumerated option value (e.g. `effect=direct`)."""

    name: str


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Shape:
    """The dimensions of a model that node ids and ranges are checked against."""

    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int
    d_mlp: int = 0
    has_mlp: bool = True


@dataclass(frozen=True)
class Model:
    """Which model a spec runs on.

    source: "demo" (the embedded model), "hf" (a local Hugging Face directory),
    "cache" (a name in the local Hugging Face cache), "gguf" (a GGUF file).
    location: a path (resolved relative to the spec's folder) or a model name.
    """

    source: str = "demo"
    location: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    device_map: str | tuple | None = None
    compat: bool = False
    tokenizer: str | None = None
    span: Span = _span()


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Dataset:
    """A named set of prompts.

    kind: a generator ("mcq", "induction"), a file reader ("jsonl", "autocircuit"),
    or a derivation of another dataset ("move_answer", "shuffle_answers",
    "relabel"), in which case `base` names that dataset.
    params: sorted (name, value) pairs of the generator's or reader's arguments;
    file paths are already resolved relative to the spec's folder.
    """

    name: str
    kind: str
    params: tuple[tuple[str, Value], ...] = ()
    base: str | None = None
    span: Span = _span()

    def param(self, name: str, default=None):
        return dict(self.params).get(name, default)


@dataclass(frozen=True)
class PatchSource:
    """Where patched activations come from.

    kind: "dataset" (the same-index prompt of `dataset`, e.g. a corrupted copy),
    "corrupt" (each target prompt's own `corrupt` field), "mean" (mean activation
    over `dataset`), "zero", or "resample" (a random other prompt of `dataset`,
    drawn with `seed`).
    """

    kind: str
    dataset: str | None = None
    seed: int | None = None
    span: Span = _span()


# --------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class Position:
    """Token positions: "last", "all", a named position of the dataset such as
    "answer_label", a fixed integer index (negative counts from the end), or "each":
    every position on its own, or each of `items` when they are given (patch(at=each)
    and patch(at=[...]) only: one value per node and position)."""

    kind: str  # "last" | "all" | "named" | "index" | "each"
    name: str | None = None
    index: int | None = None
    items: tuple["Position", ...] = ()
    span: Span = _span()

    def __str__(self) -> str:
        if self.kind == "named":
            return str(self.name)
        if self.kind == "index":
            return str(self.index)
        if self.items:
            return "[" + ", ".join(str(item) for item in self.items) + "]"
        return self.kind


LAST = Position("last")
ALL = Position("all")
EACH = Position("each")


@dataclass(frozen=True, order=True)
class Node:
    """One component of the model.

    kind: "embed", "head", "mlp", "resid" (residual stream before `layer`),
    "head_input" (a head's q/k/v input, `part` in q/k/v).
    Ids follow DESIGN.md: L3.H1, L3.MLP, EMBED, L3.H1.q, L3.RESID.
    """

    layer: int
    kind: str
    head: int | None = None
    part: str | None = None

    @property
    def id(self) -> str:
        if self.kind == "embed":
            return "EMBED"
        if self.kind == "mlp":
            return f"L{self.layer}.MLP"
        if self.kind == "resid":
            return f"L{self.layer}.RESID"
        if self.kind == "head":
            return f"L{self.layer}.H{self.head}"
        return f"L{self.layer}.H{self.head}.{self.part}"


# Node-set expressions. Static sets are expanded against the model's Shape by the
# checker into `NodeList`; sets chosen from analysis results stay as `Select`, and
# sets built from those with `+`, `&` and `-` as `Combine`.
@dataclass(frozen=True)
class NodeList:
    """A fixed node set in canonical order. When the model's shape is unknown (a GGUF
    model before it is loaded), sets such as `heads` cannot be expanded: `nodes` is
    then empty and `unexpanded` holds the expression's canonical text; compiling
    again with the shape (`compile_file(path, shape=...)`) expands it."""

    nodes: tuple[Node, ...]
    span: Span = _span()
    unexpanded: str | None = None


@dataclass(frozen=True)
class Select:
    """Nodes chosen from an analysis's results: the `top` k by |value| (k=None: all),
    kept only where `where` holds. `analysis` may also name a circuit.
    Order: `category` and `where` filter first; `top`/`best` then keep the strongest
    of what is left, so `top(A, 10) where R` is at most 10 nodes, all satisfying R."""

    analysis: str
    top: int | None = None
    where: "Rule | None" = None
    best: bool = False  # pick the single strongest node (after `where`)
    span: Span = _span()
    category: str | None = None  # CIRCUIT.CATEGORY: only the circuit's nodes of that category
    edges: bool = False  # discover(): `top` counts edges of an edges analysis; the nodes are their ends
    grow: "Growth | None" = None  # discover(A, faithfulness=F): A's ranking grown until F is reached


@dataclass(frozen=True)
class Growth:
    """How `discover(A, faithfulness=F)` measures the circuits it grows: the
    faithfulness kernel's on `dataset` with `metric`, everything outside the circuit
    replaced from `source`; the smallest prefix of A's ranking reaching `target` wins."""

    target: float
    dataset: str
    metric: str
    source: "PatchSource"


@dataclass(frozen=True)
class Combine:
    """A node set computed when the spec runs from two others, at least one of them
    chosen from results: `op` "+" (union), "&" (the nodes in both) or "-" (`left`
    without `right`). A node of the union keeps its score from the side it comes from
    (`left` first); a node of the intersection keeps its score from `left`."""

    op: str
    left: "NodeSet"
    right: "NodeSet"
    span: Span = _span()


NodeSet = Union[NodeList, Select, Combine]


# --------------------------------------------------------------------------- rules
# Rules filter and categorise nodes. A term reads a per-node quantity:
#   Field("effect")                  the value of the analysis being selected from
#   Field("dla")                     the node's value in analysis `dla`
#   Attends("answer_label")          attention mass of the head from the query
#                                    position to that named position
#   Spread("labels")                 normalised entropy of attention over those positions
#   Abs(term)
#   Arith("*", left, right)          + - * / of two terms
#   Relative("max")                  the largest |score| of what `effect` reads
#   Relative("metric")               the clean metric value of the analysis `effect` reads
@dataclass(frozen=True)
class Field:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Attends:
    position: str
    span: Span = _span()
    position_span: Span = _span()


@dataclass(frozen=True)
class Spread:
    position: str
    span: Span = _span()
    position_span: Span = _span()


@dataclass(frozen=True)
class Abs:
    term: "Term"
    span: Span = _span()


@dataclass(frozen=True)
class Arith:
    op: str  # "+" "-" "*" "/"
    left: "Term"
    right: "Term"
    span: Span = _span()


@dataclass(frozen=True)
class Relative:
    name: str  # "max" or "metric"
    span: Span = _span()


RELATIVE_TERMS = ("max", "metric")

Term = Union[Field, Attends, Spread, Abs, Arith, Relative, float]


@dataclass(frozen=True)
class Compare:
    left: Term
    op: str  # "<" "<=" ">" ">=" "==" "!="
    right: Term
    span: Span = _span()


@dataclass(frozen=True)
class And:
    parts: tuple["Rule", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Or:
    parts: tuple["Rule", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Not:
    rule: "Rule"
    span: Span = _span()


Rule = Union[Compare, And, Or, Not]


def rule_leaves(rule):
    """Every leaf term of a rule or term, left to right: fields, attention terms,
    relative terms and numbers."""
    if isinstance(rule, (Compare, Arith)):
        yield from rule_leaves(rule.left)
        yield from rule_leaves(rule.right)
    elif isinstance(rule, (And, Or)):
        for part in rule.parts:
            yield from rule_leaves(part)
    elif isinstance(rule, Not):
        yield from rule_leaves(rule.rule)
    elif isinstance(rule, Abs):
        yield from rule_leaves(rule.term)
    else:
        yield rule


# --------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Metric:
    """A scalar per prompt, averaged over the dataset.

    kind: "logit_diff" (answer minus mean of wrong answers), "prob", "logprob",
    "accuracy", "kl" (KL divergence from the clean run), "loss", "answer_logprob" (the
    log-probability of the whole answer, summed over its tokens, teacher-forced).
    normalized: report (x - corrupt) / (clean - corrupt) instead of x.
    """

    name: str
    kind: str
    position: Position = LAST
    normalized: bool = False
    span: Span = _span()


# --------------------------------------------------------------------------- analyses
@dataclass(frozen=True)
class Analysis:
    """One analysis over a node set.

    kind and the options each reads:
      "attribute"    direct logit attribution on `dataset` w.r.t. `metric`
      "patch"        activation patching from `source` into `dataset`;
                     options: effect ("total"|"direct"), method ("exact"|"attribution"),
                     verify (int), position (Position)
      "path_patch"   patch `source` through edges nodes -> `receivers` only
      "attention"    attention patterns; options: query (Position)
      "faithfulness" ablate everything outside `nodes` with `source`; metric recovered
      "curve"        faithfulness of growing prefixes of a ranking (`nodes`, a Select of
                     the ranking analysis) and of random orders; options: points (int),
                     random (int), seed (int), target (float)
      "subspace"     low-rank q/k/v fit of the heads in `nodes` on `dataset`;
                     options: parts (tuple of "q","k","v"), ranks (tuple of int or
                     "full"), eval (tuple of dataset names)
    """

    name: str
    kind: str
    nodes: NodeSet
    dataset: str
    metric: str | None = None
    source: PatchSource | None = None
    receivers: NodeSet | None = None
    options: tuple[tuple[str, Value], ...] = ()
    span: Span = _span()

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)


# --------------------------------------------------------------------------- circuits
@dataclass(frozen=True)
class Circuit:
    """`edges`: (src, dst, part) of a circuit imported from a graph file (LOGITS may be a dst)."""

    name: str
    nodes: NodeSet
    span: Span = _span()
    edges: tuple[tuple[str, str, str | None], ...] = ()


@dataclass(frozen=True)
class Category:
    """Nodes of `circuit` for which `rule` holds belong to category `name`.
    Categories are tried in spec order; a node takes the first that matches."""

    circuit: str
    name: str
    rule: Rule
    span: Span = _span()
    attention: str | None = None  # the attention analysis that attends()/spread() read


# --------------------------------------------------------------------------- expectations
@dataclass(frozen=True)
class Quantity:
    """A number read from an analysis's results: `analysis` (an analysis name,
    including the implicit analyses the checker creates for inline calls such as
    `faithfulness(...)`), then `accessor` with its arguments, e.g.
    Quantity("lowrank", "recovered", (("dataset", "clean"), ("max_rank", 4))).

    accessors: "value", "total", "node" (node), "recovered" (dataset, rank or
    max_rank), "edge" (sender, receiver), "attention" (node, position), "rank" (node:
    its 1-based place by |value| among the analysis's nodes)."""

    analysis: str
    accessor: str = "value"
    args: tuple[tuple[str, Value], ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Count:
    """The number of nodes in a node set (`count(output)`)."""

    nodes: NodeSet
    span: Span = _span()


@dataclass(frozen=True)
class Accuracy:
    """The share of a dataset's prompts whose answer has the highest logit among the
    prompt's options, on the clean run (`accuracy(clean)`)."""

    dataset: str
    span: Span = _span()


@dataclass(frozen=True)
class MetricMean:
    """A metric's mean over a dataset's clean run (`metric(ld, on=letters)`)."""

    metric: str
    dataset: str
    span: Span = _span()


@dataclass(frozen=True)
class GrownFaithfulness:
    """The faithfulness that `discover(A, faithfulness=F)` measured for the circuit it
    grew (`faithfulness(found)`), recorded with the circuit."""

    circuit: str
    span: Span = _span()


Number = Union[Quantity, Count, Accuracy, MetricMean, GrownFaithfulness]


@dataclass(frozen=True)
class Expectation:
    """One claim, in one of three forms:
      a number:   left a `Number`, op a comparison, right a float;
      membership: left a `Node`, op "in", right a `NodeSet`;
      relation:   left and right `NodeSet`s, op a comparison read as a set relation
                  (`==`, `!=`, `<=` subset, `<` proper subset, `>=`, `>`)."""

    left: Union[Number, Node, NodeSet]
    op: str
    right: Union[float, NodeSet]
    span: Span = _span()

    @property
    def form(self) -> str:
        """"number", "membership" or "relation"."""
        if isinstance(self.left, Node):
            return "membership"
        if isinstance(self.left, (NodeList, Select, Combine)):
            return "relation"
        return "number"


@dataclass(frozen=True)
class Render:
    circuit: str
    path: str
    span: Span = _span()


# --------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class Spec:
    """A whole checked spec. Collections are tuples in source order (included
    files first); names are unique within each kind."""

    name: str
    path: str
    model: Model
    shape: Shape | None
    datasets: tuple[Dataset, ...] = ()
    metrics: tuple[Metric, ...] = ()
    analyses: tuple[Analysis, ...] = ()
    circuits: tuple[Circuit, ...] = ()
    categories: tuple[Category, ...] = ()
    expectations: tuple[Expectation, ...] = ()
    renders: tuple[Render, ...] = ()
    includes: tuple[str, ...] = ()
    span: Span = _span()

    def dataset(self, name: str) -> Dataset:
        return next(d for d in self.datasets if d.name == name)

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def analysis(self, name: str) -> Analysis:
        return next(a for a in self.analyses if a.name == name)

    def circuit(self, name: str) -> Circuit:
        return next(c for c in self.circuits if c.name == name)

"""The state the passes share while checking one spec: parsed files, declarations,
the IR built so far, and the diagnostics found. Name lookup lives here so every
pass reports undefined, misplaced and wrong-kind names the same way."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from circ.compiler import ir
from circ.compiler.check.signatures import SELECTABLE_KINDS, scores_nodes
from circ.compiler.diagnostics import Diagnostic, did_you_mean
from circ.compiler.syntax import tree as s

KIND_WORDS = {"dataset": "a dataset", "metric": "a metric", "analysis": "an analysis",
              "circuit": "a circuit"}


class Reported(Exception):
    """Raised after a diagnostic was recorded, to abandon the current construct."""


@dataclass(frozen=True)
class Use:
    """Where a reference occurs: the statement's global order and its file."""

    order: int
    path: str

    @property
    def folder(self) -> Path:
        return Path(self.path).parent


@dataclass
class Declaration:
    """A named definition. `detail` is its constructor's kind as written (e.g.
    "patch" for an analysis, "mcq" for a dataset), when it can be told from syntax."""

    name: str
    kind: str
    order: int
    span: ir.Span
    statement: s.Definition
    detail: str | None = None


@dataclass
class Context:
    root_path: str
    model_override: object = None  # an ir.Model, or a function of the spec's own ir.Model
    shape_override: ir.Shape | None = None
    include_outside: bool = False
    hidden: set[str] = field(default_factory=set)
    files: list[s.SourceFile] = field(default_factory=list)
    statements: list[tuple[int, s.Statement]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    spec_name: str | None = None
    declarations: dict[str, Declaration] = field(default_factory=dict)
    categories: dict[str, dict[str, s.CategoryEntry]] = field(default_factory=dict)
    category_orders: dict[str, int] = field(default_factory=dict)
    model: ir.Model | None = None
    shape: ir.Shape | None = None
    datasets: dict[str, ir.Dataset] = field(default_factory=dict)
    metrics: dict[str, ir.Metric] = field(default_factory=dict)
    analyses: dict[str, ir.Analysis] = field(default_factory=dict)
    implicit: set[str] = field(default_factory=set)
    circuits: dict[str, ir.Circuit] = field(default_factory=dict)
    category_list: list[ir.Category] = field(default_factory=list)
    expectations: list[ir.Expectation] = field(default_factory=list)
    renders: list[ir.Render] = field(default_factory=list)

    # ------------------------------------------------------------------ reporting
    def error(self, code: str, message: str, span: ir.Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint))

    def fail(self, code: str, message: str, span: ir.Span, hint: str | None = None):
        """Record a diagnostic and abandon the construct being checked."""
        self.error(code, message, span, hint)
        raise Reported()

    @property
    def sources(self) -> dict[str, str]:
        """The text of each file diagnostics may show (never that of `hidden` files:
        included files that are not `.circ` files inside the spec's folder)."""
        return {f.path: f.text for f in self.files if f.path not in self.hidden}

    def owns(self, statement: s.Definition) -> bool:
        """Whether `statement` is the definition its name refers to (not a duplicate
        or reserved name, both already reported)."""
        decl = self.declarations.get(statement.name)
        return decl is not None and decl.statement is statement

    def use(self, order: int, statement) -> Use:
        return Use(order, statement.span.path)

    # ------------------------------------------------------------------ lookup
    def lookup(self, name: str, span: ir.Span, use: Use, kinds: tuple[str, ...],
               extra: tuple[str, ...] = ()) -> Declaration:
        """The declaration `name` refers to; reports and raises Reported when it is
        undefined, defined further down, or of none of the wanted `kinds`."""
        wanted = " or ".join(KIND_WORDS[k] for k in kinds)
        decl = self.declarations.get(name)
        if decl is None:
            candidates = [d.name for d in self.declarations.values() if d.kind in kinds]
            self.fail("E201", f"undefined name `{name}`; expected {wanted}", span,
                      did_you_mean(name, candidates + list(extra)))
        if decl.kind not in kinds:
            self.fail("E301", f"`{name}` is {KIND_WORDS[decl.kind]}; expected {wanted}", span)
        if decl.order >= use.order:
            self.fail("E203", f"`{name}` is used before its definition", span,
                      f"`{name}` is defined at {decl.span.path}:{decl.span.line}; "
                      "move that definition above this line")
        return decl

    def scores_nodes(self, name: str) -> bool | None:
        """Whether analysis `name` gives a score per node (None when its IR failed and its
        kind alone cannot tell)."""
        if name in self.analyses:
            return scores_nodes(self.analyses[name])
        kind = self.analysis_kind(name)
        return None if kind in (None, "attention") else kind in SELECTABLE_KINDS

    def analysis_kind(self, name: str) -> str | None:
        """The kind of analysis `name`, from its IR or, when that failed, its syntax."""
        if name in self.analyses:
            return self.analyses[name].kind
        decl = self.declarations.get(name)
        return decl.detail if decl and decl.kind == "analysis" else None

"""The syntax tree: statements and expressions exactly as written, with spans.

The parser builds these from the Lark tree (no Lark object survives parsing); the
lowering passes read them to build the IR, and the formatter prints them back in
canonical layout. Nothing here knows what a name means.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from circ.compiler.ir import Span


# --------------------------------------------------------------------------- expressions
@dataclass(frozen=True, slots=True)
class Name:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class NodeLit:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Num:
    value: int | float
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Arg:
    """One call argument: positional (`name` None), keyword (`op` "="), or a
    constraint such as `rank <= 4` (`op` a comparison)."""

    name: str | None
    value: "Expr"
    span: Span
    op: str = "="
    name_span: Span | None = None


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Arg, ...]
    span: Span
    func_span: Span


@dataclass(frozen=True, slots=True)
class MethodCall:
    base: "Expr"
    method: str
    args: tuple[Arg, ...]
    span: Span
    method_span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    base: "Expr"
    attr: str
    span: Span
    attr_span: Span


@dataclass(frozen=True, slots=True)
class Index:
    base: "Expr"
    index: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class EdgeIndex:
    """`base[SENDER -> RECEIVER]`: one edge of an analysis that measures edges."""

    base: "Expr"
    sender: "Expr"
    receiver: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class SetOp:
    op: str  # "+" or "-"
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class Paren:
    inner: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class Where:
    base: "Expr"
    rule: "RuleExpr"
    span: Span


Expr = Union[Name, NodeLit, Str, Num, ListLit, Call, MethodCall, Attr, Index, EdgeIndex, SetOp, Paren,
             Where]


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True, slots=True)
class TermCall:
    func: str
    arg: "TermExpr"
    span: Span
    func_span: Span


@dataclass(frozen=True, slots=True)
class TermArith:
    """`left OP right` with OP one of + - * / (usual precedence, left to right)."""

    op: str
    left: "TermExpr"
    right: "TermExpr"
    span: Span


TermExpr = Union[Name, Num, TermCall, TermArith]


@dataclass(frozen=True, slots=True)
class RuleCompare:
    left: TermExpr
    op: str
    right: TermExpr
    span: Span


@dataclass(frozen=True, slots=True)
class RuleBool:
    op: str  # "and" or "or"
    left: "RuleExpr"
    right: "RuleExpr"
    span: Span


@dataclass(frozen=True, slots=True)
class RuleNot:
    rule: "RuleExpr"
    span: Span


@dataclass(frozen=True, slots=True)
class RuleParen:
    rule: "RuleExpr"
    span: Span


RuleExpr = Union[RuleCompare, RuleBool, RuleNot, RuleParen]


# --------------------------------------------------------------------------- statements
@dataclass(frozen=True, slots=True)
class SpecStmt:
    name: Str
    span: Span


@dataclass(frozen=True, slots=True)
class IncludeStmt:
    path: Str
    span: Span


@dataclass(frozen=True, slots=True)
class ModelStmt:
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Definition:
    """`data|metric|analysis|circuit NAME = VALUE [at POSITION]`."""

    keyword: str
    name: str
    name_span: Span
    value: Expr
    span: Span
    at: Union[Name, Num, None] = None


@dataclass(frozen=True, slots=True)
class CategoryEntry:
    name: str
    name_span: Span
    rule: RuleExpr
    span: Span


@dataclass(frozen=True, slots=True)
class CategoriesStmt:
    circuit: str
    circuit_span: Span
    entries: tuple[CategoryEntry, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ExpectStmt:
    """`expect LEFT OP RIGHT`: `op` is a comparison or "in"; `right` is a number for
    a quantity, a node set for a set relation or membership."""

    left: Expr
    op: str
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class RenderStmt:
    circuit: str
    circuit_span: Span
    path: Str
    span: Span


Statement = Union[SpecStmt, IncludeStmt, ModelStmt, Definition, CategoriesStmt, ExpectStmt, RenderStmt]


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One parsed file: its statements in order and its comments."""

    path: str
    text: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...]

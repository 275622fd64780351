"""Bind call arguments to a builtin signature and convert each to its IR value:
the domain conversions (datasets, metrics, node sets, sources, positions, parts,
ranks, labels, devices, paths) on top of the argument matching and primitive
conversions of `arguments`.
"""
from __future__ import annotations

import os
import re

from circ.compiler import ir
from circ.compiler.check import nodesets
from circ.compiler.check.arguments import PRIMITIVES, describe, expect_kind, integer, string
from circ.compiler.check.arguments import bind as bind_arguments
from circ.compiler.check.context import Context, Reported, Use
from circ.compiler.check.signatures import (
    LABEL_WORDS,
    PARTS,
    SOURCE_WORDS,
    SOURCES,
    Param,
)
from circ.compiler.diagnostics import did_you_mean, one_of
from circ.compiler.syntax import tree as s
from circ.compiler.syntax.spec_files import problem_in_path
from circ.compiler.syntax.printer import expr_text


def bind(ctx: Context, sig, args: tuple[s.Arg, ...], span: ir.Span, use: Use, label: str) -> dict:
    """The converted arguments of a call by parameter name (defaults filled in)."""
    return bind_arguments(ctx, sig, args, span, use, label, CONVERTERS)


def _path(ctx, e, param, use):
    value = string(ctx, e, param, use)
    if not value:
        ctx.fail("E301", "expected a file path, got an empty string", e.span)
    problem = problem_in_path(value)
    if problem is not None:
        ctx.fail("E114", f"the path {problem}", e.span)
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(use.folder, value))


def _path_or_name(ctx, e, param, use):
    resolved = _path(ctx, e, param, use)
    return resolved if os.path.exists(resolved) else e.value


def _word_orstring(ctx, e, what: str) -> str:
    if isinstance(e, (s.Name, s.Str)):
        return e.name if isinstance(e, s.Name) else e.value
    expect_kind(ctx, e, what)


def _choice(ctx, e, param: Param, use):
    value = _word_orstring(ctx, e, one_of(param.choices))
    if value not in param.choices:
        ctx.fail("E304", f"invalid value `{value}` for `{param.name}`; expected {one_of(param.choices)}",
                 e.span, did_you_mean(value, param.choices))
    return value


_DEVICE = re.compile(r"cpu|mps|auto|cuda(:\d+)?")


def _device(ctx, e, param, use):
    value = _word_orstring(ctx, e, "a device")
    if not _DEVICE.fullmatch(value):
        ctx.fail("E304", f"invalid device `{value}`", e.span,
                 "devices: cpu, cuda, cuda:N, mps or auto")
    return value


def _labels(ctx, e, param, use):
    if isinstance(e, s.Name):
        if e.name not in LABEL_WORDS:
            ctx.fail("E304", f"invalid label scheme `{e.name}`; expected a string of labels such "
                     f"as \"ABCD\" or {one_of(LABEL_WORDS)}", e.span, did_you_mean(e.name, LABEL_WORDS))
        return ir.Word(e.name)
    if isinstance(e, s.ListLit):
        labels = tuple(string(ctx, item, param, use) for item in e.items)
        value = labels
    else:
        value = string(ctx, e, param, use)
        labels = tuple(value)
    if len(labels) < 2 or len(set(labels)) != len(labels) or any(
            not label or label.split() != [label] for label in labels):
        ctx.fail("E304", f"labels {expr_text(e)} must be at least two different labels "
                 "without spaces", e.span, 'e.g. labels="ABCD" or labels=["A1", "B1"]')
    return value


# --------------------------------------------------------------------------- references
def _dataset(ctx, e, param, use):
    if not isinstance(e, s.Name):
        expect_kind(ctx, e, "a dataset name")
    ctx.lookup(e.name, e.span, use, ("dataset",))
    return e.name


def _datasets(ctx, e, param, use):
    items = e.items if isinstance(e, s.ListLit) else (e,)
    names, failed = [], False
    for item in items:
        try:
            name = _dataset(ctx, item, param, use)
            if name in names:
                ctx.fail("E304", f"dataset `{name}` is listed twice", item.span)
            names.append(name)
        except Reported:
            failed = True
    if failed:
        raise Reported()
    return tuple(names)


def _metric(ctx, e, param, use):
    if not isinstance(e, s.Name):
        expect_kind(ctx, e, "a metric name")
    ctx.lookup(e.name, e.span, use, ("metric",))
    return e.name


def _nodes(ctx, e, param: Param, use):
    return nodesets.evaluate(ctx, e, use, param.node_kinds)


def _source(ctx, e, param, use):
    if isinstance(e, s.Name) and e.name in SOURCE_WORDS:
        return ir.PatchSource(e.name, span=e.span)
    if isinstance(e, s.Name):
        ctx.lookup(e.name, e.span, use, ("dataset",), extra=SOURCE_WORDS + tuple(SOURCES))
        return ir.PatchSource("dataset", e.name, span=e.span)
    if isinstance(e, s.Call) and e.func in SOURCES:
        values = bind(ctx, SOURCES[e.func], e.args, e.func_span, use, f"{e.func}()")
        return ir.PatchSource(e.func, values["dataset"], values.get("seed"), span=e.span)
    expect_kind(ctx, e, "a patch source",
            "sources: a dataset, corrupt, zero, mean(DATASET) or resample(DATASET, seed=N)")


def _position(ctx, e, param, use):
    if isinstance(e, s.Name) and e.name == "each":
        ctx.fail("E375", "`each` reads every position on its own: only patch() and attribute() take `at=each`", e.span,
                 "use last, all, a named position or an index")
    return _single_position(ctx, e)


def _patch_position(ctx, e, param, use):
    if isinstance(e, s.Name) and e.name == "each":
        return ir.Position("each", span=e.span)
    if isinstance(e, s.ListLit):
        return ir.Position("each", items=_listed_positions(ctx, e), span=e.span)
    return _single_position(ctx, e)


def _listed_positions(ctx, e) -> tuple:
    if not e.items:
        ctx.fail("E375", "a list of positions names at least one", e.span)
    items = []
    for item in e.items:
        if isinstance(item, s.Name) and item.name in ("all", "each"):
            ctx.fail("E375", f"`{item.name}` is no single position; a list of positions takes last, "
                     "named positions and indices", item.span)
        position = _single_position(ctx, item)
        if position in items:
            ctx.fail("E375", f"position `{position}` is listed twice", item.span)
        items.append(position)
    return tuple(items)


def _single_position(ctx, e):
    if isinstance(e, s.Name):
        if e.name in ("last", "all"):
            return ir.Position(e.name, span=e.span)
        return ir.Position("named", name=e.name, span=e.span)
    if isinstance(e, s.Num) and isinstance(e.value, int):
        shape = ctx.shape
        if shape is not None and not -shape.n_ctx <= e.value < shape.n_ctx:
            ctx.fail("E403", f"position {e.value} is outside the model's context of "
                     f"{shape.n_ctx} tokens", e.span)
        return ir.Position("index", index=e.value, span=e.span)
    expect_kind(ctx, e, "a position (last, all, a named position or an integer index)")


def _parts(ctx, e, param, use):
    if not isinstance(e, s.ListLit):
        expect_kind(ctx, e, "a list of parts such as [q, k, v]")
    if not e.items:
        ctx.fail("E304", "parts must name at least one of q, k, v", e.span)
    seen = []
    for item in e.items:
        if not isinstance(item, s.Name) or item.name not in PARTS:
            ctx.fail("E304", f"invalid part {describe(item)}; expected q, k or v", item.span)
        if item.name in seen:
            ctx.fail("E304", f"part `{item.name}` is listed twice", item.span)
        seen.append(item.name)
    return tuple(p for p in PARTS if p in seen)


def _sizes(ctx, e, param, use):
    """Circuit sizes to measure a curve at: distinct positive counts, in increasing order."""
    if not isinstance(e, s.ListLit) or not e.items:
        expect_kind(ctx, e, "a list of circuit sizes such as [1, 2, 5, 10]")
    sizes = []
    for item in e.items:
        size = integer(ctx, item, param, use, minimum=1)
        if size in sizes:
            ctx.fail("E304", f"size {size} is listed twice", item.span)
        sizes.append(size)
    return tuple(sorted(sizes))


def _rank(ctx, item) -> int | str:
    if isinstance(item, s.Name) and item.name == "full":
        return "full"
    if not isinstance(item, s.Num) or not isinstance(item.value, int) or item.value < 1:
        ctx.fail("E304", f"invalid rank {describe(item)}; expected a positive integer or `full`",
                 item.span)
    if ctx.shape is not None and item.value > ctx.shape.d_head:
        ctx.fail("E404", f"rank {item.value} exceeds the head dimension {ctx.shape.d_head}",
                 item.span, f"ranks go up to {ctx.shape.d_head}, or `full`")
    return item.value


def _ranks(ctx, e, param, use):
    if not isinstance(e, s.ListLit) or not e.items:
        expect_kind(ctx, e, "a list of ranks such as [1, 2, 4, full]")
    ranks = []
    for item in e.items:
        rank = _rank(ctx, item)
        if rank in ranks:
            ctx.fail("E304", f"rank {rank} is listed twice", item.span)
        ranks.append(rank)
    numbers = sorted(r for r in ranks if r != "full")
    return tuple(numbers) + (("full",) if "full" in ranks else ())


def _rank_bound(ctx, bound, param, use):
    op, e = bound
    if op not in ("<=", "<", "=="):
        ctx.fail("E315", f"`rank {op} ...` is not a rank bound", e.span,
                 "write rank <= N, rank < N or rank == N")
    return op, _rank(ctx, e)


CONVERTERS = {
    **PRIMITIVES, "path": _path, "path_or_name": _path_or_name, "choice": _choice, "device": _device,
    "labels": _labels, "dataset": _dataset, "dataset_name": _dataset, "datasets": _datasets,
    "metric": _metric, "nodes": _nodes, "source": _source, "position": _position,
    "patch_position": _patch_position,
    "parts": _parts, "ranks": _ranks, "rank_bound": _rank_bound, "sizes": _sizes,
}

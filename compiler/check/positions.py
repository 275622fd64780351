"""Check every named position a spec reads against the datasets it is read on.

Positions are read by a metric's `at`, by patch() and path_patch()'s `at=` (each name
of a list too), by
attention()'s `query=` and by attends()/spread() in categories. A metric is read on
the dataset of every analysis that uses it (and on a subspace's `eval` datasets);
an attention term on the dataset of the attention analysis its categories read.

A name that no dataset of the spec has (nor a built-in: last, all, and for attends()
bos and self) is a misspelling: E321 at the name, with the closest name and the
valid ones. A name that some dataset has but one it is read on lacks is E322, at the
analysis or category that reads it there.
"""
from __future__ import annotations

from dataclasses import dataclass

from circ.compiler import ir
from circ.compiler.check.context import Context
from circ.compiler.check.dataset_positions import dataset_positions
from circ.compiler.check.signatures import ATTENTION_POSITIONS, BUILTIN_POSITIONS
from circ.compiler.diagnostics import did_you_mean


@dataclass(frozen=True)
class _Read:
    """One place a position name is read: the name and its span, the datasets it is
    read on, the built-ins valid there, and what reads it (for E322)."""

    name: str
    span: ir.Span
    datasets: tuple[str, ...]
    builtins: tuple[str, ...]
    reader: str
    reader_span: ir.Span


def check_positions(ctx: Context) -> None:
    known = {name: dataset_positions(d) for name, d in ctx.datasets.items()}
    everywhere = set().union(*(p for p in known.values() if p is not None))
    reported = set()
    for read in _reads(ctx):
        lacking = [d for d in read.datasets
                   if known.get(d) is not None and read.name not in known[d] | set(read.builtins)]
        if read.name in everywhere or read.name in read.builtins:
            for dataset in lacking:
                ctx.error("E322", f"{read.reader} reads position `{read.name}` on dataset "
                          f"`{dataset}`, which has no such position", read.reader_span,
                          _valid(dataset, known[dataset], read.builtins))
        elif read.span not in reported and (lacking or not read.datasets):
            reported.add(read.span)
            valid = _common(known, read.datasets or tuple(known)) | set(read.builtins)
            shown = lacking[0] if len(read.datasets) == 1 else None
            ctx.error("E321", f"unknown position `{read.name}`", read.span,
                      _hint(read.name, valid, shown))


def _reads(ctx: Context):
    users = {}
    for analysis in ctx.analyses.values():
        if analysis.metric is not None:
            users.setdefault(analysis.metric, []).append(analysis)
    for metric in ctx.metrics.values():
        if metric.position.kind == "named":
            for analysis in users.get(metric.name, []):
                datasets = (analysis.dataset,) + tuple(analysis.option("eval", ()))
                yield _Read(metric.position.name, metric.position.span, datasets, BUILTIN_POSITIONS,
                            f"metric `{metric.name}`, used by {_what(ctx, analysis)},", analysis.span)
            if metric.name not in users:
                yield _Read(metric.position.name, metric.position.span, (), BUILTIN_POSITIONS,
                            "", metric.span)
    for analysis in ctx.analyses.values():
        for option in ("position", "query"):
            position = analysis.option(option)
            for read in (position.items or (position,)) if isinstance(position, ir.Position) else ():
                if read.kind == "named":
                    yield _Read(read.name, read.span, (analysis.dataset,), BUILTIN_POSITIONS,
                                _what(ctx, analysis), read.span)
    for category in ctx.category_list:
        attention = ctx.analyses.get(category.attention) if category.attention else None
        datasets = (attention.dataset,) if attention is not None else ()
        for term in _attention_terms(category.rule):
            builtins = ATTENTION_POSITIONS if isinstance(term, ir.Attends) else ()
            yield _Read(term.position, term.position_span, datasets, builtins,
                        f"category `{category.circuit}.{category.name}`", term.span)


def _what(ctx: Context, analysis: ir.Analysis) -> str:
    if analysis.name in ctx.implicit:
        return f"this {analysis.kind}()"
    return f"analysis `{analysis.name}`"


def _attention_terms(rule):
    return (leaf for leaf in ir.rule_leaves(rule) if isinstance(leaf, (ir.Attends, ir.Spread)))


def _common(known: dict, datasets) -> set[str]:
    sets = [known[d] for d in datasets if known.get(d) is not None]
    return set.intersection(*map(set, sets)) if sets else set()


def _hint(name: str, valid: set[str], dataset: str | None) -> str:
    listed = ", ".join(sorted(valid)) or "none"
    where = f"positions of `{dataset}`" if dataset else "positions"
    if name in BUILTIN_POSITIONS + ATTENTION_POSITIONS:  # valid elsewhere, not here
        return f"`{name}` cannot be read here; {where}: {listed}"
    close = did_you_mean(name, valid)
    return f"{close} {where}: {listed}" if close else f"{where}: {listed}"


def _valid(dataset: str, positions: frozenset[str], builtins: tuple[str, ...]) -> str:
    return f"positions of `{dataset}`: " + (", ".join(sorted(positions | set(builtins))) or "none")

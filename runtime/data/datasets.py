"""Build a spec's datasets as lists of `Example`: generators, derivations of
generated datasets, and the JSONL / auto-circuit file readers."""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.data import generators
from circ.runtime.data.examples import Example
from circ.runtime.data.readers import read_autocircuit, read_jsonl

READERS = {"jsonl": read_jsonl, "autocircuit": read_autocircuit}


def _plain(value):
    """IR values as the generators take them (bare words become strings)."""
    if isinstance(value, ir.Word):
        return value.name
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _params(dataset: ir.Dataset) -> dict:
    return {key: _plain(value) for key, value in dataset.params}


def _steps(dataset: ir.Dataset, spec: ir.Spec) -> list[tuple[str, dict]]:
    """The chain of (kind, params) from the generated root to `dataset`."""
    chain = []
    current = dataset
    while current is not None:
        chain.append((current.kind, _params(current)))
        current = spec.dataset(current.base) if current.base else None
    return chain[::-1]


def build_examples(dataset: ir.Dataset, spec: ir.Spec) -> list[Example]:
    if dataset.kind in READERS:
        examples = READERS[dataset.kind](dataset.param("path"))
        limit = dataset.param("n")
        return examples[:limit] if limit is not None else examples
    steps = _steps(dataset, spec)
    kind, params = steps[-1]
    base = steps[:-1] or None
    return generators.build(kind, params, base)


def dataset_entry(dataset: ir.Dataset, examples: list[Example]) -> dict:
    """The results.json summary of a dataset."""
    params = {key: _plain(value) for key, value in dataset.params}
    entry = {"kind": dataset.kind, "n": len(examples), "params": params,
             "example": examples[0].prompt if examples else None,
             "answer": examples[0].answer if examples else None}
    if dataset.base:
        entry["base"] = dataset.base
    return entry

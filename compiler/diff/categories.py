"""Categories of two specs compared: added, removed, renamed, rule changed, reordered.

A category is keyed by its circuit and name, both read through the renames (so a
renamed circuit keeps its categories). Categories are tried in spec order and a node
takes the first whose rule holds, so their order within a circuit is part of the
meaning: a new order of the categories both sides share is `category_reordered`.
"""
from __future__ import annotations

from circ.compiler import ir
from circ.compiler.diff.change import Change, span_of
from circ.compiler.diff.renames import Renames, normalize


def _old_key(category: ir.Category, renames: Renames) -> tuple[str, str]:
    return (renames.get("circuits", category.circuit),
            renames.category(category.circuit, category.name))


def diff_categories(old_spec: ir.Spec, new_spec: ir.Spec, renames: Renames):
    old_by_key = {_old_key(c, renames): c for c in old_spec.categories}
    new_by_key = {(c.circuit, c.name): c for c in new_spec.categories}
    for key, old_item in old_by_key.items():
        if key in new_by_key and key[1] != old_item.name:
            yield Change("category_renamed", "categories", ".".join(key), None, old_item.name,
                         key[1], span_of(old_item), span_of(new_by_key[key]))
    for key, old_item in old_by_key.items():
        if key not in new_by_key:
            yield Change("category_removed", "categories", f"{key[0]}.{old_item.name}", None,
                         old_item, None, span_of(old_item))
    for key, new_item in new_by_key.items():
        if key not in old_by_key:
            yield Change("category_added", "categories", ".".join(key), None, None, new_item,
                         None, span_of(new_item))
    for key, new_item in new_by_key.items():
        old_item = old_by_key.get(key)
        if old_item is not None and normalize(old_item.rule, renames) != normalize(new_item.rule):
            yield Change("category_changed", "categories", ".".join(key), "rule", old_item.rule,
                         new_item.rule, span_of(old_item), span_of(new_item))
    yield from _reordered(old_spec, new_spec, renames)


def _reordered(old_spec: ir.Spec, new_spec: ir.Spec, renames: Renames):
    for circuit in dict.fromkeys(c.circuit for c in new_spec.categories):
        old_order = [_old_key(c, renames)[1] for c in old_spec.categories
                     if renames.get("circuits", c.circuit) == circuit]
        new_order = [c.name for c in new_spec.categories if c.circuit == circuit]
        shared = set(old_order) & set(new_order)
        old_shared = tuple(name for name in old_order if name in shared)
        new_shared = tuple(name for name in new_order if name in shared)
        if old_shared != new_shared:
            spans = [span_of(c) for c in new_spec.categories if c.circuit == circuit]
            yield Change("category_reordered", "categories", circuit, "order",
                         old_shared, new_shared, None, spans[0])

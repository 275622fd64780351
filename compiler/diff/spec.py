"""Semantic diff of two checked specs: an edit script of small frozen `Change`s.

`diff_specs(old, new)` compares the checked IR, not the text. Layout, comments,
the order of definitions, the order of nodes in a node list, of options and of
`and` / `or` operands are not changes; spans never are. A consistent rename (same
definition, new name, every reference updated) is one `*_renamed` change, and every
other comparison reads old references through the renames (see `renames.py`).
The order of categories within a circuit is meaningful (a node takes the first
category that matches), so a new order is reported as `category_reordered`.
"""
from __future__ import annotations

from dataclasses import fields

from circ.compiler import ir
from circ.compiler.diff.categories import diff_categories
from circ.compiler.diff.change import SINGULAR, Change, span_of
from circ.compiler.diff.describe import analysis_arguments, as_words, node_ids
from circ.compiler.diff.expectations import diff_expectations, diff_renders
from circ.compiler.diff.renames import Renames, find_renames, is_implicit, normalize


def _field_changes(kind, section, name, getters, old_item, new_item, old_norm, new_norm):
    for field_name, get in getters:
        if get(old_norm) != get(new_norm):
            yield Change(kind, section, name, field_name, get(old_item), get(new_item),
                         span_of(old_item), span_of(new_item))


def _node_set_changes(prefix, section, name, old_item, new_item, old_norm, new_norm):
    """Changes of a `nodes` field: added / removed node ids when both are lists."""
    if old_norm.nodes == new_norm.nodes:
        return
    if isinstance(old_norm.nodes, ir.NodeList) and isinstance(new_norm.nodes, ir.NodeList):
        old_set, new_set = set(old_norm.nodes.nodes), set(new_norm.nodes.nodes)
        spans = (span_of(old_item), span_of(new_item))
        if old_set - new_set:
            yield Change(f"{prefix}_nodes_removed", section, name, "nodes",
                         node_ids(old_set - new_set), None, *spans)
        if new_set - old_set:
            yield Change(f"{prefix}_nodes_added", section, name, "nodes",
                         None, node_ids(new_set - old_set), *spans)
        return
    yield Change(f"{prefix}_changed", section, name, "nodes", old_item.nodes, new_item.nodes,
                 span_of(old_item), span_of(new_item))


def _getter(attribute):
    return lambda item: getattr(item, attribute)


def _param_getter(key):
    return lambda item: dict(item.params).get(key)


def _dataset_fields(old_item, new_item):
    keys = sorted({key for key, _ in old_item.params} | {key for key, _ in new_item.params})
    return [("kind", _getter("kind")), ("base", _getter("base"))] + [
        (key, _param_getter(key)) for key in keys]


def _metric_fields(old_item, new_item):
    return [("kind", _getter("kind")), ("at", _getter("position")),
            ("normalized", _getter("normalized"))]


def _circuit_fields(old_item, new_item):
    return []  # a circuit is its node set, compared by _node_set_changes


def _analysis_fields(old_item, new_item):
    """The kind, then each argument by the name the spec writes it with (`target`,
    `ablate`, `at`, `effect`, `ranks`, ...); values shown as written (`[q, k]`)."""
    names = [name for item in (new_item, old_item) for name, _, _ in analysis_arguments(item)]
    return [("kind", _getter("kind"))] + [(name, _argument_getter(name))
                                          for name in dict.fromkeys(names)]


def _argument_getter(name):
    return lambda item: as_words(next(
        (value for key, value, _ in analysis_arguments(item) if key == name), None))


_FIELDS = {"datasets": _dataset_fields, "metrics": _metric_fields,
           "analyses": _analysis_fields, "circuits": _circuit_fields}


def _written(items) -> dict:
    """Items by name, without the implicit analyses the checker added: those are
    compared through what uses them (expectations), never by their made-up names."""
    return {item.name: item for item in items if not is_implicit(item.name)}


def _diff_section(section, old_spec, new_spec, renames: Renames):
    singular = SINGULAR[section]
    old_items = _written(getattr(old_spec, section))
    new_items = _written(getattr(new_spec, section))
    old_order = list(old_items)
    rename_pairs = sorted(((old, new) for old, new in renames.pairs(section) if old in old_items),
                          key=lambda pair: old_order.index(pair[0]))
    renamed_old = {old for old, _ in rename_pairs}
    renamed_new = {new for _, new in rename_pairs}
    for old_name, new_name in rename_pairs:
        yield Change(f"{singular}_renamed", section, new_name, None, old_name, new_name,
                     span_of(old_items[old_name]), span_of(new_items[new_name]))
    for name, item in old_items.items():
        if name not in new_items and name not in renamed_old:
            yield Change(f"{singular}_removed", section, name, None, item, None, span_of(item))
    for name, item in new_items.items():
        if name not in old_items and name not in renamed_new:
            yield Change(f"{singular}_added", section, name, None, None, item, None, span_of(item))
    for name, new_item in new_items.items():
        if name not in old_items:
            continue
        old_item = old_items[name]
        old_norm, new_norm = normalize(old_item, renames), normalize(new_item)
        getters = _FIELDS[section](old_item, new_item)
        yield from _field_changes(f"{singular}_changed", section, name, getters,
                                  old_item, new_item, old_norm, new_norm)
        if section in ("analyses", "circuits"):
            yield from _node_set_changes(singular, section, name, old_item, new_item,
                                         old_norm, new_norm)


def _diff_model(old_spec: ir.Spec, new_spec: ir.Spec):
    old_model, new_model = old_spec.model, new_spec.model
    for model_field in fields(ir.Model):
        if model_field.name == "span":
            continue
        old_value = getattr(old_model, model_field.name)
        new_value = getattr(new_model, model_field.name)
        if old_value != new_value:
            yield Change("model_changed", "model", "model", model_field.name, old_value, new_value,
                         span_of(old_model), span_of(new_model))
    if old_spec.shape != new_spec.shape:
        yield Change("model_changed", "model", "model", "shape", old_spec.shape, new_spec.shape,
                     span_of(old_model), span_of(new_model))


def _diff_spec_name(old_spec: ir.Spec, new_spec: ir.Spec):
    if old_spec.name != new_spec.name:
        yield Change("spec_renamed", "spec", "spec", "name", old_spec.name, new_spec.name,
                     span_of(old_spec), span_of(new_spec))


def diff_specs(old: ir.Spec, new: ir.Spec) -> tuple[Change, ...]:
    """The edit script from `old` to `new`, grouped by section in SECTION_ORDER."""
    renames = find_renames(old, new)
    changes = [*_diff_spec_name(old, new), *_diff_model(old, new)]
    for section in ("datasets", "metrics", "analyses", "circuits"):
        changes.extend(_diff_section(section, old, new, renames))
    changes.extend(diff_categories(old, new, renames))
    changes.extend(diff_expectations(old, new, renames))
    changes.extend(diff_renders(old, new, renames))
    return tuple(changes)

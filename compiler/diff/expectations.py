"""Expectations and renders of two specs, paired up and compared.

Expectations have no names, so they are paired in passes: first the identical ones,
then those reading the same quantity (whose threshold or comparison changed), then
those reading an analysis with the same definition (an inline analysis given a
name, or the reverse), then those reading the same analysis, accessor and node or
dataset under another numeric bound (`rank <= 4` to `rank <= 2`), then inline
analyses of the same kind over the same nodes. Numbers read from node sets or
datasets (`count(output)`, `accuracy(clean)`), memberships (`L1.H0 in output`) and
set relations (`output <= circuit`) pair when they read the same things (both sides
of a membership or relation, read through renames), whatever their operator and
threshold. What is left was added or removed.

An expectation written with an inline analysis (`expect faithfulness(output, ...)
>= 0.8`) reads an implicit analysis named after its position (`_expect1_...`); it is
compared, and shown, by the inline analysis's definition, never by that name.
"""
from __future__ import annotations

from dataclasses import replace

from circ.compiler import ir
from circ.compiler.diff.change import Change, span_of
from circ.compiler.diff.describe import describe
from circ.compiler.diff.renames import NO_RENAMES, Renames, is_implicit, normalize


def pair_up(old_items, new_items, key_functions):
    """Pair old and new items by each key function in turn (called with the item and
    whether it is an old one); returns (pairs, unpaired old, unpaired new)."""
    old_left, new_left, pairs = list(old_items), list(new_items), []
    for key in key_functions:
        for old_item in list(old_left):
            match = next((new_item for new_item in new_left
                          if key(old_item, True) == key(new_item, False)), None)
            if match is not None:
                pairs.append((old_item, match))
                old_left.remove(old_item)
                new_left.remove(match)
    return pairs, old_left, new_left


def _analysis(spec: ir.Spec, name: str) -> ir.Analysis | None:
    return next((a for a in spec.analyses if a.name == name), None)


class _Side:
    """Quantities of one spec's expectations, as comparison keys and display text."""

    def __init__(self, spec: ir.Spec, renames: Renames):
        self.spec, self.renames = spec, renames

    def definition(self, quantity: ir.Quantity):
        analysis = _analysis(self.spec, quantity.analysis)
        if analysis is None:
            return self.renames.selectable(quantity.analysis)
        return normalize(replace(analysis, name=""), self.renames)

    def reference(self, quantity: ir.Quantity):
        if is_implicit(quantity.analysis):
            return self.definition(quantity)
        return self.renames.selectable(quantity.analysis)

    def quantity_key(self, expectation: ir.Expectation):
        """What an expectation reads: for a number, the quantity; for membership and
        relations, both sides (their operator is compared apart)."""
        if not isinstance(expectation.left, ir.Quantity):
            normal = normalize(expectation, self.renames)
            sides = (normal.left,) if expectation.form == "number" else (normal.left, normal.right)
            return (expectation.form,) + sides
        quantity = normalize(expectation.left, self.renames)
        return self.reference(expectation.left), quantity.accessor, quantity.args

    def definition_key(self, expectation: ir.Expectation):
        if not isinstance(expectation.left, ir.Quantity):
            return self.quantity_key(expectation)
        quantity = normalize(expectation.left, self.renames)
        return self.definition(expectation.left), quantity.accessor, quantity.args

    def bound_key(self, expectation: ir.Expectation):
        """The quantity without its numeric arguments (`rank <= 4`): the same read
        of the same analysis under another bound."""
        if not isinstance(expectation.left, ir.Quantity):
            return self.quantity_key(expectation)
        reference, accessor, args = self.quantity_key(expectation)
        return reference, accessor, tuple((key, value) for key, value in args
                                          if isinstance(value, (str, ir.Word, tuple)))

    def inline_target_key(self, expectation: ir.Expectation):
        """For an inline analysis: its kind, node set and accessor, so that changing
        its other arguments (`ablate=zero`) pairs it with the old one."""
        if not isinstance(expectation.left, ir.Quantity):
            return "other", self.quantity_key(expectation)
        analysis = _analysis(self.spec, expectation.left.analysis)
        if analysis is None or not is_implicit(analysis.name):
            return "named", self.bound_key(expectation)
        return ("inline", analysis.kind, normalize(analysis.nodes, self.renames),
                expectation.left.accessor)

    def text(self, left) -> str:
        """The left side as a reviewer reads it."""
        if not isinstance(left, ir.Quantity):
            return describe(left)
        analysis = _analysis(self.spec, left.analysis)
        if analysis is None or not is_implicit(left.analysis):
            return describe(left)
        if left.accessor == "value" and not left.args:
            return describe(analysis)  # `expect faithfulness(...) >= 0.8`
        return describe(replace(left, analysis=describe(analysis)))


def diff_expectations(old_spec: ir.Spec, new_spec: ir.Spec, renames: Renames):
    old, new = _Side(old_spec, renames), _Side(new_spec, NO_RENAMES)

    def side(is_old):
        return old if is_old else new

    keys = (
        lambda e, is_old: (side(is_old).quantity_key(e), e.op,
                           e.right if e.form == "number" else None),
        lambda e, is_old: side(is_old).quantity_key(e),
        lambda e, is_old: side(is_old).definition_key(e),
        lambda e, is_old: side(is_old).bound_key(e),
        lambda e, is_old: side(is_old).inline_target_key(e),
    )
    pairs, removed, added = pair_up(old_spec.expectations, new_spec.expectations, keys)
    for item in removed:
        yield Change("expectation_removed", "expectations", old.text(item.left), None,
                     f"{old.text(item.left)} {item.op} {describe(item.right)}", None,
                     span_of(item))
    for item in added:
        yield Change("expectation_added", "expectations", new.text(item.left), None, None,
                     f"{new.text(item.left)} {item.op} {describe(item.right)}", None,
                     span_of(item))
    for old_item, new_item in pairs:
        name, spans = new.text(new_item.left), (span_of(old_item), span_of(new_item))
        if old.quantity_key(old_item) != new.quantity_key(new_item):
            yield Change("expectation_changed", "expectations", name, "quantity",
                         old.text(old_item.left), name, *spans)
        if old_item.op != new_item.op:
            yield Change("expectation_changed", "expectations", name, "comparison",
                         old_item.op, new_item.op, *spans)
        if old_item.form == "number" and old_item.right != new_item.right:
            yield Change("expectation_changed", "expectations", name, "threshold",
                         old_item.right, new_item.right, *spans)


def diff_renders(old_spec: ir.Spec, new_spec: ir.Spec, renames: Renames):
    def circuit(render, is_old):
        return renames.get("circuits", render.circuit) if is_old else render.circuit

    pairs, removed, added = pair_up(
        old_spec.renders, new_spec.renders,
        (lambda r, is_old: (circuit(r, is_old), r.path), circuit))
    for item in removed:
        yield Change("render_removed", "renders", item.circuit, None, item.path, None,
                     span_of(item))
    for item in added:
        yield Change("render_added", "renders", item.circuit, None, None, item.path, None,
                     span_of(item))
    for old_item, new_item in pairs:
        if old_item.path != new_item.path:
            yield Change("render_changed", "renders", new_item.circuit, "path", old_item.path,
                         new_item.path, span_of(old_item), span_of(new_item))

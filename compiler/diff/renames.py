"""Renames between two checked specs, and references rewritten through them.

A dataset, metric, analysis, circuit or category (within its circuit) that
disappears under one name and appears under another with the same definition (once
its own references are read through the renames found so far) was renamed.
`find_renames` finds these by iterating to a fixed point, so chains such as
`moved = clean.move_answer(...)` with both names changed are found in any order;
implicit analyses only ever match implicit ones.
`normalize(obj, renames)` rewrites the references of an old-side IR fragment to the
new names and puts order-free parts (node lists, options, `and` / `or` operands) in a
canonical order, so that `==` then means "same meaning".
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from circ.compiler import ir

SECTIONS = ("datasets", "metrics", "analyses", "circuits")
# Categories are renamed within their circuit: keyed (old circuit, old name).
CATEGORIES = "categories"

# Analysis options and quantity arguments whose values name datasets.
DATASET_KEYS = frozenset({"dataset", "eval", "fit", "on", "target"})


@dataclass(frozen=True)
class Renames:
    """Old name -> new name, per kind of definition."""

    maps: dict = field(default_factory=lambda: {key: {} for key in SECTIONS + (CATEGORIES,)})

    def get(self, section: str, name):
        if name is None:
            return None
        return self.maps[section].get(name, name)

    def with_rename(self, section: str, old: str, new: str) -> "Renames":
        maps = {key: dict(value) for key, value in self.maps.items()}
        maps[section][old] = new
        return Renames(maps)

    def pairs(self, section: str) -> tuple[tuple[str, str], ...]:
        return tuple(self.maps[section].items())

    def category(self, circuit: str, name: str) -> str:
        """The new name of category `name` of the old circuit `circuit`."""
        return self.maps[CATEGORIES].get((circuit, name), name)

    def selectable(self, name: str) -> str:
        """A name that may be an analysis or a circuit (selections, quantities)."""
        if name in self.maps["analyses"]:
            return self.maps["analyses"][name]
        return self.maps["circuits"].get(name, name)


NO_RENAMES = Renames()


def _dataset_value(value, renames: Renames):
    if isinstance(value, tuple):
        return tuple(_dataset_value(item, renames) for item in value)
    if isinstance(value, ir.Word):
        return ir.Word(renames.get("datasets", value.name))
    if isinstance(value, str):
        return renames.get("datasets", value)
    return value


def _pairs(pairs, renames: Renames):
    rewritten = ((key, _dataset_value(value, renames) if key in DATASET_KEYS else value)
                 for key, value in pairs)
    return tuple(sorted(rewritten, key=lambda pair: pair[0]))


def _parts(parts, renames: Renames):
    return tuple(sorted((normalize(part, renames) for part in parts), key=repr))


def normalize(obj, renames: Renames = NO_RENAMES):
    """`obj` with references renamed and order-free parts in canonical order."""
    if isinstance(obj, ir.NodeList):
        return replace(obj, nodes=tuple(sorted(set(obj.nodes))))
    if isinstance(obj, ir.Combine):
        return replace(obj, left=normalize(obj.left, renames), right=normalize(obj.right, renames))
    if isinstance(obj, ir.Select):
        category = obj.category and renames.category(obj.analysis, obj.category)
        return replace(obj, analysis=renames.selectable(obj.analysis), category=category,
                       where=normalize(obj.where, renames), grow=normalize(obj.grow, renames))
    if isinstance(obj, ir.Field):
        return replace(obj, name=renames.get("analyses", obj.name))
    if isinstance(obj, ir.Abs):
        return replace(obj, term=normalize(obj.term, renames))
    if isinstance(obj, ir.Arith):
        return replace(obj, left=normalize(obj.left, renames), right=normalize(obj.right, renames))
    if isinstance(obj, ir.Compare):
        return replace(obj, left=normalize(obj.left, renames), right=normalize(obj.right, renames))
    if isinstance(obj, (ir.And, ir.Or)):
        return replace(obj, parts=_parts(obj.parts, renames))
    if isinstance(obj, ir.Not):
        return replace(obj, rule=normalize(obj.rule, renames))
    if isinstance(obj, ir.PatchSource):
        return replace(obj, dataset=renames.get("datasets", obj.dataset))
    if isinstance(obj, ir.Dataset):
        return replace(obj, base=renames.get("datasets", obj.base),
                       params=tuple(sorted(obj.params, key=lambda pair: pair[0])))
    if isinstance(obj, ir.Analysis):
        return replace(
            obj, nodes=normalize(obj.nodes, renames), dataset=renames.get("datasets", obj.dataset),
            metric=renames.get("metrics", obj.metric), source=normalize(obj.source, renames),
            receivers=normalize(obj.receivers, renames), options=_pairs(obj.options, renames))
    if isinstance(obj, ir.Circuit):
        return replace(obj, nodes=normalize(obj.nodes, renames))
    if isinstance(obj, ir.Category):
        return replace(obj, circuit=renames.get("circuits", obj.circuit),
                       rule=normalize(obj.rule, renames))
    if isinstance(obj, ir.Quantity):
        return replace(obj, analysis=renames.selectable(obj.analysis),
                       args=_pairs(obj.args, renames))
    if isinstance(obj, ir.Count):
        return replace(obj, nodes=normalize(obj.nodes, renames))
    if isinstance(obj, ir.Accuracy):
        return replace(obj, dataset=renames.get("datasets", obj.dataset))
    if isinstance(obj, ir.GrownFaithfulness):
        return replace(obj, circuit=renames.get("circuits", obj.circuit))
    if isinstance(obj, ir.Growth):
        return replace(obj, dataset=renames.get("datasets", obj.dataset),
                       metric=renames.get("metrics", obj.metric), source=normalize(obj.source, renames))
    if isinstance(obj, ir.MetricMean):
        return replace(obj, metric=renames.get("metrics", obj.metric),
                       dataset=renames.get("datasets", obj.dataset))
    if isinstance(obj, ir.Expectation):
        return replace(obj, left=normalize(obj.left, renames), right=normalize(obj.right, renames))
    if isinstance(obj, ir.Render):
        return replace(obj, circuit=renames.get("circuits", obj.circuit))
    return obj


def is_implicit(name: str) -> bool:
    """Analyses the checker adds (`_expect2_faithfulness`, `_attn_output`) start with
    an underscore, which a name written in a spec cannot."""
    return name.startswith("_")


def _same_definition(old_item, new_item, renames: Renames) -> bool:
    return normalize(replace(old_item, name=new_item.name), renames) == normalize(new_item)


def _one_more_definition_rename(old_spec: ir.Spec, new_spec: ir.Spec, renames: Renames):
    for section in SECTIONS:
        old_items = getattr(old_spec, section)
        new_items = getattr(new_spec, section)
        old_names = {item.name for item in old_items}
        new_names = {item.name for item in new_items}
        unavailable = old_names | set(renames.maps[section].values())
        candidates = [item for item in new_items if item.name not in unavailable]
        for old_item in old_items:
            if old_item.name in new_names or old_item.name in renames.maps[section]:
                continue
            for new_item in candidates:
                if is_implicit(old_item.name) != is_implicit(new_item.name):
                    continue
                trial = renames.with_rename(section, old_item.name, new_item.name)
                if _same_definition(old_item, new_item, trial):
                    return trial
    return None


def _one_more_category_rename(old_spec: ir.Spec, new_spec: ir.Spec, renames: Renames):
    new_keys = {(c.circuit, c.name) for c in new_spec.categories}
    old_keys = {(renames.get("circuits", c.circuit), c.name) for c in old_spec.categories}
    done = renames.maps[CATEGORIES]
    taken = {(renames.get("circuits", circuit), name) for (circuit, _), name in done.items()}
    for old_item in old_spec.categories:
        circuit = renames.get("circuits", old_item.circuit)
        if (circuit, old_item.name) in new_keys or (old_item.circuit, old_item.name) in done:
            continue
        rule = normalize(old_item.rule, renames)
        for new_item in new_spec.categories:
            key = (new_item.circuit, new_item.name)
            if (new_item.circuit == circuit and key not in old_keys and key not in taken
                    and normalize(new_item.rule) == rule):
                return renames.with_rename(CATEGORIES, (old_item.circuit, old_item.name),
                                           new_item.name)
    return None


def find_renames(old_spec: ir.Spec, new_spec: ir.Spec) -> Renames:
    """Every consistent rename from `old_spec` to `new_spec`."""
    renames = NO_RENAMES
    while True:
        found = (_one_more_definition_rename(old_spec, new_spec, renames)
                 or _one_more_category_rename(old_spec, new_spec, renames))
        if found is None:
            return renames
        renames = found

"""Diff of two results.json objects (docs/results.md): what the numbers now say.

`diff_results(old, new, threshold)` reports, per analysis, every number that moved by
more than `threshold` (absolute) — node values, nested values such as a subspace
head's per-dataset, per-rank recovery (keys joined by "/": `L1.H2/clean/2`), and
scalar fields such as `total` or `baseline/clean` — plus values present on one side
only, settings that differ (dataset, metric, source, ...), analyses added or removed,
nodes entering or leaving each circuit, category changes, circuit edges, and
expectations that flipped between pass and fail. Faithfulness values are always
listed before and after, changed or not. Run timing is never a difference, nor are
standard errors (they describe the values compared), nor measured numbers in the
setup (a dataset's clean metric means) that moved less than `threshold`.

An analysis or circuit renamed is one `analysis_renamed` / `circuit_renamed` change,
as in the spec diff, and is then compared under its new name: the renames the spec
diff found when given, else (results alone) a name that left and a name that came
with the same setup (analyses: every non-numeric field; circuits: the nodes and
their categories).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

DEFAULT_THRESHOLD = 0.01

# Fields of an analysis that are not compared: the per-node values are compared leaf
# by leaf, and attention `patterns` and `explorer` are raw rows of single prompts,
# shown in reports; standard errors describe the values compared, and `line` is where
# the spec wrote the analysis.
_NOT_SETTINGS = frozenset({"values", "patterns", "explorer", "stderr", "line"})
_SETUP_SECTIONS = ("spec", "model", "run", "datasets", "metrics")
# The spec's path depends on where it was run from; a dataset's `example` is its first
# prompt, already determined by its parameters.
_SETUP_IGNORED = frozenset({"path", "example"})


class ResultsError(ValueError):
    """A results file that is not a circ results.json object."""


@dataclass(frozen=True)
class ResultChange:
    """One difference between two results.

    kind: setup_changed, analysis_added, analysis_removed, analysis_renamed, setting_changed,
    value_changed, value_added, value_removed, faithfulness_changed, circuit_added,
    circuit_removed, node_entered, node_left, category_changed, edge_added,
    edge_removed, circuit_renamed, expectation_flipped, expectation_value_changed,
    expectation_added, expectation_removed.
    subject: the analysis, circuit or expectation text ("model", "spec", "run" for
    setup); key: the node id, nested value key or field, or None.
    """

    kind: str
    subject: str
    key: str | None = None
    old: object = None
    new: object = None

    @property
    def delta(self) -> float | None:
        if _is_number(self.old) and _is_number(self.new):
            return self.new - self.old
        return None


@dataclass(frozen=True)
class Faithfulness:
    """A faithfulness analysis's value on each side (None where absent)."""

    name: str
    old: float | None
    new: float | None


@dataclass(frozen=True)
class ResultsDiff:
    changes: tuple[ResultChange, ...]
    faithfulness: tuple[Faithfulness, ...]
    threshold: float


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def natural_key(text: str):
    """Sort `L10.H2` after `L2.H10`: runs of ASCII digits compare as numbers (by
    length, then digits, so that a run of any length compares without conversion)."""
    return [(0, len(part.lstrip("0")), part.lstrip("0")) if part[:1] in _DIGITS else (1, 0, part)
            for part in re.split(r"([0-9]+)", str(text))]


_DIGITS = frozenset("0123456789")


def moved_beyond(old, new, threshold: float) -> bool:
    """Whether two values differ: numbers by more than `threshold`, others at all."""
    if _is_number(old) and _is_number(new):
        if math.isnan(old) or math.isnan(new):
            return math.isnan(old) != math.isnan(new)
        return abs(new - old) > threshold
    return old != new


def _leaves(value, prefix: tuple = ()):
    """(key path, leaf) pairs of nested dicts; lists and scalars are leaves."""
    if isinstance(value, dict):
        for key in sorted(value, key=natural_key):
            yield from _leaves(value[key], prefix + (str(key),))
    else:
        yield prefix, value


def _is_numeric_tree(value) -> bool:
    return all(_is_number(leaf) for _, leaf in _leaves(value)) and (
        _is_number(value) or isinstance(value, dict))


def _compare_leaves(kind_prefix, subject, old_tree, new_tree, threshold, prefix=()):
    old_leaves = dict(_leaves(old_tree, prefix))
    new_leaves = dict(_leaves(new_tree, prefix))
    paths = sorted(old_leaves.keys() | new_leaves.keys(), key=lambda p: natural_key("/".join(p)))
    for path in paths:
        key = "/".join(path)
        if path not in new_leaves:
            yield ResultChange(f"{kind_prefix}_removed", subject, key, old_leaves[path], None)
        elif path not in old_leaves:
            yield ResultChange(f"{kind_prefix}_added", subject, key, None, new_leaves[path])
        elif moved_beyond(old_leaves[path], new_leaves[path], threshold):
            yield ResultChange(f"{kind_prefix}_changed", subject, key,
                               old_leaves[path], new_leaves[path])


def _diff_analysis(name, old, new, threshold):
    fields = sorted((old.keys() | new.keys()) - _NOT_SETTINGS)
    for field in fields:
        old_value, new_value = old.get(field), new.get(field)
        if _is_numeric_tree(old_value) and _is_numeric_tree(new_value):
            if old.get("kind") == "faithfulness" and field == "value":
                if moved_beyond(old_value, new_value, threshold):
                    yield ResultChange("faithfulness_changed", name, field, old_value, new_value)
                continue
            yield from _compare_leaves("value", name, old_value, new_value, threshold, (field,))
        elif old_value != new_value:
            yield ResultChange("setting_changed", name, field, old_value, new_value)
    yield from _compare_leaves("value", name, old.get("values", {}), new.get("values", {}),
                               threshold)


def _require(condition: bool, label: str, what: str) -> None:
    if not condition:
        raise ResultsError(f"{label}: not a circ results file ({what})")


def _validate(results, label: str) -> None:
    """Check the structure this diff reads, so that bad input is one clear error."""
    _require(isinstance(results, dict), label, "the top level must be a JSON object")
    analyses = results.get("analyses")
    _require(isinstance(analyses, dict), label, "no 'analyses' object")
    for name, analysis in analyses.items():
        _require(isinstance(analysis, dict), label, f"analysis '{name}' must be an object")
        _require(isinstance(analysis.get("values", {}), dict), label,
                 f"'values' of analysis '{name}' must be an object")
    for section in _SETUP_SECTIONS:
        _require(isinstance(results.get(section) or {}, dict), label,
                 f"'{section}' must be an object")
    circuits = results.get("circuits", {})
    _require(isinstance(circuits, dict), label, "'circuits' must be an object")
    for name, circuit in circuits.items():
        _require(isinstance(circuit, dict), label, f"circuit '{name}' must be an object")
        for part, needed in (("nodes", ("id",)), ("edges", ("src", "dst"))):
            items = circuit.get(part, [])
            _require(isinstance(items, list) and all(
                isinstance(item, dict) and all(isinstance(item.get(key), str) for key in needed)
                and isinstance(item.get("category", ""), (str, type(None)))
                and isinstance(item.get("part", ""), (str, type(None))) for item in items),
                label, f"'{part}' of circuit '{name}' must be a list of objects with "
                + " and ".join(f"'{key}'" for key in needed))
    expectations = results.get("expectations", [])
    _require(isinstance(expectations, list)
             and all(isinstance(item, dict) for item in expectations),
             label, "'expectations' must be a list of objects")
    _require(all(isinstance(item.get("text"), str) and isinstance(item.get("passed", False), bool)
                 and (item.get("value") is None or isinstance(item.get("value"), bool)
                      or _is_number(item.get("value")))
                 for item in expectations),
             label, "each expectation needs a 'text', 'passed' true or false and a 'value' that is a "
             "number, or true or false for a set relation or membership")


def _without(tree, ignored: frozenset):
    if not isinstance(tree, dict):
        return tree
    return {key: value for key, value in tree.items() if key not in ignored}


def _diff_setup(old: dict, new: dict, threshold: float):
    """Spec, model, run, dataset and metric descriptions, compared exactly, except
    measured numbers (a dataset's clean metric means, any float) within `threshold`."""
    for section in _SETUP_SECTIONS:
        old_part, new_part = old.get(section) or {}, new.get(section) or {}
        if section in ("datasets", "metrics"):
            old_part = {name: _without(item, _SETUP_IGNORED) for name, item in old_part.items()}
            new_part = {name: _without(item, _SETUP_IGNORED) for name, item in new_part.items()}
        else:
            old_part = _without(old_part, _SETUP_IGNORED)
            new_part = _without(new_part, _SETUP_IGNORED)
        for change in _compare_leaves("setup", section, old_part, new_part, 0.0):
            measured = isinstance(change.old, float) or isinstance(change.new, float)
            if not measured or change.delta is None or moved_beyond(change.old, change.new, threshold):
                yield change


def _analysis_setup(analysis: dict) -> dict:
    return {key: value for key, value in analysis.items()
            if key not in _NOT_SETTINGS and not _is_numeric_tree(value)}


def _circuit_setup(circuit: dict) -> list:
    return sorted((str(node.get("id")), str(node.get("category"))) for node in circuit.get("nodes", ()))


def _renames(old: dict, new: dict, given: dict, setup) -> dict:
    """old name -> new name among names on one side only: those in `given` (from the
    spec diff), then pairs whose `setup` is the same and matches no other name."""
    pairs = {o: n for o, n in given.items() if o in old and o not in new and n in new and n not in old}
    added = [n for n in sorted(new, key=natural_key) if n not in old and n not in pairs.values()]
    for name in sorted(old, key=natural_key):
        if name in new or name in pairs:
            continue
        same = [n for n in added if setup(new[n]) == setup(old[name])]
        if len(same) == 1 and sum(setup(old[o]) == setup(old[name]) for o in old if o not in new) == 1:
            pairs[name] = same[0]
            added.remove(same[0])
    return pairs


def _renamed(kind: str, old: dict, pairs: dict):
    """The rename changes, and `old` with its renamed entries under their new names."""
    changes = [ResultChange(kind, new_name, None, old_name, new_name)
               for old_name, new_name in sorted(pairs.items(), key=lambda p: natural_key(p[1]))]
    return changes, {pairs.get(name, name): value for name, value in old.items()}


def _diff_analyses(old: dict, new: dict, threshold: float):
    for name in sorted(old.keys() | new.keys(), key=natural_key):
        if name not in new:
            yield ResultChange("analysis_removed", name, None, old[name].get("kind"), None)
        elif name not in old:
            yield ResultChange("analysis_added", name, None, None, new[name].get("kind"))
        else:
            yield from _diff_analysis(name, old[name], new[name], threshold)


def _edge_id(edge: dict) -> str:
    part = f".{edge['part']}" if edge.get("part") else ""
    return f"{edge.get('src')}->{edge.get('dst')}{part}"


def _diff_circuit(name: str, old: dict, new: dict):
    old_nodes = {node["id"]: node for node in old.get("nodes", ())}
    new_nodes = {node["id"]: node for node in new.get("nodes", ())}
    for node_id in sorted(old_nodes.keys() | new_nodes.keys(), key=natural_key):
        if node_id not in new_nodes:
            yield ResultChange("node_left", name, node_id, old_nodes[node_id].get("category"), None)
        elif node_id not in old_nodes:
            yield ResultChange("node_entered", name, node_id, None,
                               new_nodes[node_id].get("category"))
        elif old_nodes[node_id].get("category") != new_nodes[node_id].get("category"):
            yield ResultChange("category_changed", name, node_id,
                               old_nodes[node_id].get("category"),
                               new_nodes[node_id].get("category"))
    old_edges = {_edge_id(edge) for edge in old.get("edges", ())}
    new_edges = {_edge_id(edge) for edge in new.get("edges", ())}
    for edge in sorted(old_edges - new_edges, key=natural_key):
        yield ResultChange("edge_removed", name, edge)
    for edge in sorted(new_edges - old_edges, key=natural_key):
        yield ResultChange("edge_added", name, edge)


def _diff_circuits(old: dict, new: dict):
    for name in sorted(old.keys() | new.keys(), key=natural_key):
        if name not in new:
            yield ResultChange("circuit_removed", name)
        elif name not in old:
            yield ResultChange("circuit_added", name)
        yield from _diff_circuit(name, old.get(name, {}), new.get(name, {}))


def _diff_expectations(old: list, new: list, threshold: float):
    old_by_text = {item.get("text"): item for item in old}
    new_by_text = {item.get("text"): item for item in new}
    for text in old_by_text:
        if text not in new_by_text:
            yield ResultChange("expectation_removed", text, None, old_by_text[text].get("passed"))
    for text, new_item in new_by_text.items():
        old_item = old_by_text.get(text)
        if old_item is None:
            yield ResultChange("expectation_added", text, None, None, new_item.get("passed"))
            continue
        if old_item.get("passed") != new_item.get("passed"):
            yield ResultChange("expectation_flipped", text, "passed", old_item.get("passed"),
                               new_item.get("passed"))
        if moved_beyond(old_item.get("value"), new_item.get("value"), threshold):
            yield ResultChange("expectation_value_changed", text, "value", old_item.get("value"),
                               new_item.get("value"))


def _faithfulness(old: dict, new: dict) -> tuple[Faithfulness, ...]:
    names = sorted({name for side in (old, new) for name, analysis in side.items()
                    if analysis.get("kind") == "faithfulness"}, key=natural_key)
    return tuple(Faithfulness(name, old.get(name, {}).get("value"), new.get(name, {}).get("value"))
                 for name in names)


def diff_results(old: dict, new: dict, threshold: float = DEFAULT_THRESHOLD,
                 labels: tuple[str, str] = ("old", "new"), renames: dict | None = None) -> ResultsDiff:
    """Differences from results `old` to `new`; raises ResultsError on a malformed one.
    `renames`: {"analyses": {old: new}, "circuits": {old: new}} as the spec diff found them."""
    if not _is_number(threshold) or threshold < 0 or math.isnan(threshold):
        raise ResultsError(f"threshold must be a number >= 0, not {threshold!r}")
    for results, label in zip((old, new), labels):
        _validate(results, label)
    renames = renames or {}
    new_analyses, new_circuits = new["analyses"], new.get("circuits", {})
    analysis_renames, old_analyses = _renamed("analysis_renamed", old["analyses"], _renames(
        old["analyses"], new_analyses, renames.get("analyses", {}), _analysis_setup))
    circuit_renames, old_circuits = _renamed("circuit_renamed", old.get("circuits", {}), _renames(
        old.get("circuits", {}), new_circuits, renames.get("circuits", {}), _circuit_setup))
    changes = [
        *_diff_setup(old, new, threshold),
        *analysis_renames,
        *_diff_analyses(old_analyses, new_analyses, threshold),
        *circuit_renames,
        *_diff_circuits(old_circuits, new_circuits),
        *_diff_expectations(old.get("expectations", []), new.get("expectations", []), threshold),
    ]
    return ResultsDiff(tuple(changes), _faithfulness(old_analyses, new_analyses), threshold)

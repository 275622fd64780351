"""A run's results as Python objects: analyses as rows (and pandas tables), circuits
with their members, categories and edges, expectations; saved as the files
`circ run` writes, read back with `circ.load_results`, shown inline in Jupyter.

The dictionary under `Results.data` is exactly results.json (docs/results.md)."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path


PER_PROMPT_FILE = "per_prompt.json"  # `circ run --per-prompt`'s side file (docs/results.md)


@dataclass(frozen=True)
class Expectation:
    """One `expect` line and what the run found."""

    text: str
    line: int | None
    value: object
    op: str | None
    threshold: object
    passed: bool
    reason: str | None = None
    detail: str | None = None  # membership and set relations: what was found

    @classmethod
    def from_entry(cls, entry: dict) -> "Expectation":
        return cls(str(entry.get("text", "")), entry.get("line"), entry.get("value"), entry.get("op"),
                   entry.get("threshold"), bool(entry.get("passed")), entry.get("reason"),
                   entry.get("detail"))


class AnalysisResult:
    """One analysis of the run: its kind, dataset, metric and values by node id."""

    def __init__(self, name: str, entry: dict, per_prompt: dict | None = None):
        self.name = name
        self.entry = entry
        self.per_prompt = dict(per_prompt or {})  # node id -> [value of each prompt], when the run kept them

    @property
    def kind(self) -> str:
        return self.entry.get("kind", "")

    @property
    def dataset(self) -> str | None:
        return self.entry.get("dataset")

    @property
    def metric(self) -> str | None:
        return self.entry.get("metric")

    @property
    def values(self) -> dict:
        """Node id (or `SRC->DST` edge) to value, as in results.json."""
        return dict(self.entry.get("values") or {})

    @property
    def stderr(self) -> dict:
        """Node id (or edge) to standard error; {} for a curve, whose `stderr` is per size."""
        stderr = self.entry.get("stderr")
        return dict(stderr) if isinstance(stderr, dict) else {}

    @property
    def n(self) -> int | dict | None:
        return self.entry.get("n")

    @property
    def positions(self) -> dict:
        """For patch and attribute at=each: node id to {position index: value} (or {name: value}
        for listed positions such as `at=[answer_label, last]`); empty otherwise."""
        return {node: {_position_key(p): v for p, v in by_position.items()}
                for node, by_position in (self.entry.get("positions") or {}).items()}

    def rows(self) -> list[dict]:
        """One flat row per value: node (and position, dataset or rank for nested
        values), value, stderr, n. For patch and attribute at=each, one row per node and token
        position: node, position (the index, or the name of a listed position), token
        (of the first prompt, for indices), value."""
        if self.positions:
            tokens = list(self.entry.get("tokens") or [])
            return [{"node": node, "position": p, "value": v,
                     "token": tokens[p] if isinstance(p, int) and 0 <= p < len(tokens) else None}
                    for node, by_position in self.positions.items()
                    for p, v in sorted(by_position.items(), key=lambda kv: _position_order(kv[0]))]
        stderr, n = self.stderr, self.n
        levels = _NESTED_LEVELS.get(self.kind, ("key", "subkey"))
        rows = []
        for key, value in self.values.items():
            for extra, leaf in _leaves(value, levels):
                row = {"node": key, **extra, "value": leaf}
                if not extra:
                    row["stderr"] = stderr.get(key)
                    row["n"] = n
                else:  # nested like the value: attention per position, subspaces per dataset and rank
                    row["stderr"] = _nested(stderr.get(key), extra.values())
                    if self.kind == "attention":
                        row["n"] = _nested(n.get(key) if isinstance(n, dict) else None, extra.values())
                    elif isinstance(n, dict) and "dataset" in extra:
                        row["n"] = n.get(extra["dataset"])
                rows.append(row)
        return rows

    def prompt_rows(self) -> list[dict]:
        """One row per node and prompt (node, prompt index, value), from the values
        `circ.run` keeps for every prompt; empty for analyses without them."""
        return [{"node": node, "prompt": index, "value": value}
                for node, values in self.per_prompt.items() for index, value in enumerate(values)]

    def to_pandas(self, per_prompt: bool = False):
        """The rows (or, with per_prompt, the prompt rows) as a pandas DataFrame
        (pandas is needed only here)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.prompt_rows() if per_prompt else self.rows())

    def __repr__(self) -> str:
        return f"<AnalysisResult {self.name}: {self.kind}, {len(self.values)} values>"


class CircuitResult:
    """A circuit the run chose: its members in order, their categories and scores, edges."""

    def __init__(self, name: str, entry: dict):
        self.name = name
        self.nodes = list(entry.get("nodes") or [])
        self.edges = list(entry.get("edges") or [])

    @property
    def members(self) -> list[str]:
        return [node["id"] for node in self.nodes]

    @property
    def categories(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for node in self.nodes:
            if node.get("category"):
                found.setdefault(node["category"], []).append(node["id"])
        return found

    @property
    def scores(self) -> dict[str, float]:
        return {node["id"]: node.get("score") for node in self.nodes}

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.members

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"<CircuitResult {self.name}: {', '.join(self.members) or 'empty'}>"


class Results:
    """What a run produced. `data` is results.json's dictionary; `spec_text` the spec."""

    def __init__(self, data: dict, spec_text: str = "", *, renders: tuple = (), per_prompt: dict | None = None,
                 prompts: dict | None = None):
        self.data = data
        self.spec_text = spec_text
        self.renders = tuple(renders)  # (circuit name, relative path) the spec asks for
        self.per_prompt = dict(per_prompt or {})  # per_prompt.json: {analysis: {node id: [values]}}
        self.prompts = dict(prompts or {})  # {dataset: [prompt text]}: the report's per-prompt views show some

    @property
    def name(self) -> str:
        return str((self.data.get("spec") or {}).get("name", ""))

    @property
    def analyses(self) -> list[str]:
        return list(self.data.get("analyses") or {})

    def analysis(self, name: str) -> AnalysisResult:
        entries = self.data.get("analyses") or {}
        if name not in entries:
            raise KeyError(f"no analysis {name!r}; the run has {', '.join(entries) or 'none'}")
        return AnalysisResult(name, entries[name], self.per_prompt.get(name))

    @property
    def circuits(self) -> list[str]:
        return list(self.data.get("circuits") or {})

    def circuit(self, name: str | None = None) -> CircuitResult:
        """The circuit `name`, or the spec's first circuit."""
        entries = self.data.get("circuits") or {}
        if name is None:
            name = (self.data.get("circuit") or {}).get("name")
        if name not in entries:
            raise KeyError(f"no circuit {name!r}; the run has {', '.join(entries) or 'none'}")
        return CircuitResult(name, entries[name])

    @property
    def expectations(self) -> list[Expectation]:
        return [Expectation.from_entry(e) for e in self.data.get("expectations") or []]

    @property
    def passed(self) -> bool:
        """Whether every expectation holds (True when there are none)."""
        return all(e.passed for e in self.expectations)

    def summary(self) -> str:
        """The text `circ run` prints."""
        from circ.runtime.render.summary import summarize

        return summarize(self.data)

    def save(self, folder: str | Path) -> Path:
        """Write results.json, the diagrams the spec renders and report.html into
        `folder` (and per_prompt.json when the run kept per-prompt values, whose
        distributions and worst prompts the report then shows); return the
        path of results.json. A diagram that cannot be drawn (Graphviz missing) is a
        warning; the other files are still written."""
        import warnings

        from circ.runtime.render.outputs import write_outputs
        from circ.runtime.results.write import write_results

        path, problems = write_outputs(self.data, self.spec_text, Path(folder), self.renders,
                                       per_prompt=self.per_prompt, prompts=self.prompts)
        for problem in problems:
            warnings.warn(problem, stacklevel=2)
        if self.per_prompt:
            write_results(path.parent / PER_PROMPT_FILE, self.per_prompt)
        return path

    def _repr_html_(self) -> str:
        from circ.runtime.render.notebook import compact_report

        return compact_report(self.data)

    def __repr__(self) -> str:
        verdict = "all expectations hold" if self.passed else "an expectation fails"
        return (f"<Results {self.name}: {len(self.analyses)} analyses, {len(self.circuits)} circuits, "
                f"{len(self.expectations)} expectations, {verdict}>")


def load_results(path: str | Path) -> Results:
    """Results read from a results.json file, or from the folder holding one, with the
    per_prompt.json beside it when there is one."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "analyses" not in data:
        raise ValueError(f"{path} is not a circ results.json")
    _check_shape(data, path)
    beside = path.parent / PER_PROMPT_FILE
    per_prompt = json.loads(beside.read_text(encoding="utf-8")) if beside.is_file() else None
    return Results(data, per_prompt=per_prompt if isinstance(per_prompt, dict) else None)


def _check_shape(data: dict, path: Path) -> None:
    """Refuse, with a ValueError naming the place, results whose objects and lists are
    not where results.json has them (what the accessors above rely on)."""
    def objects(value) -> bool:
        return isinstance(value, list) and all(isinstance(item, dict) for item in value)

    for section in ("analyses", "circuits"):
        entries = data.get(section) or {}
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise ValueError(f"{path}: '{section}' must be an object of objects")
    for name, entry in data["analyses"].items():
        if not isinstance(entry.get("values") or {}, dict):
            raise ValueError(f"{path}: analysis {name!r} must have 'values' as an object")
    for name, entry in (data.get("circuits") or {}).items():
        for key in ("nodes", "edges"):
            if not objects(entry.get(key) or []):
                raise ValueError(f"{path}: circuit {name!r} must have {key!r} as a list of objects")
        if not all(isinstance(node.get("id"), str) for node in entry.get("nodes") or []):
            raise ValueError(f"{path}: circuit {name!r} has a node whose 'id' is not a string")
    if not objects(data.get("expectations") or []):
        raise ValueError(f"{path}: 'expectations' must be a list of objects")


def _position_key(position: str) -> int | str:
    return int(position) if re.fullmatch(r"-?\d+", position) else position


def _position_order(position: int | str) -> tuple:
    return (0, position, "") if isinstance(position, int) else (1, 0, position)


def _nested(tree, keys):
    """tree[k1][k2]... for the keys in order, or None where a level is missing."""
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


_NESTED_LEVELS = {"attention": ("position",), "subspace": ("dataset", "rank")}


def _leaves(value, levels: tuple, prefix: dict | None = None):
    """(the keys of each nesting level by name, number) for a value that may nest."""
    prefix = prefix or {}
    if isinstance(value, dict):
        level = levels[min(len(prefix), len(levels) - 1)]
        for key, inner in value.items():
            yield from _leaves(inner, levels, {**prefix, level: key})
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix, float(value) if math.isfinite(value) else math.nan
    else:
        yield prefix, value


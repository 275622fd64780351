"""Finished op results kept on disk, so that `circ run --resume` reuses the parts of
an interrupted run that completed.

Every analysis op's result (a JSON object: numbers and names, never tensors) is
written, as soon as the op finishes, to `OUT/.circ-cache/KEY.json`, atomically.
Circuits, categories and expectations are not stored: they are recomputed in
milliseconds from the analyses. KEY is a sha256 over everything the result
depends on:

  - the op's own part of the spec: the repr of its IR object (spans are not part
    of it) and, for analyses, the line it is written on (results record it) and
    the metric it reads;
  - the keys of every op it depends on in the plan, hence, transitively, the
    datasets (generator parameters, a data file's content), the metrics, the
    analyses and circuits its nodes are chosen from, and the model;
  - the model's identity: source, dtype, device, numerics, shape, a hash of every
    weight and of the tokenizer; never its path, so a moved folder still matches;
  - the seed, the batch size (it sets the order of floating-point sums) and the
    circ version.

Each entry also carries `digest`, a sha256 over its key, its op id and its value
(as written); a stored file is used only when it is well-formed JSON written under
the same key whose digest matches what it holds, so an entry edited by hand or
damaged on disk is computed again, not trusted. Anything else counts as missing
and the op runs again. Entries are read and written through `safe_write`: never
through a symbolic link, never outside the output folder. Nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import networkx as nx
from circ.compiler import ir
from circ.runtime.results.safe_write import read_inside
from circ.runtime.results.write import write_atomic

from circ.version import __version__

CACHE_FOLDER = ".circ-cache"
STORED_KINDS = ("analysis",)
_CHUNK = 1 << 24  # elements hashed at a time, to bound the memory a weight copy takes
_ENTRY_LIMIT = 1 << 30  # bytes; a larger file is not an entry circ wrote


class ResultStore:
    """Analysis results by op id, read from and written to `folder`.

    `keys` maps op ids to content hashes (`op_keys`); with `reuse` False, results
    are written but never read (a fresh run that a later `--resume` may continue).
    Entries stay inside `root` (the output folder; default `folder` itself)."""

    def __init__(self, folder: Path, keys: dict[str, str], *, reuse: bool, log=None,
                 root: Path | None = None):
        self.folder = Path(folder)
        self.root = self.folder if root is None else Path(root)
        self.keys = keys
        self.reuse = reuse
        self.log = log
        self.reused: list[str] = []
        self.failed = False

    def stores(self, op) -> bool:
        return op.kind in STORED_KINDS and op.id in self.keys

    def load(self, op) -> dict | None:
        """The stored result of `op`, or None when there is none to reuse."""
        if not (self.reuse and self.stores(op)):
            return None
        key = self.keys[op.id]
        entry = (self.folder / f"{key}.json").relative_to(self.root)
        try:
            record = json.loads(read_inside(self.root, entry, _ENTRY_LIMIT).decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            return None
        if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("value"), dict):
            return None
        if record.get("digest") != entry_digest(key, op.id, record["value"]):
            if self.log is not None:
                print(f"circ: {self.folder / entry.name} does not match its digest; {op.id} runs again",
                      file=self.log, flush=True)
            return None
        self.reused.append(op.id)
        if self.log is not None:
            print(f"reused {op.id} (finished in an earlier run)", file=self.log, flush=True)
        return record["value"]

    def save(self, op, value: dict) -> None:
        if not self.stores(op):
            return
        key = self.keys[op.id]
        record = {"key": key, "op": op.id, "value": value, "digest": entry_digest(key, op.id, value)}
        text = json.dumps(record, sort_keys=True, allow_nan=True)
        try:
            write_atomic(self.folder / f"{key}.json", text, root=self.root)
        except OSError as error:  # a run never fails for want of its cache
            if self.log is not None and not self.failed:
                print(f"circ: cannot keep finished results in {self.folder}: {error.strerror or error}",
                      file=self.log, flush=True)
            self.failed = True


def open_store(out: Path, spec: ir.Spec, graph: nx.DiGraph, loaded, *, seed: int, batch_size: int,
               reuse: bool, log=None) -> ResultStore:
    """The store of the run writing into `out`."""
    keys = op_keys(spec, graph, loaded, seed=seed, batch_size=batch_size)
    return ResultStore(Path(out) / CACHE_FOLDER, keys, reuse=reuse, log=log, root=Path(out))


def entry_digest(key: str, op_id: str, value: dict) -> str:
    """sha256 over an entry's key, op id and value in its canonical JSON form."""
    return _digest("\n".join((key, op_id, json.dumps(value, sort_keys=True, allow_nan=True))))


def op_keys(spec: ir.Spec, graph: nx.DiGraph, loaded, *, seed: int, batch_size: int) -> dict[str, str]:
    """The content hash of every op of the plan (see the module docstring)."""
    shared = {"circ": __version__, "seed": seed, "batch_size": batch_size,
              "model": model_identity(loaded)}
    keys: dict[str, str] = {}
    for op_id in nx.lexicographical_topological_sort(graph):
        op = graph.nodes[op_id]["op"]
        record = {"op": op_id, "part": shared if op.kind == "model" else _own_part(op, spec),
                  "deps": sorted(keys[dep] for dep in graph.predecessors(op_id))}
        keys[op_id] = _digest(json.dumps(record, sort_keys=True))
    return keys


def model_identity(loaded) -> dict:
    """What makes two loaded models give the same numbers, without their paths."""
    cfg = loaded.bridge.cfg
    return {"source": loaded.source, "dtype": loaded.dtype, "device": str(loaded.device),
            "numerics": loaded.numerics, "shape": repr(loaded.shape),
            "prepend_bos": bool(getattr(cfg, "default_prepend_bos", True)),
            "weights": weights_digest(loaded.bridge), "tokenizer": tokenizer_digest(loaded.tokenizer)}


def weights_digest(module) -> str:
    """sha256 over every parameter's name, shape, dtype and bytes (a parameter
    offloaded to the meta device counts by name, shape and dtype only)."""
    import torch

    digest = hashlib.sha256()
    for name, parameter in module.named_parameters():
        flat = parameter.detach().reshape(-1)
        digest.update(f"{name}|{tuple(parameter.shape)}|{parameter.dtype}|{flat.device.type == 'meta'}|".encode())
        if flat.device.type == "meta":
            continue
        for chunk in flat.split(_CHUNK):
            digest.update(chunk.contiguous().view(torch.uint8).cpu().numpy())
    return digest.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """sha256 of the tokenizer's full definition (fast tokenizers) or its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()))
    special = json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str)
    return _digest(f"{type(tokenizer).__name__}|{special}|{text}")


def file_digest(path: str) -> str:
    """sha256 of a data file's bytes ("missing" when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "missing"
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _own_part(op, spec: ir.Spec) -> str:
    """The repr of the spec text an op stands for; file paths replaced by content hashes."""
    if op.kind == "dataset":
        dataset = spec.dataset(op.arg("name"))
        params = tuple((k, file_digest(v) if k == "path" else v) for k, v in dataset.params)
        return repr((dataset.name, dataset.kind, dataset.base, params))
    if op.kind == "cache_run":
        return repr(spec.metrics)
    if op.kind == "analysis":
        analysis = spec.analysis(op.arg("name"))
        metric = spec.metric(analysis.metric) if analysis.metric else None
        return repr((analysis, metric, analysis.span.line))
    if op.kind == "circuit":
        return repr(spec.circuit(op.arg("name")))
    if op.kind == "categories":
        return repr(tuple(c for c in spec.categories if c.circuit == op.arg("circuit")))
    return repr(op.args)

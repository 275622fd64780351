"""Assemble results.json (docs/results.md) from a finished run."""
from __future__ import annotations

import hashlib
from pathlib import Path

from circ.compiler import ir

from circ.version import __version__

PER_PROMPT = "per_prompt"  # kernels' per-prompt values: kept out of results.json, in per_prompt.json


def _versions() -> dict:
    from importlib.metadata import version

    import torch
    import transformer_lens

    return {"circ": __version__, "torch": torch.__version__,
            "transformer_lens": getattr(transformer_lens, "__version__", None) or version("transformer-lens")}


def _model_entry(loaded, spec: ir.Spec) -> dict:
    shape = loaded.shape
    return {"name": loaded.name, "source": loaded.source, "location": loaded.location,
            "n_layers": shape.n_layers, "n_heads": shape.n_heads, "d_model": shape.d_model,
            "d_head": shape.d_head, "d_vocab": shape.d_vocab, "n_ctx": shape.n_ctx,
            "d_mlp": shape.d_mlp, "numerics": loaded.numerics, "dtype": loaded.dtype,
            "device": str(loaded.device)}


def _metric_entry(metric: ir.Metric) -> dict:
    from circ.runtime.analyses.metrics import better

    return {"kind": metric.kind, "position": str(metric.position), "normalized": metric.normalized,
            "better": better(metric)}


def _circuit_entry(members, analyses: dict, kept_edges: list[dict] | None = None) -> dict:
    """The nodes of a circuit, and its kept edges when it was discovered or imported
    (granularity "edge": the edges are the circuit); otherwise every measured edge
    between two of its nodes (granularity "node")."""
    if kept_edges is not None:
        return {"nodes": [m.entry() for m in members], "edges": kept_edges, "granularity": "edge"}
    ids = {m.id for m in members}
    edges = []
    for result in analyses.values():
        if result["kind"] not in ("path_patch", "edges"):
            continue
        for edge, weight in sorted(result["values"].items()):
            src, dst = edge.split("->")
            base, part = dst.rsplit(".", 1) if dst.count(".") == 2 else (dst, None)
            if src in ids and base in ids:
                edges.append({"src": src, "dst": base, "part": part, "weight": weight})
    return {"nodes": [m.entry() for m in members], "edges": edges, "granularity": "node"}


def assemble(executor, spec: ir.Spec, loaded, settings, spec_text: str, timing: dict) -> dict:
    circuits = {name: _circuit_entry(executor.members[name], executor.analyses,
                                     executor.circuit_edges.get(name))
                for name in (c.name for c in spec.circuits)}
    for name, growth in executor.circuit_growth.items():
        circuits[name]["faithfulness"] = growth
    first = spec.circuits[0].name if spec.circuits else None
    return {
        "circ_version": __version__,
        "spec": {"name": spec.name, "path": spec.path,
                 "sha256": hashlib.sha256(spec_text.encode("utf-8")).hexdigest()},
        "model": _model_entry(loaded, spec),
        "run": {"seed": settings.seed, "batch_size": settings.batch_size, "versions": _versions()},
        "timing": timing,
        "datasets": executor.dataset_entries,
        "metrics": {m.name: _metric_entry(m) for m in spec.metrics},
        "analyses": {name: {k: v for k, v in entry.items() if k != PER_PROMPT}
                     for name, entry in executor.analyses.items()},
        "circuits": circuits,
        "circuit": {"name": first, **circuits[first]} if first else None,
        "expectations": sorted(executor.expectations, key=lambda e: e["line"]),
        "warnings": sorted(executor.warnings, key=lambda w: (w["line"], w["code"])),
    }


def per_prompt_table(analyses: dict) -> dict:
    """per_prompt.json (docs/results.md): {analysis: {node id: [value per prompt]}}."""
    return {name: entry[PER_PROMPT] for name, entry in analyses.items() if PER_PROMPT in entry}


def spec_sources(spec: ir.Spec) -> dict[str, str]:
    """The text of the spec and of every file it includes, by path."""
    paths = [spec.path, *spec.includes]
    return {p: Path(p).read_text(encoding="utf-8") for p in paths if Path(p).is_file()}

"""Convert between circ's edge scores and EAP-IG's graph JSON (the `Graph.to_json`
layout of the EAP-IG library): `cfg` (n_layers, n_heads, d_model,
parallel_attn_mlp), `nodes` {name: {in_graph}} and `edges` {name: {score, in_graph}}.
Nodes are `input`, `a{L}.h{H}`, `m{L}` and `logits`; an edge into a head's query, key
or value input is `parent->child<q>` (`<k>`, `<v>`), any other `parent->child`.
A score is circ's edge value as it is: positive when the edge helps the metric, the
sign EAP-IG's scores have for a metric that is a loss to lower. Pure Python."""
from __future__ import annotations

import math
import re

_CIRC_NODE = re.compile(r"L([0-9]{1,9})\.(?:H([0-9]{1,9})|MLP)")
_EAP_NODE = re.compile(r"a([0-9]{1,9})\.h([0-9]{1,9})|m([0-9]{1,9})|input|logits")
_EAP_EDGE = re.compile(r"([^<>]+)->([^<>]+?)(?:<([qkv])>)?")
_PARTS = ("q", "k", "v")


class ExchangeError(Exception):
    """A results file or graph that cannot be converted; the message says why."""


def eap_name(node_id: str) -> str:
    """The EAP-IG name of a circ node id (EMBED, L3.H1, L3.MLP, LOGITS)."""
    if node_id == "EMBED":
        return "input"
    if node_id == "LOGITS":
        return "logits"
    match = _CIRC_NODE.fullmatch(node_id) if isinstance(node_id, str) else None
    if match is None:
        raise ExchangeError(f"node {node_id!r} has no EAP-IG name (heads, MLPs, EMBED and LOGITS have)")
    layer, head = match.groups()
    return f"m{layer}" if head is None else f"a{layer}.h{head}"


def circ_id(name: str) -> str | None:
    """The circ node id of an EAP-IG node name; None when it is not one."""
    match = _EAP_NODE.fullmatch(name)
    if match is None:
        return None
    if name in ("input", "logits"):
        return "EMBED" if name == "input" else "LOGITS"
    layer, head, mlp = match.groups()
    return f"L{mlp}.MLP" if mlp is not None else f"L{layer}.H{head}"


def split_edge(name: str) -> tuple[str, str, str | None] | None:
    """(parent, child, part) of an EAP-IG edge name; None when it is not one."""
    match = _EAP_EDGE.fullmatch(name)
    return None if match is None else match.groups()


def is_model_edge(parent: str, child: str, part: str | None) -> bool:
    """Whether circ node ids `parent` -> `child` (`part` q, k or v into a head, else
    None) is an edge of a model's full EAP-IG graph: from the input or an earlier layer,
    or from a head into its own layer's MLP; into the logits from any node."""
    if parent == "LOGITS" or child == "EMBED" or (part is not None) != (".H" in child):
        return False
    if parent == "EMBED" or child == "LOGITS":
        return True
    parent_layer, child_layer = (int(node[1:].split(".")[0]) for node in (parent, child))
    return parent_layer < child_layer or (parent_layer == child_layer and ".H" in parent and child.endswith("MLP"))


def to_eap_ig(results: dict, analysis: str | None = None, circuit: str | None = None) -> dict:
    """EAP-IG's graph JSON from an edges analysis of `results` (default: its only one)
    and the edges of one of its circuits (default: the first) marked in_graph."""
    values = edge_values(results, analysis)
    circuits = results.get("circuits") or {}
    if circuit is None and circuits:
        circuit = next(iter(circuits))
    if circuit is not None and circuit not in circuits:
        raise ExchangeError(f"no circuit named {_cut(circuit)!r}; circuits: {_listed(circuits)}")
    kept = {(eap_name(edge["src"]), eap_name(edge["dst"]), edge.get("part"))
            for edge in ((circuits[circuit].get("edges") or []) if circuit else [])}
    return graph_json(results, values, kept)


def edge_values(results: dict, analysis: str | None) -> dict:
    """The values of edges analysis `analysis` of `results` (default: its only one)."""
    analyses = {name: a for name, a in (results.get("analyses") or {}).items()
                if isinstance(a, dict) and a.get("kind") == "edges"}
    if analysis is None:
        if len(analyses) != 1:
            raise ExchangeError(f"the results hold {len(analyses)} edges analyses; name one with --analysis"
                                if analyses else "the results hold no edges analysis (edges(...)) to export")
        analysis = next(iter(analyses))
    if analysis not in analyses:
        raise ExchangeError(f"no edges analysis named {_cut(analysis)!r}; edges analyses: {_listed(analyses)}")
    values = analyses[analysis].get("values")
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and math.isfinite(v) for v in values.values()):
        raise ExchangeError(f"edges analysis {analysis!r} holds values that are not finite numbers by edge")
    return values


def edge_parts(key: str) -> tuple[str, str, str | None]:
    """(parent, child, part) in EAP-IG names of a circ edge key such as
    `L0.H1->L1.H0.q` or `L1.MLP->LOGITS`."""
    if not isinstance(key, str) or key.count("->") != 1:
        raise ExchangeError(f"{key!r} is no edge (SENDER->RECEIVER)")
    src, dst = key.split("->")
    base, part = dst.rsplit(".", 1) if dst.count(".") == 2 else (dst, None)
    names = eap_name(src), eap_name(base)
    if part not in (None, *_PARTS) or not is_model_edge(src, base, part):
        raise ExchangeError(f"{key!r} is no edge of the model (from the input or an earlier layer, "
                            "into a head's q, k or v, an MLP or the logits)")
    return *names, part


def _cut(name, chars: int = 80) -> str:
    name = str(name)
    return name if len(name) <= chars else name[:chars] + "\u2026"


def _listed(names, shown: int = 20) -> str:
    """The first `shown` names, cut, and how many more: a message stays one short line."""
    names = [_cut(name) for name in names]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return (", ".join(names[:shown]) or "none") + more


def graph_json(results: dict, values: dict, kept: set) -> dict:
    """The graph JSON of every edge in `values` (circ keys to scores), in_graph when
    its (parent, child, part) is in `kept`; a node is in_graph when a kept edge
    touches it. Nodes are written as EAP-IG's `Graph.to_json` writes them."""
    edges, nodes = {}, {}
    for key, score in sorted(values.items()):
        parent, child, part = edge_parts(key)
        in_graph = (parent, child, part) in kept
        edges[f"{parent}->{child}" + (f"<{part}>" if part else "")] = {"score": float(score), "in_graph": in_graph}
        for name in (parent, child):
            nodes[name] = nodes.get(name, False) or in_graph
    model = results.get("model") or {}
    cfg = {"n_layers": model.get("n_layers"), "n_heads": model.get("n_heads"), "d_model": model.get("d_model"),
           "parallel_attn_mlp": False}
    return {"cfg": cfg, "nodes": {name: {"in_graph": kept} for name, kept in nodes.items()}, "edges": edges}

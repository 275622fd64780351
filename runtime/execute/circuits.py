"""Choose circuits from analysis results and sort their nodes into categories.

A `Select` reads the per-node values of one analysis (or the scores of a circuit),
keeps the nodes its category and `where` rule admit, then the `top` k (or the
`best` one) by |value|, ties broken by canonical node order. A `Combine` joins or
subtracts the members of two sets. Pure Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from circ.compiler import ir
from circ.runtime.execute.node_rules import NodeFacts, holds

_NODE_ID = re.compile(r"^(?:EMBED|L(\d+)\.(?:H(\d+)(?:\.([qkv]))?|MLP|RESID))$")


def node_from_id(node_id: str) -> ir.Node:
    """The Node an id such as L3.H1, L3.MLP, EMBED or L3.H1.q stands for."""
    match = _NODE_ID.match(node_id)
    if match is None:
        raise ValueError(f"not a node id: {node_id!r}")
    if node_id == "EMBED":
        return ir.Node(0, "embed")
    layer, head, part = match.groups()
    if node_id.endswith(".MLP"):
        return ir.Node(int(layer), "mlp")
    if node_id.endswith(".RESID"):
        return ir.Node(int(layer), "resid")
    if part is not None:
        return ir.Node(int(layer), "head_input", int(head), part)
    return ir.Node(int(layer), "head", int(head))


def _order(node_id: str) -> tuple:
    node = node_from_id(node_id)
    rank = {"embed": 0, "resid": 1, "head": 2, "head_input": 2, "mlp": 3}[node.kind]
    return (node.kind != "embed", node.layer, rank, node.head or 0, node.part or "")


@dataclass(frozen=True)
class Member:
    """One node of a chosen circuit with its score and (once sorted) category."""

    id: str
    score: float
    category: str | None = None

    def entry(self) -> dict:
        node = node_from_id(self.id)
        return {"id": self.id, "kind": node.kind, "layer": None if node.kind == "embed" else node.layer,
                "head": node.head, "category": self.category, "score": self.score}


def select(selection: ir.Select, facts: NodeFacts, circuits: dict[str, list[Member]]) -> list[Member]:
    """The members a Select picks, in canonical order. Rules read the analysis's own
    values and a member's score is that value: positive when the node helps the metric
    (every analysis signs its values so, docs/results.md)."""
    if selection.analysis in circuits:
        pool = circuits[selection.analysis]
        if selection.category is not None:
            pool = [m for m in pool if m.category == selection.category]
        scores = {m.id: m.score for m in pool}
    else:
        values = facts.values.get(selection.analysis, {})
        scores = {k: v for k, v in values.items() if isinstance(v, (int, float)) and k != "BIAS"}
    effect_from = selection.analysis
    merged = NodeFacts({**facts.values, effect_from: scores}, facts.attention, facts.spread, facts.metrics)
    kept = [k for k in scores
            if selection.where is None or holds(selection.where, k, merged, effect_from)]
    kept.sort(key=lambda k: (-abs(scores[k]), _order(k)))
    limit = 1 if selection.best else selection.top
    if limit is not None:
        kept = kept[:limit]
    return [Member(k, float(scores[k])) for k in sorted(kept, key=_order)]


def discover(selection: ir.Select, values: dict, kept: list[str] | None = None) -> tuple[list[Member], list[dict]]:
    """(members, edges) of `discover(A, top=N)`: the N edges of edges analysis A with the
    largest |value| (ties in key order), or of `discover(A)` for an ACDC analysis: the
    edges it `kept`; and the nodes at their ends (a head for its q, k or v input;
    LOGITS is no node). An edge's weight, like a member's score, is its value
    (positive helps); a node's score sums the weights of its kept edges."""
    if kept is not None and selection.top is None:
        scored = [key for key in kept if isinstance(values.get(key), (int, float))]
    else:
        scored = ranked_edges(values)[:selection.top]
    scores: dict[str, float] = {}
    edges = []
    for key in scored:
        src, dst = key.split("->")
        base, part = dst.rsplit(".", 1) if dst.count(".") == 2 else (dst, None)
        weight = float(values[key])
        edges.append({"src": src, "dst": base, "part": part, "weight": weight})
        for end in (src, base):
            if end != "LOGITS":
                scores[end] = scores.get(end, 0.0) + weight
    edges.sort(key=lambda e: (_order(e["src"]), (1,) if e["dst"] == "LOGITS" else (0, *_order(e["dst"])),
                              e["part"] or ""))
    return [Member(k, scores[k]) for k in sorted(scores, key=_order)], edges


def ranked_nodes(values: dict) -> list[ir.Node]:
    """The heads and MLPs among an analysis's per-node values by |value|, largest first,
    ties in canonical order: the ranking that curve() and discover(A, faithfulness=F)
    grow circuits along (the embeddings are never ablated, so never ranked)."""
    scored = [key for key in values
              if key != "BIAS" and isinstance(values[key], (int, float)) and not isinstance(values[key], bool)
              and node_from_id(key).kind in ("head", "mlp")]
    return [node_from_id(key) for key in sorted(scored, key=lambda key: (-abs(values[key]), _order(key)))]


def ranked_edges(values: dict) -> list[str]:
    """The edges of an edges analysis by |value|, largest first, ties in key order: the
    order `discover(e, top=N)` keeps them in, and curve() and growth grow along."""
    return sorted((key for key, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)),
                  key=lambda key: (-abs(values[key]), key))


def edge_from_key(key: str) -> tuple:
    """(sender Node, receiver Node or "LOGITS") of an edge key such as L0.H2->L1.H1.k."""
    src, dst = key.split("->")
    return node_from_id(src), dst if dst == "LOGITS" else node_from_id(dst)


def combine(op: str, left: list[Member], right: list[Member]) -> list[Member]:
    """`left + right` (a node in both keeps its left score), `left & right` (the nodes
    in both, with their left scores) or `left - right`, in canonical order."""
    taken = {m.id for m in right}
    if op == "-":
        return [m for m in left if m.id not in taken]
    if op == "&":
        return [m for m in left if m.id in taken]
    kept = {m.id for m in left}
    return sorted(left + [m for m in right if m.id not in kept], key=lambda m: _order(m.id))


def categorize(members: list[Member], categories: list[ir.Category], facts: NodeFacts,
               effect_from: str | None) -> list[Member]:
    """Each member takes the first category (in spec order) whose rule holds."""
    sorted_members = []
    for member in members:
        category = next((c.name for c in categories
                         if holds(c.rule, member.id, facts, effect_from)), None)
        sorted_members.append(Member(member.id, member.score, category))
    return sorted_members


def ordered(node_ids) -> list[str]:
    return sorted(node_ids, key=_order)

"""Report speed and size at model scale: report.html for results of a 30 x 9 and an 80 x 64 model.

    .venv/bin/python bench/bench_report.py [--shapes 30x9 80x64] [--tokens 41]

Builds results.json-shaped data for a model of L layers x H heads (no model runs):
direct logit attribution, an exact and an attribution patch of every head and MLP,
attention of every head from the last position (one pattern over `--tokens` tokens
per head, and the explorer's patterns of 8 prompts within its weight budget), path patching of every head and MLP into two receivers, a 20-node
circuit with its edges, a low-rank sweep and faithfulness, as the case-study spec
asks of a small model. Times `report_html` (and the circuit diagram through
Graphviz when `dot` is installed, as `circ run` embeds it) and prints the seconds,
the page's size, and the share of each section. Targets: 270 heads well under
10 s and under 1 MB; 80 x 64 under 10 MB (exit 1 when a page is larger).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "tests" / "fixtures" / "results" / "mcq_2l4h.json"
SPEC_SOURCE = "\n".join(f"# line {n}" for n in range(40))
MAX_PAGE_BYTES = 10_000_000


def scaled_results(n_layers: int, n_heads: int, tokens: int, seed: int = 0) -> dict:
    """The fixture's results with every per-node analysis over all heads and MLPs of
    an n_layers x n_heads model."""
    rng = random.Random(seed)
    results = json.loads(FIXTURE.read_text())
    heads = [f"L{layer}.H{head}" for layer in range(n_layers) for head in range(n_heads)]
    mlps = [f"L{layer}.MLP" for layer in range(n_layers)]
    nodes = heads + mlps

    def values(ids):
        return {node: round(rng.gauss(0, 0.3), 6) for node in ids}

    analyses = results["analyses"]
    analyses["dla"]["values"] = values(["EMBED", "BIAS"] + nodes)
    analyses["dla"]["total"] = sum(analyses["dla"]["values"].values())
    analyses["patched"]["values"] = values(nodes)
    analyses["resampled"]["values"] = values(nodes)
    receivers = [heads[-1], mlps[-1]]
    analyses["paths"]["receivers"] = receivers
    analyses["paths"]["values"] = values(f"{node}->{receiver}" for node in ["EMBED"] + nodes[:-2]
                                         for receiver in receivers)
    words = ["<bos>"] + [f" w{rng.randrange(1000)}" for _ in range(tokens - 1)]
    attention = analyses["attn"]
    attention["values"] = {head: {p: round(rng.random(), 4) for p in ("answer_label", "bos", "labels", "self")}
                           for head in heads}
    attention["patterns"] = {head: {"tokens": words, "weights": _weights(rng, tokens)} for head in heads}
    attention["explorer"] = _explorer(rng, heads, words)
    top = sorted(nodes, key=lambda n: -abs(analyses["patched"]["values"][n]))[:20]
    circuit_nodes = [{"id": n, "kind": "mlp" if n.endswith("MLP") else "head", "layer": int(n[1:].split(".")[0]),
                      "head": None if n.endswith("MLP") else int(n.split(".H")[1]), "category": None,
                      "score": analyses["patched"]["values"][n]} for n in top]
    edges = [{"src": a, "dst": b, "part": None, "weight": round(rng.gauss(0, 0.2), 4)}
             for a in top for b in top if _layer(a) < _layer(b)][:40]
    results["circuits"]["output"] = {"nodes": circuit_nodes, "edges": edges}
    results["circuit"] = {"name": "output", "nodes": circuit_nodes, "edges": edges}
    results["model"].update(n_layers=n_layers, n_heads=n_heads, name=f"random {n_layers}x{n_heads}")
    return results


def _explorer(rng: random.Random, heads: list[str], words: list[str]) -> dict:
    """The explorer the attention kernel keeps for EXPLORE_PROMPTS prompts of these
    tokens: every query row if the weight budget allows, else the last row, and as
    many heads as fit (runtime/analyses/attention.py's `explorer_layout`)."""
    from circ.runtime.analyses.attention import EXPLORE_PROMPTS, MAX_EXPLORER_WEIGHTS

    n = len(words)
    rows, kind = list(range(n)), "all"
    if EXPLORE_PROMPTS * n * (n + 1) // 2 * len(heads) > MAX_EXPLORER_WEIGHTS:
        rows, kind = [n - 1], "query"
    kept = heads[:max(1, MAX_EXPLORER_WEIGHTS // (EXPLORE_PROMPTS * sum(q + 1 for q in rows)))]
    examples = [{"tokens": words, "rows": rows, "query": [n - 1],
                 "patterns": {head: [[round(w, 3) for w in _weights(rng, q + 1)] for q in rows]
                              for head in kept}} for _ in range(EXPLORE_PROMPTS)]
    return {"prompts": EXPLORE_PROMPTS, "of": 200, "explore": EXPLORE_PROMPTS, "rows": kind,
            "decimals": 3, "heads": kept, "examples": examples}


def _weights(rng: random.Random, n: int) -> list[float]:
    raw = [rng.random() ** 4 for _ in range(n)]
    total = sum(raw)
    return [round(w / total, 4) for w in raw]


def _layer(node: str) -> int:
    return int(node[1:].split(".")[0])


def measure(n_layers: int, n_heads: int, tokens: int) -> tuple[float, int]:
    from circ.runtime.render.report import report_html

    results = scaled_results(n_layers, n_heads, tokens)
    diagram, diagram_seconds = None, 0.0
    try:
        from circ.runtime.render.diagram import circuit_dot
        from circ.runtime.render.graphviz import inline_svg

        start = time.perf_counter()
        diagram = inline_svg(circuit_dot(results))
        diagram_seconds = time.perf_counter() - start
    except Exception as error:  # no Graphviz here: the report shows a note instead
        print(f"  (no diagram: {error})")
    start, cpu = time.perf_counter(), time.process_time()
    page = report_html(results, SPEC_SOURCE, diagram_svg=diagram)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    size = len(page.encode("utf-8"))
    print(f"{n_layers} x {n_heads} = {n_layers * n_heads} heads: report_html {seconds:.2f} s wall, {cpu:.2f} s CPU, "
          f"{size / 1e6:.2f} MB; diagram {diagram_seconds:.2f} s wall")
    for anchor, body in re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S):
        print(f"    {anchor:<22} {len(body.encode('utf-8')) / 1e3:9.1f} kB")
    return seconds, size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=["30x9", "80x64"])
    parser.add_argument("--tokens", type=int, default=41)
    args = parser.parse_args(argv)
    too_large = []
    for shape in args.shapes:
        n_layers, n_heads = (int(x) for x in shape.split("x"))
        _, size = measure(n_layers, n_heads, args.tokens)
        if size > MAX_PAGE_BYTES:
            too_large.append(f"{shape}: {size / 1e6:.2f} MB")
    if too_large:
        print(f"over {MAX_PAGE_BYTES / 1e6:.0f} MB: {', '.join(too_large)}")
    return 1 if too_large else 0


if __name__ == "__main__":
    sys.exit(main())

"""The planner: shared cached runs, stable ids, dependencies, and its three outputs."""
import json
from pathlib import Path

import networkx as nx
from circ.compiler import ir
from circ.compiler.api import compile_file, compile_source, plan
from circ.compiler.plan.output import plan_dot, plan_json, plan_text
from circ.compiler.plan.planner import Op

ROOT = Path(__file__).resolve().parent.parent
CASE_STUDY = ROOT / "specs" / "mcq_correct_letter.circ"
SHARED = """
model demo
data clean = mcq(n=8)
data moved = clean.move_answer(seed=1)
data other = mcq(n=8, seed=2)
metric ld = logit_diff at last
analysis dla  = attribute(heads, on=clean, metric=ld)
analysis p1   = patch(heads, source=moved, target=clean, metric=ld)
analysis p2   = patch(heads, source=mean(clean), target=clean, metric=ld)
analysis p3   = patch(heads, source=mean(clean), target=other, metric=ld)
analysis attn = attention(top(dla, 2), on=clean)
circuit c = top(p1, 2)
expect p1[L1.H0] > 0
render c to "c.svg"
"""


def ops_of_kind(graph, kind):
    return sorted(n for n, data in graph.nodes(data=True) if data["op"].kind == kind)


def test_cached_runs_and_means_are_shared():
    graph = plan(compile_source(SHARED))
    assert ops_of_kind(graph, "cache_run") == ["run:clean", "run:moved", "run:other"]
    assert ops_of_kind(graph, "mean") == ["mean:clean"]
    readers_of_clean = sorted(graph.successors("run:clean"))
    assert readers_of_clean == ["analysis:attn", "analysis:dla", "analysis:p1", "analysis:p2",
                                "mean:clean"]
    assert sorted(graph.successors("mean:clean")) == ["analysis:p2", "analysis:p3"]


def test_dependencies_follow_what_each_op_reads():
    graph = plan(compile_source(SHARED))
    assert nx.is_directed_acyclic_graph(graph)
    assert sorted(graph.predecessors("data:moved")) == ["data:clean", "model"]
    assert sorted(graph.predecessors("analysis:attn")) == ["analysis:dla", "run:clean"]
    assert sorted(graph.predecessors("circuit:c")) == ["analysis:p1"]
    assert list(graph.predecessors("expect:1")) == ["analysis:p1"]
    assert list(graph.predecessors("render:c.svg")) == ["circuit:c"]
    terminal = {n for n in graph if graph.out_degree(n) == 0}
    assert terminal == {"results"}
    assert "analysis:p3" in set(graph.predecessors("results"))


def test_op_ids_and_args_are_stable():
    first = plan(compile_file(CASE_STUDY))
    second = plan(compile_file(CASE_STUDY))
    assert sorted(first.nodes) == sorted(second.nodes)
    assert sorted(first.edges) == sorted(second.edges)
    for op_id in first:
        op = first.nodes[op_id]["op"]
        assert isinstance(op, Op) and op.id == op_id
        assert op == second.nodes[op_id]["op"]
    assert plan_text(first) == plan_text(second)


def test_categories_read_an_implicit_attention_analysis():
    graph = plan(compile_file(CASE_STUDY))
    implicit = graph.nodes["analysis:_attn_output"]["op"]
    assert implicit.arg("kind") == "attention" and implicit.arg("implicit") is True
    assert sorted(graph.predecessors("categories:output")) == [
        "analysis:_attn_output", "analysis:dla", "circuit:output"]
    assert sorted(graph.predecessors("analysis:lowrank")) == [
        "categories:output", "circuit:output", "mean:clean", "run:clean", "run:letters",
        "run:numbers"]
    assert "implicit: attention read by the categories of output" in plan_text(graph)


def test_text_lists_ops_in_topological_order_with_lines():
    graph = plan(compile_source(SHARED, "s.circ"))
    lines = plan_text(graph).splitlines()
    order = [line.split()[0] for line in lines[1:]]
    position = {op_id: i for i, op_id in enumerate(order)}
    assert all(position[a] < position[b] for a, b in graph.edges)
    assert order[0] == "model" and order[-1] == "results"
    dla_line = next(line for line in lines if line.startswith("analysis:dla "))
    assert "line 7" in dla_line and dla_line.endswith("<- run:clean")


def test_json_has_nodes_and_edges():
    graph = plan(compile_source(SHARED, "s.circ"))
    document = json.loads(plan_json(graph))
    assert {n["id"] for n in document["nodes"]} == set(graph.nodes)
    assert {(e["src"], e["dst"]) for e in document["edges"]} == set(graph.edges)
    dla = next(n for n in document["nodes"] if n["id"] == "analysis:dla")
    assert dla["args"] == {"name": "dla", "kind": "attribute", "dataset": "clean", "implicit": False}
    assert dla["line"] == 7


def test_dot_is_a_deterministic_digraph():
    graph = plan(compile_source(SHARED, "s.circ"))
    dot = plan_dot(graph)
    assert dot.startswith("digraph plan {") and dot.endswith("}\n")
    assert '"run:clean" -> "analysis:dla";' in dot
    assert dot.count(" -> ") == graph.number_of_edges()
    assert dot == plan_dot(plan(compile_source(SHARED, "s.circ")))


def test_literal_circuit_depends_on_the_model_only():
    graph = plan(compile_source("circuit c = [L0.H0]\n"))
    assert list(graph.predecessors("circuit:c")) == ["model"]
    assert graph.nodes["model"]["op"] == Op("model", "model", (("source", "demo"), ("location", None)))
    assert isinstance(graph.nodes["model"]["op"].span, ir.Span)

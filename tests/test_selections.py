"""Selecting nodes by any scored analysis (attention scores included), set algebra on
selected circuits (`heads + mlps - strong`), and ablate(): lowering, planning, the run-time
combination of members, and diagnostics."""
import pytest
from circ.compiler import ir
from circ.compiler.api import compile_source, plan
from circ.compiler.diagnostics import CircError
from circ.runtime.execute.circuits import Member, combine

HEAD = '''data seqs = induction(n=8)
metric lp = logprob(answer) at last
analysis ind = attention(heads, on=seqs, score=induction)
analysis prev = attention(L0.*, on=seqs, query=all, score=previous_token)
circuit strong = top(ind, 2)
'''


def errors(text):
    with pytest.raises(CircError) as caught:
        compile_source(text, "t.circ")
    return [(d.code, d.span.line, d.span.col) for d in caught.value.diagnostics]


def test_attention_scores_lower_with_every_query():
    spec = compile_source(HEAD, "t.circ")
    ind, prev = spec.analysis("ind"), spec.analysis("prev")
    assert (ind.option("score"), ind.option("query")) == ("induction", ir.ALL)
    assert (prev.option("score"), prev.option("query")) == ("previous_token", ir.ALL)
    plain = compile_source(HEAD + "analysis attn = attention(heads, on=seqs)\n", "t.circ").analysis("attn")
    assert plain.option("query") == ir.LAST and plain.option("score") is None


def test_selections_and_rules_read_attention_scores():
    spec = compile_source(HEAD + '''circuit one = best(prev)
circuit sharp = ind where ind > 0.4 and prev < 0.9
expect ind[L1.H2] > 0.5
''', "t.circ")
    assert spec.circuit("strong").nodes == ir.Select("ind", top=2)
    assert spec.circuit("one").nodes == ir.Select("prev", best=True)
    where = spec.circuit("sharp").nodes.where
    assert [p.left for p in where.parts] == [ir.Field("ind"), ir.Field("prev")]
    assert spec.expectations[0].left == ir.Quantity("ind", "node", (("node", "L1.H2"),))


def test_set_algebra_with_a_selected_circuit_is_a_combine():
    spec = compile_source(HEAD + '''circuit rest = heads + mlps - strong
circuit joined = [strong, L0.H1, best(prev)]
analysis ko = ablate(rest - L0.*, on=seqs, metric=lp)
''', "t.circ")
    rest = spec.circuit("rest").nodes
    assert isinstance(rest, ir.Combine) and rest.op == "-"
    assert rest.right == ir.Select("strong")
    assert len(rest.left.nodes) == 2 * 4 + 2  # every head and MLP of the demo model
    joined = spec.circuit("joined").nodes
    assert joined == ir.Combine("+", ir.Combine("+", ir.NodeList((ir.Node(0, "head", 1),)), ir.Select("strong")),
                                ir.Select("prev", best=True))
    ko = spec.analysis("ko")
    assert ko.nodes.left == ir.Select("rest") and ko.source == ir.PatchSource("mean", "seqs")
    graph = plan(spec)
    assert set(graph.predecessors("circuit:rest")) == {"circuit:strong"}
    assert set(graph.predecessors("circuit:joined")) == {"circuit:strong", "analysis:prev"}
    assert {"circuit:rest", "mean:seqs", "run:seqs"} == set(graph.predecessors("analysis:ko"))


def test_a_combined_set_on_the_left_of_a_relation_waits_for_its_circuits():
    spec = compile_source(HEAD + "circuit one = best(prev)\nexpect strong - one == [L1.H2]\n", "t.circ")
    expectation = spec.expectations[0]
    assert expectation.form == "relation" and isinstance(expectation.left, ir.Combine)
    assert set(plan(spec).predecessors("expect:1")) == {"circuit:strong", "circuit:one"}


def test_combining_members_at_run_time():
    left = [Member("L0.H1", 0.0), Member("L1.H2", 0.5), Member("L1.MLP", 0.0)]
    right = [Member("L1.H2", 0.9), Member("L0.H0", 0.3)]
    assert combine("-", left, right) == [Member("L0.H1", 0.0), Member("L1.MLP", 0.0)]
    assert combine("+", left, right) == [Member("L0.H0", 0.3), Member("L0.H1", 0.0), Member("L1.H2", 0.5),
                                         Member("L1.MLP", 0.0)]


def test_diagnostics():
    assert errors(HEAD + "analysis attn = attention(heads, on=seqs)\ncircuit c = top(attn, 2)\n") == [
        ("E310", 7, 17)]
    assert errors(HEAD + "analysis a = attention(heads, on=seqs, query=all)\n") == [("E312", 6, 40)]
    assert errors(HEAD + "analysis a = attention(heads, on=seqs, query=3, score=induction)\n") == [
        ("E360", 6, 40)]
    assert errors(HEAD + "analysis a = attention(heads, on=seqs, score=induction, explore=2)\n") == [
        ("E304", 6, 57)]
    assert errors(HEAD + "circuit c = top(strong + L0.H0, 1)\n") == [("E313", 6, 17)]
    assert errors(HEAD + "analysis ko = ablate(resid + strong, on=seqs, metric=lp)\n") == [("E309", 6, 22)]
    assert errors(HEAD + "metric n = normalized(lp)\nanalysis ko = ablate(strong, on=seqs, metric=n)\n") == [
        ("E306", 7, 46)]


def test_estimate_counts_ablations_of_combined_sets():
    from circ.compiler.estimate.cost import estimate_plan
    from circ.compiler.estimate.cost_shapes import from_ir_shape

    spec = compile_source(HEAD + '''analysis ko = ablate(heads - strong, on=seqs, with=zero, metric=lp)
analysis both = ablate([strong, L0.MLP], on=seqs, with=seqs, metric=lp)
''', "t.circ")
    lengths = {"seqs": [9, 9, 9]}
    result = {op.op: op for op in estimate_plan(spec, plan(spec), from_ir_shape(spec.shape, "demo"), lengths).ops}
    assert (result["analysis:ko"].forwards, result["analysis:ko"].bounded) == (3 * 2, True)
    assert result["analysis:both"].forwards == 3 * 3  # clean, source and ablated runs
    assert result["analysis:ind"].what == "induction scores of 8 heads"


def test_summary_and_report_show_scores_and_ablations():
    from circ.runtime.render.report import report_html
    from circ.runtime.render.summary import summarize

    results = {"analyses": {
        "ind": {"kind": "attention", "dataset": "seqs", "query": "all", "score": "induction",
                "values": {"L1.H2": 0.99, "L0.H1": 0.08}, "stderr": {"L1.H2": 0.001, "L0.H1": 0.004},
                "n": 24, "queries": 168},
        "ko": {"kind": "ablate", "dataset": "seqs", "metric": "lp", "nodes": ["L0.H1", "L1.H2"],
               "clean": -0.01, "ablated": -5.35, "value": 5.34,
               "stderr": {"clean": 0.002, "ablated": 0.11, "value": 0.11}, "n": 24}},
        "circuits": {}, "expectations": []}
    text = summarize(results)
    assert "ind (attention on seqs, induction score over every query, n=24)\n  L1.H2        +0.9900 \u00b1 0.0010\n" in text
    assert "ko (ablate on seqs, lp)\n  clean -0.0100  ablated -5.3500  helps +5.3400  (L0.H1, L1.H2)\n" in text
    html = report_html(results, "", diagram_svg=None)
    assert 'Mean over <span class="num">24</span> prompts and <span class="num">168</span> query positions' in html
    assert "Ablated together: L0.H1, L1.H2" in html and '<span class="num">0.11</span>' in html


def test_a_combined_circuit_is_drawn_as_its_rule_before_the_run():
    from circ.runtime.render.diagram import hypothesis_dot

    spec = compile_source(HEAD + "circuit rest = heads + mlps - strong\ncircuit few = [L0.H1, best(prev)]\n", "t.circ")
    assert 'label="rest = (10 nodes) - strong\\n(chosen from the results' in hypothesis_dot(spec, "rest")
    assert 'label="few = L0.H1 + best(prev)\\n(chosen from the results' in hypothesis_dot(spec, "few")


def test_spec_diffs_describe_combinations():
    from circ.compiler.diff.describe import describe
    from circ.compiler.diff.spec import diff_specs

    old = compile_source(HEAD + "circuit rest = L0.* - strong\n", "t.circ")
    new = compile_source(HEAD + "circuit rest = L0.* - top(ind, 3)\n", "t.circ")
    assert describe(old.circuit("rest")) == "(L0.H0, L0.H1, L0.H2, L0.H3) - strong"
    assert diff_specs(old, old) == ()
    changes = diff_specs(old, new)
    assert [(describe(c.old), describe(c.new)) for c in changes] == [("(L0.H0, L0.H1, L0.H2, L0.H3) - strong",
                                                  "(L0.H0, L0.H1, L0.H2, L0.H3) - top(ind, 3)")]


def test_intersection_binds_tighter_than_union_and_difference():
    spec = compile_source(HEAD + '''circuit fixed = L0.* & [L0.H1, L1.H0, L0.MLP]
circuit mixed = mlps + strong & L1.*
circuit left_first = (heads - L0.H0) & L0.*
''', "t.circ")
    assert spec.circuit("fixed").nodes.nodes == (ir.Node(0, "head", 1),)  # L0.* is layer 0's heads
    mixed = spec.circuit("mixed").nodes
    assert mixed.op == "+" and mixed.right.op == "&"  # mlps + (strong & L1.*)
    assert mixed.right.left == ir.Select("strong")
    assert [n.id for n in spec.circuit("left_first").nodes.nodes] == ["L0.H1", "L0.H2", "L0.H3"]


def test_intersecting_members_keeps_left_scores_in_canonical_order():
    left = [Member("L0.H1", 1.0), Member("L1.H0", 2.0), Member("L1.MLP", 3.0)]
    right = [Member("L1.MLP", -5.0), Member("L0.H1", 0.0), Member("L0.H3", 9.0)]
    assert combine("&", left, right) == [Member("L0.H1", 1.0), Member("L1.MLP", 3.0)]
    assert combine("&", left, []) == []

"""Semantic spec diff on specs built by hand from the IR: every kind of change,
renames found as one change, and order / layout / spans never reported."""
from dataclasses import replace

import pytest
from circ.compiler import ir
from circ.compiler.diff.describe import describe
from circ.compiler.diff.renames import find_renames
from circ.compiler.diff.spec import diff_specs

SHAPE = ir.Shape(n_layers=2, n_heads=4, d_model=128, d_head=32, d_vocab=300, n_ctx=64)
HEADS = tuple(ir.Node(layer, "head", head) for layer in range(2) for head in range(4))
MLPS = tuple(ir.Node(layer, "mlp") for layer in range(2))


def span(line):
    return ir.Span("spec.circ", line, 1, line, 20)


def base_spec() -> ir.Spec:
    return ir.Spec(
        name="mcq",
        path="spec.circ",
        model=ir.Model(span=span(2)),
        shape=SHAPE,
        datasets=(
            ir.Dataset("clean", "mcq", (("labels", "ABCD"), ("n", 200), ("seed", 0)), span=span(3)),
            ir.Dataset("moved", "move_answer", (("seed", 3),), base="clean", span=span(4)),
        ),
        metrics=(ir.Metric("ld", "logit_diff", span=span(5)),),
        analyses=(
            ir.Analysis("dla", "attribute", ir.NodeList(HEADS + MLPS), "clean", "ld", span=span(6)),
            ir.Analysis("patched", "patch", ir.NodeList(HEADS + MLPS), "clean", "ld",
                        source=ir.PatchSource("dataset", "moved"),
                        options=(("effect", ir.Word("direct")), ("method", ir.Word("exact"))),
                        span=span(7)),
            ir.Analysis("lowrank", "subspace", ir.NodeList(HEADS[4:6]), "clean", "ld",
                        options=(("eval", ("clean", "moved")), ("parts", ("q", "k")),
                                 ("ranks", (1, 2, "full"))), span=span(8)),
        ),
        circuits=(
            ir.Circuit("output", ir.NodeList((HEADS[5], HEADS[6])), span=span(9)),
            ir.Circuit("chosen", ir.Select("patched", top=10, where=ir.Compare(
                ir.Abs(ir.Field("effect")), ">", 0.05)), span=span(10)),
        ),
        categories=(
            ir.Category("output", "correct_letter", ir.And((
                ir.Compare(ir.Attends("answer_label"), ">", 0.5),
                ir.Compare(ir.Field("dla"), ">", 0.0))), span=span(11)),
            ir.Category("output", "uniform", ir.Compare(ir.Spread("labels"), ">", 0.8),
                        span=span(12)),
        ),
        expectations=(
            ir.Expectation(ir.Quantity("lowrank", "recovered",
                                       (("dataset", "clean"), ("max_rank", 4))),
                           ">=", 0.9, span=span(13)),
            ir.Expectation(ir.Quantity("dla", "total"), ">", 1.0, span=span(14)),
        ),
        renders=(ir.Render("output", "circuit.svg", span=span(15)),),
    )


def kinds(changes):
    return [(c.kind, c.name, c.field) for c in changes]


def shifted(spec: ir.Spec) -> ir.Spec:
    """The same spec with every span moved, every collection reversed, node lists,
    options and `and` operands reordered: the meaning is unchanged."""
    def move(item):
        return replace(item, span=ir.Span("other.circ", 99, 3, 99, 9))
    analyses = tuple(
        move(replace(a, nodes=ir.NodeList(tuple(reversed(a.nodes.nodes))),
                     options=tuple(reversed(a.options))))
        for a in reversed(spec.analyses))
    categories = tuple(move(replace(c, rule=ir.And(tuple(reversed(c.rule.parts))))
                            if isinstance(c.rule, ir.And) else c) for c in spec.categories)
    return replace(
        spec, path="other.circ", model=move(spec.model),
        datasets=tuple(move(d) for d in reversed(spec.datasets)),
        metrics=tuple(move(m) for m in spec.metrics), analyses=analyses,
        circuits=tuple(move(c) for c in reversed(spec.circuits)), categories=categories,
        expectations=tuple(move(e) for e in reversed(spec.expectations)),
        renders=tuple(move(r) for r in spec.renders))


def test_identical_specs_have_no_changes():
    assert diff_specs(base_spec(), base_spec()) == ()


def test_order_spans_and_paths_are_not_changes():
    assert diff_specs(base_spec(), shifted(base_spec())) == ()


def test_model_change_lists_each_field():
    new = replace(base_spec(), model=ir.Model("hf", "models/chin", dtype="bfloat16"),
                  shape=replace(SHAPE, n_layers=4))
    assert kinds(diff_specs(base_spec(), new)) == [
        ("model_changed", "model", "source"), ("model_changed", "model", "location"),
        ("model_changed", "model", "dtype"), ("model_changed", "model", "shape")]
    dtype = diff_specs(base_spec(), new)[2]
    assert (dtype.old, dtype.new) == ("float32", "bfloat16")
    assert dtype.old_span.line == 2


def test_spec_rename():
    changes = diff_specs(base_spec(), replace(base_spec(), name="mcq-v2"))
    assert [(c.kind, c.old, c.new) for c in changes] == [("spec_renamed", "mcq", "mcq-v2")]


def test_dataset_added_removed_changed():
    old = base_spec()
    numbers = ir.Dataset("numbers", "mcq", (("labels", "1234"), ("n", 200), ("seed", 2)))
    clean = replace(old.datasets[0], params=(("labels", "ABCD"), ("n", 100), ("seed", 0)))
    new = replace(old, datasets=(clean, numbers))
    # moved is gone; its users must go too for a checked spec, but diff does not care
    changes = diff_specs(old, new)
    assert ("dataset_removed", "moved", None) in kinds(changes)
    assert ("dataset_added", "numbers", None) in kinds(changes)
    n_change = next(c for c in changes if c.kind == "dataset_changed")
    assert (n_change.name, n_change.field, n_change.old, n_change.new) == ("clean", "n", 200, 100)
    assert describe(next(c for c in changes if c.kind == "dataset_added").new) == \
        'mcq(labels="1234", n=200, seed=2)'


def rename_dataset(spec: ir.Spec, old: str, new: str) -> ir.Spec:
    """Rename a dataset everywhere, by hand, without using the code under test."""
    def name(value):
        return new if value == old else value
    datasets = tuple(replace(d, name=name(d.name), base=name(d.base)) for d in spec.datasets)
    analyses = []
    for a in spec.analyses:
        options = tuple((k, tuple(name(x) for x in v) if k == "eval" else v) for k, v in a.options)
        source = a.source and replace(a.source, dataset=name(a.source.dataset))
        analyses.append(replace(a, dataset=name(a.dataset), source=source, options=options))
    expectations = tuple(
        replace(e, left=replace(e.left, args=tuple((k, name(v)) for k, v in e.left.args)))
        for e in spec.expectations)
    return replace(spec, datasets=datasets, analyses=tuple(analyses), expectations=expectations)


def test_consistent_dataset_rename_is_one_change():
    new = rename_dataset(base_spec(), "clean", "base")
    changes = diff_specs(base_spec(), new)
    assert [(c.kind, c.old, c.new) for c in changes] == [("dataset_renamed", "clean", "base")]


def test_chained_renames_are_found_in_any_order():
    new = rename_dataset(rename_dataset(base_spec(), "clean", "base"), "moved", "shifted")
    new = replace(new, datasets=tuple(reversed(new.datasets)))
    renames = find_renames(base_spec(), new)
    assert sorted(renames.pairs("datasets")) == [("clean", "base"), ("moved", "shifted")]
    assert sorted(kinds(diff_specs(base_spec(), new))) == [
        ("dataset_renamed", "base", None), ("dataset_renamed", "shifted", None)]


def test_rename_with_a_changed_definition_is_remove_and_add():
    old = base_spec()
    new = rename_dataset(old, "moved", "shifted")
    new = replace(new, datasets=(new.datasets[0], replace(new.datasets[1], params=(("seed", 4),))))
    changes = kinds(diff_specs(old, new))
    assert ("dataset_removed", "moved", None) in changes
    assert ("dataset_added", "shifted", None) in changes
    # the patch source now names a dataset that is not a rename of the old one
    assert ("analysis_changed", "patched", "source") in changes


def test_metric_rename_and_change():
    old = base_spec()
    renamed = replace(old, metrics=(replace(old.metrics[0], name="diff"),),
                      analyses=tuple(replace(a, metric="diff") for a in old.analyses))
    assert kinds(diff_specs(old, renamed)) == [("metric_renamed", "diff", None)]
    changed = replace(old, metrics=(replace(old.metrics[0], normalized=True,
                                            position=ir.Position("named", "answer")),))
    assert kinds(diff_specs(old, changed)) == [
        ("metric_changed", "ld", "at"), ("metric_changed", "ld", "normalized")]


def test_analysis_rename_updates_references_in_selects_rules_and_expectations():
    old = base_spec()

    def name(value):
        return "attribution" if value == "dla" else value
    new = replace(
        old,
        analyses=tuple(replace(a, name=name(a.name)) for a in old.analyses),
        categories=(replace(old.categories[0], rule=ir.And((
            ir.Compare(ir.Attends("answer_label"), ">", 0.5),
            ir.Compare(ir.Field("attribution"), ">", 0.0)))), old.categories[1]),
        expectations=(old.expectations[0],
                      replace(old.expectations[1], left=ir.Quantity("attribution", "total"))))
    assert kinds(diff_specs(old, new)) == [("analysis_renamed", "attribution", None)]


@pytest.mark.parametrize("field, change, old_value, new_value", [
    ("target", dict(dataset="moved"), "clean", "moved"),
    ("metric", dict(metric="other"), "ld", "other"),
    ("source", dict(source=ir.PatchSource("corrupt")), "moved", "corrupt"),
    ("effect", dict(options=(("effect", ir.Word("total")), ("method", ir.Word("exact")))),
     "direct", "total"),
    ("method", dict(options=(("effect", ir.Word("direct")), ("method", ir.Word("attribution")))),
     "exact", "attribution"),
    ("at", dict(options=(("effect", ir.Word("direct")), ("method", ir.Word("exact")),
                               ("position", ir.Position("named", "answer_label")))),
     "none", "answer_label"),
])
def test_analysis_field_changes(field, change, old_value, new_value):
    old = base_spec()
    new = replace(old, analyses=(old.analyses[0], replace(old.analyses[1], **change),
                                 old.analyses[2]))
    changes = diff_specs(old, new)
    assert kinds(changes) == [("analysis_changed", "patched", field)]
    assert (describe(changes[0].old), describe(changes[0].new)) == (old_value, new_value)
    assert changes[0].new_span is None or changes[0].old_span.line == 7


def test_subspace_ranks_parts_and_eval_changes():
    old = base_spec()
    lowrank = replace(old.analyses[2], options=(("eval", ("moved",)), ("parts", ("q", "k", "v")),
                                                ("ranks", (1, 2, 4, "full"))))
    changes = diff_specs(old, replace(old, analyses=old.analyses[:2] + (lowrank,)))
    assert [(c.field, describe(c.old), describe(c.new)) for c in changes] == [
        ("parts", "[q, k]", "[q, k, v]"),
        ("ranks", "[1, 2, full]", "[1, 2, 4, full]"),
        ("eval", "[clean, moved]", "[moved]")]


def test_analysis_nodes_added_and_removed_as_ids():
    old = base_spec()
    lowrank = replace(old.analyses[2], nodes=ir.NodeList((HEADS[5], HEADS[7], MLPS[1])))
    changes = diff_specs(old, replace(old, analyses=old.analyses[:2] + (lowrank,)))
    assert [(c.kind, c.old, c.new) for c in changes] == [
        ("analysis_nodes_removed", ("L1.H0",), None),
        ("analysis_nodes_added", None, ("L1.H3", "L1.MLP"))]


def test_analyses_added_and_removed():
    old = base_spec()
    attn = ir.Analysis("attn", "attention", ir.NodeList(HEADS[:2]), "clean",
                       options=(("query", ir.Position("last")),))
    new = replace(old, analyses=(old.analyses[0], old.analyses[2], attn))
    changes = diff_specs(old, new)
    assert kinds(changes) == [("analysis_removed", "patched", None),
                              ("analysis_added", "attn", None)]
    # arguments named as the spec writes them; defaults (query=last) left out
    assert describe(changes[1].new) == "attention(L0.H0, L0.H1, on=clean)"


def test_circuit_nodes_entering_and_leaving():
    old = base_spec()
    output = replace(old.circuits[0], nodes=ir.NodeList((HEADS[6], HEADS[7], MLPS[0])))
    changes = diff_specs(old, replace(old, circuits=(output, old.circuits[1])))
    assert [(c.kind, c.name, c.old, c.new) for c in changes] == [
        ("circuit_nodes_removed", "output", ("L1.H1",), None),
        ("circuit_nodes_added", "output", None, ("L0.MLP", "L1.H3"))]


def test_selected_circuit_rule_change_and_circuit_add_remove():
    old = base_spec()
    chosen = replace(old.circuits[1], nodes=ir.Select("patched", top=5, where=ir.Compare(
        ir.Abs(ir.Field("effect")), ">", 0.05)))
    extra = ir.Circuit("extra", ir.NodeList(MLPS))
    changes = diff_specs(old, replace(old, circuits=(chosen, extra)))
    assert kinds(changes) == [("circuit_removed", "output", None), ("circuit_added", "extra", None),
                              ("circuit_changed", "chosen", "nodes")]
    assert describe(changes[2].old) == "top(patched, 10) where abs(effect) > 0.05"
    assert describe(changes[2].new) == "top(patched, 5) where abs(effect) > 0.05"


def test_circuit_rename_carries_categories_and_renders():
    old = base_spec()
    new = replace(old, circuits=(replace(old.circuits[0], name="out"), old.circuits[1]),
                  categories=tuple(replace(c, circuit="out") for c in old.categories),
                  renders=(ir.Render("out", "circuit.svg"),))
    assert kinds(diff_specs(old, new)) == [("circuit_renamed", "out", None)]


def test_category_changes_renames_and_order():
    old = base_spec()
    correct, uniform = old.categories
    stricter = replace(uniform, rule=ir.Compare(ir.Spread("labels"), ">", 0.9))
    assert kinds(diff_specs(old, replace(old, categories=(correct, stricter)))) == [
        ("category_changed", "output.uniform", "rule")]
    renamed = replace(uniform, name="flat")
    changes = diff_specs(old, replace(old, categories=(correct, renamed)))
    assert [(c.kind, c.name, c.old, c.new) for c in changes] == [
        ("category_renamed", "output.flat", "uniform", "flat")]
    swapped = diff_specs(old, replace(old, categories=(uniform, correct)))
    assert [(c.kind, c.old, c.new) for c in swapped] == [
        ("category_reordered", ("correct_letter", "uniform"), ("uniform", "correct_letter"))]
    single = ir.Category("output", "single_letter", ir.Compare(ir.Attends("label"), ">", 0.7))
    assert kinds(diff_specs(old, replace(old, categories=(correct, single)))) == [
        ("category_removed", "output.uniform", None),
        ("category_added", "output.single_letter", None)]


def test_expectation_threshold_comparison_quantity_and_add_remove():
    old = base_spec()
    low, total = old.expectations
    lower = replace(old, expectations=(replace(low, right=0.8), total))
    assert [(c.field, c.old, c.new) for c in diff_specs(old, lower)] == [("threshold", 0.9, 0.8)]
    wider = replace(old, expectations=(low, replace(total, op=">=")))
    assert [(c.field, c.old, c.new) for c in diff_specs(old, wider)] == [("comparison", ">", ">=")]
    rank2 = replace(low, left=ir.Quantity("lowrank", "recovered",
                                          (("dataset", "clean"), ("max_rank", 2))))
    changes = diff_specs(old, replace(old, expectations=(rank2, total)))
    assert [(c.kind, c.field, describe(c.old), describe(c.new)) for c in changes] == [
        ("expectation_changed", "quantity", 'lowrank.recovered(clean, rank <= 4)',
         'lowrank.recovered(clean, rank <= 2)')]
    extra = ir.Expectation(ir.Quantity("patched", "max"), ">", 2.0)
    assert kinds(diff_specs(old, replace(old, expectations=(total, extra)))) == [
        ("expectation_removed", 'lowrank.recovered(clean, rank <= 4)', None),
        ("expectation_added", "patched.max", None)]


def test_render_changes():
    old = base_spec()
    assert [(c.kind, c.old, c.new) for c in diff_specs(
        old, replace(old, renders=(ir.Render("output", "out.png"),)))] == [
        ("render_changed", "circuit.svg", "out.png")]
    changes = diff_specs(old, replace(old, renders=(old.renders[0], ir.Render("chosen", "c.svg"))))
    assert [(c.kind, c.name, c.new) for c in changes] == [("render_added", "chosen", "c.svg")]
    assert kinds(diff_specs(old, replace(old, renders=()))) == [("render_removed", "output", None)]


def test_rename_matches_definitions_regardless_of_node_and_option_order():
    old = base_spec()
    lowrank = old.analyses[2]
    moved = replace(lowrank, name="fit", nodes=ir.NodeList(tuple(reversed(lowrank.nodes.nodes))),
                    options=tuple(reversed(lowrank.options)))
    low, total = old.expectations
    low = replace(low, left=replace(low.left, analysis="fit"))
    new = replace(old, analyses=old.analyses[:2] + (moved,), expectations=(low, total))
    assert kinds(diff_specs(old, new)) == [("analysis_renamed", "fit", None)]

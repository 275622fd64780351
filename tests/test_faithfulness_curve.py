"""Faithfulness curves and greedy growth, against the faithfulness kernel and a
hand-written mean ablation, and the areas against sums worked out by hand."""
import random
import time

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.curve_areas import areas, curve_sizes, listed_sizes, size_at
from circ.runtime.analyses.faithfulness import faithfulness
from circ.runtime.analyses.edge_circuit import circuit_metric, graph_edges
from circ.runtime.analyses.faithfulness_curve import edge_measure, faithfulness_curve, grow, node_measure
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.data.prompts import tokenize
from circ.runtime.execute.circuits import ranked_nodes
from conftest import mcq_examples
from test_faithfulness import LD, every_node, hand_ablated


def test_sizes_are_evenly_spaced_from_the_empty_circuit_to_every_node():
    assert curve_sizes(10, 4) == [0, 2, 5, 8, 10]
    assert curve_sizes(3, 10) == [0, 1, 2, 3]


def test_more_points_than_items_measure_each_size_once_without_counting_to_points():
    started = time.perf_counter()
    assert curve_sizes(3, 10**9) == [0, 1, 2, 3]
    assert curve_sizes(0, 10**9) == [0]
    assert time.perf_counter() - started < 1


def test_areas_are_the_trapezoids_over_the_fraction_kept():
    sizes = [0, 1, 2, 4]
    # widths 1/4, 1/4, 2/4; f = 0, 1, 1, 1
    assert areas(sizes, [0.0, 1.0, 1.0, 1.0]) == pytest.approx((0.25 * 0.5 + 0.25 + 0.5, 0.25 * 0.5))
    # overshooting the full model counts against CMD as much as falling short
    cpr, cmd = areas(sizes, [0.0, 1.5, 0.5, 1.0])
    assert cpr == pytest.approx(0.25 * 0.75 + 0.25 * 1.0 + 0.5 * 0.75)
    assert cmd == pytest.approx(0.25 * 0.75 + 0.25 * 0.5 + 0.5 * 0.25)
    assert areas(sizes, [0.0, None, 1.0, 1.0]) == (None, None)


def test_size_at_is_the_first_measured_size_reaching_the_target():
    assert size_at([0, 2, 5, 8], [0.0, 0.5, 0.95, 0.9], 0.9) == 5
    assert size_at([0, 2, 5, 8], [0.0, 0.5, 0.95, 0.9], 0.99) is None


def test_ranking_is_by_magnitude_heads_and_mlps_only():
    values = {"EMBED": 9.0, "BIAS": 8.0, "L0.H1": -3.0, "L1.MLP": 3.0, "L0.H0": 0.5, "L1.H0": -7.0}
    assert [n.id for n in ranked_nodes(values)] == ["L1.H0", "L0.H1", "L1.MLP", "L0.H0"]


@pytest.fixture(scope="module")
def setting(tiny):
    prompts = tokenize(tiny, mcq_examples(6), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("mean", "clean"), {"clean": prompts}, batch_size=4)
    with torch.no_grad():
        _, cache = tiny.bridge.run_with_cache(prompts.tokens)
    means = {name: cache[name].mean(0, keepdim=True) for name in cache.keys()
             if "hook_z" in name or "mlp_out" in name}
    ranking = every_node(tiny.shape)
    random.Random(5).shuffle(ranking)
    return prompts, source, means, ranking


def _measure(tiny, prompts, source):
    return node_measure(tiny, prompts, LD, source, batch_size=4, show_progress=False)


def _hand_faithfulness(tiny, prompts, means, kept):
    heads = {(n.layer, n.head) for n in kept if n.kind == "head"}
    mlps = {n.layer for n in kept if n.kind == "mlp"}
    clean = hand_ablated(tiny, prompts, {(l, h) for l in range(2) for h in range(4)}, {0, 1}, means)
    none = hand_ablated(tiny, prompts, set(), set(), means)
    return (hand_ablated(tiny, prompts, heads, mlps, means) - none) / (clean - none)


def test_curve_points_equal_hand_written_ablations_and_the_kernel(tiny, setting):
    prompts, source, means, ranking = setting
    curve = faithfulness_curve(ranking, _measure(tiny, prompts, source), points=5, random_orders=3, seed=7,
                               target=0.9)
    assert curve["sizes"] == [0, 2, 4, 6, 8, 10]
    assert curve["faithfulness"][0] == pytest.approx(0.0, abs=1e-9)
    assert curve["faithfulness"][-1] == pytest.approx(1.0, abs=1e-6)
    for index, k in enumerate(curve["sizes"][1:-1], 1):
        kept = ranking[:k]
        assert curve["faithfulness"][index] == pytest.approx(_hand_faithfulness(tiny, prompts, means, kept), abs=1e-4)
        kernel = faithfulness(tiny, prompts, kept, LD, source, batch_size=4, show_progress=False)
        assert curve["faithfulness"][index] == pytest.approx(kernel["value"], abs=1e-5)
    assert curve["stderr"][0] == pytest.approx(0.0) and all(e >= 0 for e in curve["stderr"])
    cpr, cmd = areas(curve["sizes"], curve["faithfulness"])
    assert (curve["cpr"], curve["cmd"]) == (pytest.approx(cpr), pytest.approx(cmd))
    assert curve["size_at_target"] == size_at(curve["sizes"], curve["faithfulness"], 0.9)


def test_random_baseline_averages_seeded_orders(tiny, setting):
    prompts, source, _, ranking = setting
    curve = faithfulness_curve(ranking, _measure(tiny, prompts, source), points=2, random_orders=3, seed=7,
                               target=0.9)
    shuffler = random.Random(7)
    orders = [shuffler.sample(ranking, len(ranking)) for _ in range(3)]
    middle = [faithfulness(tiny, prompts, order[:5], LD, source, batch_size=4, show_progress=False)["value"]
              for order in orders]
    baseline = curve["random"]
    assert baseline["orders"] == 3 and baseline["seed"] == 7
    assert baseline["faithfulness"][1] == pytest.approx(sum(middle) / 3, abs=1e-5)
    assert baseline["stderr"][1] == pytest.approx(torch.tensor(middle).std().item() / 3 ** 0.5, abs=1e-5)
    per_order = [areas([0, 5, 10], [0.0, m, 1.0])[0] for m in middle]
    assert baseline["cpr"] == pytest.approx(sum(per_order) / 3, abs=1e-5)
    again = faithfulness_curve(ranking, _measure(tiny, prompts, source), points=2, random_orders=3, seed=7,
                               target=0.9)
    assert again["random"] == baseline


def test_growth_stops_at_the_first_prefix_reaching_the_target(tiny, setting):
    prompts, source, _, ranking = setting
    every = [faithfulness(tiny, prompts, ranking[:k], LD, source, batch_size=4, show_progress=False)["value"]
             for k in range(len(ranking) + 1)]
    target = 0.5
    grown = grow(ranking, _measure(tiny, prompts, source), target)
    size = grown["size"]
    assert grown["reached"] and grown["value"] >= target
    assert grown["value"] == pytest.approx(every[size], abs=1e-5)
    assert every[size - 1] < target  # one node fewer falls short
    assert {m["size"]: m["faithfulness"] for m in grown["measured"]}[size] == grown["value"]


def test_edge_curve_points_equal_the_edge_circuit_evaluator(tiny):
    prompts = tokenize(tiny, mcq_examples(4), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("mean", "clean"), {"clean": prompts}, batch_size=4)
    nodes = [ir.Node(0, "embed"), ir.Node(0, "head", 1), ir.Node(0, "mlp"), ir.Node(1, "head", 2), ir.Node(1, "mlp")]
    edges = graph_edges(tiny, nodes)
    ranking = list(edges)
    random.Random(3).shuffle(ranking)
    measure = edge_measure(tiny, prompts, edges, LD, source, batch_size=4, show_progress=False)
    curve = faithfulness_curve(ranking, measure, points=4, random_orders=1, seed=0, target=0.9)

    def evaluated(kept):
        return circuit_metric(tiny, prompts, edges, kept, LD, source, batch_size=4, show_progress=False).mean().item()

    clean, none = evaluated(edges), evaluated([])
    assert curve["clean"] == pytest.approx(clean, abs=1e-5) and curve["all_ablated"] == pytest.approx(none, abs=1e-5)
    for index, k in enumerate(curve["sizes"]):
        expected = (evaluated(ranking[:k]) - none) / (clean - none)
        assert curve["faithfulness"][index] == pytest.approx(expected, abs=1e-4)
    assert curve["faithfulness"][-1] == pytest.approx(1.0, abs=1e-6)


def test_listed_sizes_add_the_empty_and_whole_circuits():
    assert listed_sizes(10, (1, 2, 5, 20)) == [0, 1, 2, 5, 10]


@pytest.mark.parametrize("arguments, message", [
    ("sizes=[1, 1]", "size 1 is listed twice"),
    ("sizes=[2, 3], points=3", "`points` spaces the sizes evenly; `sizes` lists them"),
])
def test_sizes_are_checked(arguments, message):
    from circ.compiler.api import compile_source
    from circ.compiler.diagnostics import CircError

    text = ('model demo\ndata clean = mcq(n=4)\nmetric ld = logit_diff(answer, wrong) at last\n'
            'analysis dla = attribute(heads + mlps, on=clean, metric=ld)\n'
            f'analysis fc = curve(dla, on=clean, metric=ld, {arguments})\n')
    with pytest.raises(CircError) as caught:
        compile_source(text, "sizes.circ")
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("E304", 5)]
    assert message in caught.value.diagnostics[0].message
    spec = compile_source(text.replace(arguments, "sizes=[5, 1]"), "sizes.circ")
    assert spec.analysis("fc").option("sizes") == (1, 5) and spec.analysis("fc").option("points") is None

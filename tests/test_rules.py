"""Rules over node facts: comparisons, connectives, missing facts."""
import math

from circ.compiler import ir
from circ.runtime.execute.node_rules import NodeFacts, holds, term_value

FACTS = NodeFacts(
    values={"patched": {"L1.H0": -0.7, "L1.H1": 0.02}, "dla": {"L1.H0": 1.5, "L1.H1": -0.3}},
    attention={"L1.H0": {"answer_label": 0.8, "labels": 0.95}},
    spread={"L1.H0": {"labels": 0.1}},
)


def test_effect_reads_the_selected_analysis():
    assert term_value(ir.Field("effect"), "L1.H0", FACTS, "patched") == -0.7
    assert term_value(ir.Abs(ir.Field("effect")), "L1.H0", FACTS, "patched") == 0.7


def test_named_analysis_and_attention_terms():
    rule = ir.And((
        ir.Compare(ir.Attends("answer_label"), ">", 0.5),
        ir.Compare(ir.Field("dla"), ">", 0.0),
    ))
    assert holds(rule, "L1.H0", FACTS)
    assert not holds(rule, "L1.H1", FACTS)  # no attention facts: false, not an error


def test_missing_fact_makes_comparison_false_both_ways():
    assert math.isnan(term_value(ir.Spread("labels"), "L1.H1", FACTS, None))
    assert not holds(ir.Compare(ir.Spread("labels"), ">", 0.5), "L1.H1", FACTS)
    assert not holds(ir.Compare(ir.Spread("labels"), "<=", 0.5), "L1.H1", FACTS)


def test_or_and_not():
    big = ir.Compare(ir.Abs(ir.Field("effect")), ">", 0.05)
    assert holds(ir.Or((big, ir.Compare(ir.Field("dla"), "<", -1.0))), "L1.H0", FACTS, "patched")
    assert holds(ir.Not(big), "L1.H1", FACTS, "patched")


def test_arithmetic_on_terms():
    half_dla = ir.Arith("/", ir.Field("dla"), 2.0)
    assert term_value(ir.Arith("-", ir.Field("effect"), half_dla), "L1.H0", FACTS, "patched") == -0.7 - 0.75
    assert term_value(ir.Arith("*", 3.0, ir.Field("dla")), "L1.H1", FACTS, None) == -0.3 * 3
    assert term_value(ir.Arith("+", ir.Field("dla"), 1.0), "L1.H1", FACTS, None) == -0.3 + 1
    assert math.isnan(term_value(ir.Arith("/", 1.0, 0.0), "L1.H0", FACTS, None))  # unknown, so false


RELATIVE = NodeFacts(values={"patched": {"L1.H0": 2.0, "L1.H1": -4.0, "L1.H2": 0.1}},
                     metrics={"patched": 10.0})


def test_max_is_the_largest_size_of_the_scores_effect_reads():
    assert term_value(ir.Relative("max"), "L1.H0", RELATIVE, "patched") == 4.0
    rule = ir.Compare(ir.Abs(ir.Field("effect")), ">", ir.Arith("*", 0.05, ir.Relative("max")))
    assert [n for n in ("L1.H0", "L1.H1", "L1.H2") if holds(rule, n, RELATIVE, "patched")] == ["L1.H0", "L1.H1"]
    assert math.isnan(term_value(ir.Relative("max"), "L1.H0", RELATIVE, None))


def test_metric_is_the_clean_metric_of_the_analysis_effect_reads():
    rule = ir.Compare(ir.Field("effect"), ">", ir.Arith("*", 0.1, ir.Relative("metric")))
    assert [n for n in ("L1.H0", "L1.H1", "L1.H2") if holds(rule, n, RELATIVE, "patched")] == ["L1.H0"]


def test_relative_thresholds_need_no_retuning_when_every_score_scales():
    """The same rule picks the same nodes on a model whose effects are 100 times larger."""
    scaled = NodeFacts(values={"patched": {k: 100 * v for k, v in RELATIVE.values["patched"].items()}},
                       metrics={"patched": 1000.0})
    rule = ir.And((ir.Compare(ir.Abs(ir.Field("effect")), ">", ir.Arith("*", 0.05, ir.Relative("max"))),
                   ir.Compare(ir.Field("effect"), ">", ir.Arith("*", 0.1, ir.Relative("metric")))))
    picked = [[n for n in ("L1.H0", "L1.H1", "L1.H2") if holds(rule, n, facts, "patched")]
              for facts in (RELATIVE, scaled)]
    assert picked == [["L1.H0"], ["L1.H0"]]


def test_relative_rules_parse_print_and_lower():
    from circ.compiler.api import compile_source
    from circ.compiler.syntax.fmt import format_source

    text = ('model demo\ndata clean = mcq(n=8)\ndata moved = clean.move_answer()\nmetric ld = logit_diff at last\n'
            'analysis dla = attribute(heads, on=clean, metric=ld)\n'
            'analysis pt = patch(heads, source=moved, target=clean, metric=ld)\n'
            'circuit c = pt where abs(effect) > 0.05 * max and effect - dla / 2 > 0.1 * metric + -1\n')
    where = compile_source(text, path="r.circ").circuit("c").nodes.where
    size, combined = where.parts
    assert size == ir.Compare(ir.Abs(ir.Field("effect")), ">", ir.Arith("*", 0.05, ir.Relative("max")))
    assert combined == ir.Compare(ir.Arith("-", ir.Field("effect"), ir.Arith("/", ir.Field("dla"), 2.0)), ">",
                                  ir.Arith("+", ir.Arith("*", 0.1, ir.Relative("metric")), -1.0))
    formatted = format_source(text)
    assert "abs(effect) > 0.05 * max and effect - dla / 2 > 0.1 * metric + -1" in formatted
    assert format_source(formatted) == formatted

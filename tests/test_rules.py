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

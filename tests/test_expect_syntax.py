"""The expectation forms as text: `circ fmt` prints each back and round-trips it, and
an edge written another way gets a hint."""
import pytest
from circ.compiler.diagnostics import CircError
from circ.compiler.syntax.fmt import format_source
from circ.compiler.syntax.parser import parse_source

CANONICAL = """expect paths[L0.H0 -> L1.H0.v] < -5
expect attn[L1.H0].to(answer_text) > 0.9
expect L1.H0 in output.correct_letter
expect output == numbers_output
expect output <= circuit
expect top(dla, 3) != [L1.H0, L1.MLP]
expect count(output) <= 4
expect accuracy(clean) >= 0.98
expect metric(ld, on=letters) > 5
expect rank(direct, L1.H0) <= 2
expect dla.total > -3
"""

CRAMPED = """expect paths[L0.H0->L1.H0.v]<-5
expect attn[ L1.H0 ].to( answer_text )>0.9
expect L1.H0   in   output.correct_letter
expect output==numbers_output
expect output<=circuit
expect top(dla,3)!=[L1.H0,L1.MLP]
expect count( output )<=4
expect accuracy(clean)>=0.98
expect metric(ld,on=letters)>5
expect rank(direct,L1.H0)<=2
expect dla.total>-3
"""


def test_fmt_prints_every_form_in_canonical_layout_and_round_trips():
    assert format_source(CRAMPED) == CANONICAL
    assert format_source(CANONICAL) == CANONICAL


def test_the_parsed_forms_keep_their_operands():
    statements = parse_source(CANONICAL).statements
    assert [s.op for s in statements] == ["<", ">", "in", "==", "<=", "!=", "<=", ">=", ">", "<=", ">"]
    edge = statements[0].left
    assert (edge.base.name, edge.sender.text, edge.receiver.text) == ("paths", "L0.H0", "L1.H0.v")
    assert (edge.span.col, edge.span.end_col) == (8, 31)


@pytest.mark.parametrize("written", [
    "paths[L0.H0 > L1.H0.v]", "paths[L0.H0 => L1.H0.v]", "paths[L0.H0 to L1.H0.v]",
    "paths[L0.H0, L1.H0.v]", "paths[L0.H0 - > L1.H0.v]", "paths[L0.H0 <- L1.H0.v]",
])
def test_an_edge_written_another_way_gets_a_hint(written):
    with pytest.raises(CircError) as caught:
        parse_source(f"expect {written} < -5")
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.code == "E100"
    assert "`[SENDER -> RECEIVER]`" in diagnostic.hint


def test_an_edge_with_two_arrows_says_an_edge_has_one_sender_and_one_receiver():
    with pytest.raises(CircError) as caught:
        parse_source("expect paths[L0.H0 -> L1.H0.v -> L1.MLP] < -5")
    diagnostic = caught.value.diagnostics[0]
    assert (diagnostic.code, diagnostic.span.col) == ("E100", 31)
    assert diagnostic.hint.startswith("an edge has one sender and one receiver")

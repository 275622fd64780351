"""`circ diff` of specs pairs the new expectation forms (edges, attention, ranks,
counts, accuracy, metric means, membership, set relations): added, removed and
changed ones, read through renames."""
from circ.compiler.api import compile_source
from circ.compiler.diff.spec import diff_specs

HEAD = '''spec "forms"
model demo
data {clean} = mcq(n=16, seed=0)
data letters = mcq(n=16, labels=random_letters, seed=1)
metric ld = logit_diff(answer, wrong) at last
analysis dla   = attribute(heads + mlps, on={clean}, metric=ld)
analysis attn  = attention(heads, on={clean})
analysis paths = path_patch([L0.H0, L0.MLP], to=[L1.H0.v], source=mean({clean}), target={clean}, metric=ld)
circuit output = top(dla, 2)
categories output {{
  correct_letter = attends(answer_text) > 0.5
}}
circuit strong = top(dla, 3)
'''

OLD = [
    "expect paths[L0.MLP -> L1.H0.v] < -5",
    "expect attn[L1.H0].to(answer_text) > 0.9",
    "expect L1.H0 in output.correct_letter",
    "expect output <= strong",
    "expect count(output) <= 4",
    "expect accuracy({clean}) >= 0.98",
    "expect metric(ld, on=letters) > 5",
    "expect rank(dla, L1.H0) <= 2",
]


def spec(lines, clean="clean"):
    text = HEAD.format(clean=clean) + "\n".join(line.format(clean=clean) for line in lines) + "\n"
    return compile_source(text, "forms.circ")


def changes(old, new):
    return [(c.kind, c.name, c.field, c.old, c.new) for c in diff_specs(old, new)]


def test_the_same_expectations_after_a_dataset_rename_are_no_change():
    found = changes(spec(OLD), spec(OLD, clean="abcd"))
    assert found == [("dataset_renamed", "abcd", None, "clean", "abcd")]


def test_thresholds_and_comparisons_of_each_form_change_in_place():
    new = list(OLD)
    new[0] = "expect paths[L0.MLP -> L1.H0.v] < -2"
    new[1] = "expect attn[L1.H0].to(answer_text) >= 0.9"
    new[3] = "expect output == strong"
    new[4] = "expect count(output) <= 3"
    new[5] = "expect accuracy({clean}) >= 0.9"
    new[6] = "expect metric(ld, on=letters) > 4"
    new[7] = "expect rank(dla, L1.H0) <= 1"
    assert changes(spec(OLD), spec(new)) == [
        ("expectation_changed", "paths[L0.MLP -> L1.H0.v]", "threshold", -5.0, -2.0),
        ("expectation_changed", "attn[L1.H0].to(answer_text)", "comparison", ">", ">="),
        ("expectation_changed", "output", "comparison", "<=", "=="),
        ("expectation_changed", "count(output)", "threshold", 4.0, 3.0),
        ("expectation_changed", "accuracy(clean)", "threshold", 0.98, 0.9),
        ("expectation_changed", "metric(ld, on=letters)", "threshold", 5.0, 4.0),
        ("expectation_changed", "rank(dla, L1.H0)", "threshold", 2.0, 1.0),
    ]


def test_other_edges_nodes_positions_and_sets_are_removed_and_added():
    new = list(OLD)
    new[0] = "expect paths[L0.H0 -> L1.H0.v] < -5"
    new[1] = "expect attn[L1.H0].to(answer_label) > 0.9"
    new[2] = "expect L1.MLP in output.correct_letter"
    new[5] = "expect accuracy(letters) >= 0.98"
    found = [(kind, old, new) for kind, _, _, old, new in changes(spec(OLD), spec(new))]
    assert found == [
        ("expectation_removed", "paths[L0.MLP -> L1.H0.v] < -5", None),
        ("expectation_removed", "attn[L1.H0].to(answer_text) > 0.9", None),
        ("expectation_removed", "L1.H0 in output.correct_letter", None),
        ("expectation_removed", "accuracy(clean) >= 0.98", None),
        ("expectation_added", None, "paths[L0.H0 -> L1.H0.v] < -5"),
        ("expectation_added", None, "attn[L1.H0].to(answer_label) > 0.9"),
        ("expectation_added", None, "L1.MLP in output.correct_letter"),
        ("expectation_added", None, "accuracy(letters) >= 0.98"),
    ]


def test_a_removed_relation_and_an_added_one_name_both_sides():
    new = OLD[:3] + ["expect output.correct_letter == [L1.H0]"] + OLD[4:]
    found = [(kind, old, new) for kind, _, _, old, new in changes(spec(OLD), spec(new))]
    assert found == [("expectation_removed", "output <= strong", None),
                     ("expectation_added", None, "output.correct_letter == L1.H0")]

"""`circ diff` of specs pairs the expectations on faithfulness curves and grown
circuits: thresholds and targets changed in place, read through renames."""
from circ.compiler.api import compile_source
from circ.compiler.diff.spec import diff_specs

HEAD = '''spec "curve-forms"
model demo
data {clean} = mcq(n=16, seed=0)
metric ld = logit_diff(answer, wrong) at last
analysis p  = patch(heads + mlps, source=mean({clean}), target={clean}, metric=ld)
analysis fc = curve(p, on={clean}, metric=ld)
circuit {found} = discover(p, faithfulness={target})
'''

OLD = ["expect fc.cpr > 0.5", "expect fc.cmd < 0.5", "expect fc.size_at(0.9) <= 6",
       "expect faithfulness({found}) >= 0.9"]


def spec(lines, clean="clean", found="found", target=0.9):
    head = HEAD.format(clean=clean, found=found, target=target)
    return compile_source(head + "\n".join(line.format(found=found) for line in lines) + "\n", "forms.circ")


def changes(old, new):
    return [(c.kind, c.name, c.field, c.old, c.new) for c in diff_specs(old, new)]


def test_renamed_dataset_and_circuit_change_no_expectation():
    assert [c[0] for c in changes(spec(OLD), spec(OLD, clean="abcd", found="grown"))] == \
        ["dataset_renamed", "circuit_renamed"]


def test_thresholds_targets_and_growth_change_in_place():
    new = ["expect fc.cpr > 0.6", "expect fc.cmd <= 0.5", "expect fc.size_at(0.8) <= 6",
           "expect faithfulness({found}) >= 0.95"]
    found = changes(spec(OLD), spec(new, target=0.8))
    assert ("expectation_changed", "fc.cpr", "threshold", 0.5, 0.6) in found
    assert ("expectation_changed", "fc.cmd", "comparison", "<", "<=") in found
    assert ("expectation_changed", "faithfulness(found)", "threshold", 0.9, 0.95) in found
    assert any(c[0] == "expectation_changed" and "fc.size_at(0.9)" in str(c[3]) and "fc.size_at(0.8)" in str(c[4])
               for c in found), found
    assert [(c[3].grow.target, c[4].grow.target) for c in found if c[:2] == ("circuit_changed", "found")] == \
        [(0.9, 0.8)]

"""The expectation forms on faithfulness curves and grown circuits, on the demo model:
one spec whose claims all hold (exit 0) and one whose claims all fail (exit 1), each
value checked against the results it reads. The failing run resumes the passing
run's analyses, which are the same."""
import pytest
from circ.compiler import ir
from circ.runtime.execute.expectations import Uncomputable, quantity_value
from test_expect_forms import run_holding_and_failing

HEAD = '''spec "curve-forms"
model demo
data clean = mcq(n=8, labels="ABCD", seed=0)
metric ld = logit_diff(answer, wrong) at last
analysis p = patch(heads + mlps, source=mean(clean), target=clean, metric=ld)
analysis fc = curve(p, on=clean, metric=ld, points=5, random=2)
circuit found = discover(p, faithfulness=0.9)
'''

HOLDING = [
    "expect fc.cpr > 0.5",
    "expect fc.cmd < 0.5",
    "expect fc.size_at(0.9) <= 6",
    "expect faithfulness(found) >= 0.9",
]

FAILING = [
    "expect fc.cpr > 0.9",
    "expect fc.cmd < 0.1",
    "expect fc.size_at(0.9) <= 4",
    "expect faithfulness(found) < 0.5",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    return run_holding_and_failing(tmp_path_factory.mktemp("curve_forms"), HEAD, HOLDING, FAILING, 8)


def test_every_holding_form_passes_and_the_run_exits_0(runs):
    code, results = runs["holding"]
    assert [e["text"] for e in results["expectations"] if not e["passed"]] == []
    assert code == 0


def test_every_failing_form_fails_and_the_run_exits_1(runs):
    code, results = runs["failing"]
    assert [e["text"] for e in results["expectations"]] == FAILING
    assert [e["text"] for e in results["expectations"] if e["passed"]] == []
    assert code == 1


def test_values_are_the_curve_and_the_growth_they_read(runs):
    _, results = runs["holding"]
    read = {e["text"]: e["value"] for e in results["expectations"]}
    curve = results["analyses"]["fc"]
    assert read["expect fc.cpr > 0.5"] == pytest.approx(curve["cpr"])
    assert read["expect fc.cmd < 0.5"] == pytest.approx(curve["cmd"])
    assert curve["cpr"] > curve["random"]["cpr"]
    reaching = [k for k, f in zip(curve["sizes"], curve["faithfulness"]) if f >= 0.9]
    assert read["expect fc.size_at(0.9) <= 6"] == reaching[0]
    growth = results["circuits"]["found"]["faithfulness"]
    assert read["expect faithfulness(found) >= 0.9"] == pytest.approx(growth["value"], abs=1e-6)
    assert len(results["circuits"]["found"]["nodes"]) == growth["size"]


def test_a_size_never_reached_is_no_number():
    result = {"sizes": [0, 5, 10], "faithfulness": [0.0, 0.5, 0.8]}
    quantity = ir.Quantity("fc", "size_at", (("target", 0.9),))
    with pytest.raises(Uncomputable, match="no size that `fc` measured reaches faithfulness 0.9"):
        quantity_value(quantity, {"fc": result})
    assert quantity_value(ir.Quantity("fc", "size_at", (("target", 0.5),)), {"fc": result}) == 5.0

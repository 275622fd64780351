"""Edge attribution against exact path patching: equal to first order, so close for a
small patch and with an error that shrinks like its square."""
import pytest
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.edge_attribution import edge_attribution
from circ.runtime.analyses.path_patching import path_patch
from test_attribution import ScaledSource

LD = ir.Metric("ld", "logit_diff")
SENDERS = [ir.Node(0, "embed"), ir.Node(0, "head", 1), ir.Node(0, "head", 3), ir.Node(0, "mlp"), ir.Node(1, "head", 2)]
RECEIVERS = [ir.Node(1, "head_input", 0, "q"), ir.Node(1, "head_input", 3, "k"), ir.Node(1, "head_input", 1, "v"),
             ir.Node(1, "mlp"), ir.Node(0, "mlp")]



def gaps(tiny, prompts, source, kernel):
    exact = path_patch(tiny, prompts, SENDERS, RECEIVERS, LD, source, show_progress=False, batch_size=4)["values"]
    estimate = edge_attribution(tiny, prompts, SENDERS, RECEIVERS, LD, source, show_progress=False, batch_size=4,
                                kernel=kernel)["values"]
    assert estimate.keys() == exact.keys()
    return exact, estimate


@pytest.mark.parametrize("kernel", ["auto", "hooks"])
def test_small_patches_agree_with_path_patching(tiny, prompts, corrupt, kernel):
    exact, estimate = gaps(tiny, prompts, ScaledSource(tiny, corrupt, 0.01), kernel)
    error = sum(abs(exact[k] - estimate[k]) for k in exact)
    assert error <= 0.03 * sum(abs(v) for v in exact.values())
    for key, value in exact.items():
        if abs(value) > 1e-5:
            assert estimate[key] * value > 0, key
    exact2, estimate2 = gaps(tiny, prompts, ScaledSource(tiny, corrupt, 0.02), kernel)
    assert 3.0 <= sum(abs(exact2[k] - estimate2[k]) for k in exact2) / error <= 5.5


def test_edges_and_names(tiny, prompts, corrupt):
    result = edge_attribution(tiny, prompts, SENDERS, [ir.Node(1, "head", 2), ir.Node(1, "mlp")], LD, corrupt,
                              show_progress=False)
    keys = set(result["values"])
    assert {"L0.H1->L1.H2.q", "L0.H1->L1.H2.k", "L0.H1->L1.H2.v", "L1.H2->L1.MLP", "EMBED->L1.MLP"} <= keys
    assert "L1.H2->L1.H2.q" not in keys and not any(key.endswith("->L1.H2") for key in keys)
    assert len(keys) == 4 * 3 + 5  # earlier senders to each input of L1.H2, every sender to L1.MLP


def test_the_three_inputs_add_up_to_the_whole_head(tiny, prompts, corrupt):
    small = ScaledSource(tiny, corrupt, 0.01)
    head = ir.Node(1, "head", 1)
    exact = path_patch(tiny, prompts, SENDERS[:4], [head], LD, small, show_progress=False)["values"]
    parts = edge_attribution(tiny, prompts, SENDERS[:4], [head], LD, small, show_progress=False)["values"]
    for sender in SENDERS[:4]:
        together = sum(parts[f"{sender.id}->{head.id}.{p}"] for p in "qkv")
        assert together == pytest.approx(exact[f"{sender.id}->{head.id}"], rel=0.05, abs=1e-6)


def test_bad_requests(tiny, prompts, corrupt):
    with pytest.raises(AnalysisError, match="not normalised"):
        edge_attribution(tiny, prompts, SENDERS, RECEIVERS, ir.Metric("n", "logit_diff", normalized=True), corrupt)
    with pytest.raises(AnalysisError, match="no sender comes before"):
        edge_attribution(tiny, prompts, [ir.Node(1, "mlp")], [ir.Node(0, "head", 0)], LD, corrupt)
    with pytest.raises(AnalysisError, match="does not take L1.RESID"):
        edge_attribution(tiny, prompts, [ir.Node(1, "resid")], RECEIVERS, LD, corrupt)

"""Attribution patching against exact patching: a first-order estimate, so its error
must shrink like the square of the patch size; the AtP* attention fix; verify;
integrated gradients (steps) against a hand-written Riemann sum, and converging to the
exact effect of patching the embeddings."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.attribution import attribution_patch
from circ.runtime.analyses.common import AnalysisError, run_cached
from circ.runtime.analyses.patch_sources import SourceBatch
from circ.runtime.analyses.patching import patch

LD = ir.Metric("ld", "logit_diff")
NODES = ([ir.Node(layer, "head", head) for layer in range(2) for head in range(4)]
         + [ir.Node(0, "mlp"), ir.Node(1, "mlp"), ir.Node(0, "embed"), ir.Node(1, "resid"), ir.Node(2, "resid"),
            ir.Node(1, "head_input", 2, "q"), ir.Node(1, "head_input", 0, "k"), ir.Node(0, "head_input", 3, "v")])
QK = [ir.Node(layer, "head_input", head, part) for layer in range(2) for head in range(4) for part in "qk"]


class ScaledSource:
    """A patch source a fraction `eps` of the way from the clean run to another source."""

    runs_model = False

    def __init__(self, loaded, inner, eps):
        self.loaded, self.inner, self.eps = loaded, inner, eps

    def fetch(self, batch, hooks):
        _, clean = run_cached(self.loaded.bridge, batch.tokens, hooks)
        other = self.inner.fetch(batch, hooks).activations
        return SourceBatch({h: clean[h] + self.eps * (other[h] - clean[h]) for h in hooks}, None)



def errors(tiny, prompts, source, effect, **options):
    exact = patch(tiny, prompts, NODES, LD, source, effect=effect, show_progress=False, batch_size=4)["values"]
    estimate = attribution_patch(tiny, prompts, NODES, LD, source, effect=effect, show_progress=False, batch_size=4,
                                 **options)["values"]
    return sum(abs(exact[k] - estimate[k]) for k in exact), sum(abs(v) for v in exact.values())


@pytest.mark.parametrize("effect,eps", [("total", 0.01), ("direct", 0.1)])  # direct: only the final LayerNorm bends
def test_error_shrinks_like_the_square_of_the_patch(tiny, prompts, corrupt, effect, eps):
    small, size = errors(tiny, prompts, ScaledSource(tiny, corrupt, eps), effect)
    larger, _ = errors(tiny, prompts, ScaledSource(tiny, corrupt, 2 * eps), effect)
    assert small <= 0.05 * size
    assert 3.0 <= larger / small <= 5.5  # second order: doubling the patch quadruples the error


def test_bridge_and_engine_give_the_same_linear_estimates(tiny, prompts, corrupt):
    linear = [n for n in NODES if n not in QK]
    engine = attribution_patch(tiny, prompts, linear, LD, corrupt, show_progress=False)
    bridge = attribution_patch(tiny, prompts, linear, LD, corrupt, show_progress=False, kernel="hooks")
    assert (engine["estimator"], bridge["estimator"]) == ("AtP*", "AtP")
    for node in linear:
        assert engine["values"][node.id] == pytest.approx(bridge["values"][node.id], abs=1e-5), node.id
    assert engine["baseline"] == pytest.approx(bridge["baseline"], abs=1e-5)


def test_attention_fix_is_closer_for_queries_and_keys(tiny, prompts, corrupt):
    exact = patch(tiny, prompts, QK, LD, corrupt, show_progress=False)["values"]
    fixed = attribution_patch(tiny, prompts, QK, LD, corrupt, show_progress=False)["values"]
    linear = attribution_patch(tiny, prompts, QK, LD, corrupt, show_progress=False, kernel="hooks")["values"]
    fixed_error = sum(abs(fixed[k] - exact[k]) for k in exact)
    linear_error = sum(abs(linear[k] - exact[k]) for k in exact)
    print(f"\nq/k inputs: AtP* error {fixed_error:.4f}, AtP error {linear_error:.4f}")
    assert fixed_error < 0.75 * linear_error


def spearman(a, b):
    ranks = [torch.tensor(x).argsort().argsort().double() for x in (a, b)]
    ranks = [r - r.mean() for r in ranks]
    return float((ranks[0] * ranks[1]).sum() / (ranks[0].norm() * ranks[1].norm()))


def test_ranking_follows_exact_patching(tiny, prompts, corrupt):
    nodes = [n for n in NODES if n.kind in ("head", "mlp")]
    exact = patch(tiny, prompts, nodes, LD, corrupt, show_progress=False)["values"]
    estimate = attribution_patch(tiny, prompts, nodes, LD, corrupt, show_progress=False)["values"]
    rho = spearman([exact[n.id] for n in nodes], [estimate[n.id] for n in nodes])
    print(f"\nSpearman correlation of AtP* with exact patching on the tiny model: {rho:.3f}")
    assert rho >= 0.8


def test_verify_reruns_the_largest_estimates_exactly(tiny, prompts, corrupt):
    result = patch(tiny, prompts, NODES, LD, corrupt, method="attribution", verify=3, show_progress=False)
    top = sorted(result["values"], key=lambda k: -abs(result["values"][k]))[:3]
    assert sorted(result["exact"]) == sorted(top)
    nodes = [n for n in NODES if n.id in top]
    exact = patch(tiny, prompts, nodes, LD, corrupt, show_progress=False)["values"]
    assert result["exact"] == pytest.approx(exact, abs=1e-6)


def test_normalised_metric_divides_by_the_gap(tiny, prompts, corrupt):
    raw = attribution_patch(tiny, prompts, NODES, LD, corrupt, show_progress=False)
    normalised = attribution_patch(tiny, prompts, NODES, ir.Metric("n", "logit_diff", normalized=True), corrupt,
                                   show_progress=False)
    gap = raw["baseline"]["clean"] - raw["baseline"]["patched_source"]
    for key, value in raw["values"].items():
        assert normalised["values"][key] == pytest.approx(value / gap, rel=1e-5, abs=1e-9)


def hand_written_integrated_gradients(loaded, prompts, steps):
    """-(source - clean) . mean gradient over the token embeddings moved k/steps of the
    way to the corrupted prompt's, per head and MLP, summed over prompts, divided by n:
    the estimate of metric(clean) - metric(patched), positive when the node helps."""
    bridge = loaded.bridge
    sites = [f"blocks.{layer}.attn.hook_z" for layer in range(2)] + [f"blocks.{layer}.hook_mlp_out" for layer in range(2)]
    with torch.no_grad():
        _, clean = bridge.run_with_cache(prompts.tokens, names_filter=sites + ["hook_embed"])
        _, source = bridge.run_with_cache(prompts.corrupt, names_filter=sites + ["hook_embed"])
    rows, last = torch.arange(len(prompts)), prompts.lengths - 1
    gradients = dict.fromkeys(sites, 0.0)
    for k in range(steps):
        kept = {}

        def move(activation, hook, alpha=k / steps):
            return torch.lerp(clean["hook_embed"], source["hook_embed"], alpha)

        def keep(site):
            def hook(activation, hook):
                kept[site] = activation.view_as(activation)
                return kept[site]

            return hook

        with torch.enable_grad():
            logits = bridge.run_with_hooks(prompts.tokens,
                                           fwd_hooks=[("hook_embed", move)] + [(s, keep(s)) for s in sites])
            final = logits[rows, last]
            wrong = (final.gather(1, prompts.wrong) * prompts.wrong_valid).sum(1) / prompts.wrong_valid.sum(1)
            found = torch.autograd.grad((final[rows, prompts.answer] - wrong).sum(), [kept[s] for s in sites])
        for site, gradient in zip(sites, found):
            gradients[site] = gradients[site] + gradient / steps
    mask = (torch.arange(prompts.tokens.shape[1])[None] < prompts.lengths[:, None]).float()
    values = {}
    for site in sites:
        product = (source[site] - clean[site]) * gradients[site]
        layer = int(site.split(".")[1])
        if "hook_z" in site:
            per_head = (product * mask[..., None, None]).sum((0, 1, 3))
            values.update({f"L{layer}.H{head}": -float(per_head[head]) / len(prompts) for head in range(4)})
        else:
            values[f"L{layer}.MLP"] = -float((product * mask[..., None]).sum()) / len(prompts)
    return values


@pytest.mark.parametrize("kernel", ["auto", "hooks"])
def test_integrated_gradients_equal_a_hand_written_riemann_sum(tiny, prompts, corrupt, kernel):
    nodes = [n for n in NODES if n.kind in ("head", "mlp")]
    result = attribution_patch(tiny, prompts, nodes, LD, corrupt, show_progress=False, batch_size=4, steps=4,
                               kernel=kernel)
    assert result["estimator"] == ("AtP* + IG(4)" if kernel == "auto" else "AtP + IG(4)")
    expected = hand_written_integrated_gradients(tiny, prompts, 4)
    for node in nodes:
        assert result["values"][node.id] == pytest.approx(expected[node.id], abs=1e-5), node.id
    one = attribution_patch(tiny, prompts, nodes, LD, corrupt, show_progress=False, steps=1)["values"]
    assert one == attribution_patch(tiny, prompts, nodes, LD, corrupt, show_progress=False)["values"]
    assert max(abs(one[n.id] - result["values"][n.id]) for n in nodes) > 1e-3


def test_integrating_over_more_steps_converges_to_patching_the_embeddings(tiny, prompts, corrupt):
    """Moving every input embedding to the source's is exactly patching EMBED, so the
    estimates of that node approach its exact effect as the steps grow (error ~ 1/steps)."""
    embed = [ir.Node(0, "embed")]
    exact = patch(tiny, prompts, embed, LD, corrupt, show_progress=False)["values"]["EMBED"]
    error = {steps: abs(attribution_patch(tiny, prompts, embed, LD, corrupt, show_progress=False,
                                          steps=steps)["values"]["EMBED"] - exact)
             for steps in (1, 8, 32)}
    print(f"\nEMBED: exact {exact:+.4f}; errors by steps {error}")
    assert 2.5 <= error[8] / error[32] <= 6  # first order in 1 / steps: 4 times smaller
    assert error[32] <= 0.05 * error[1]


def test_bad_requests(tiny, prompts, corrupt):
    with pytest.raises(AnalysisError, match="verify takes a number"):
        attribution_patch(tiny, prompts, NODES, LD, corrupt, verify=-1)
    with pytest.raises(AnalysisError, match="steps takes a number"):
        attribution_patch(tiny, prompts, NODES, LD, corrupt, steps=0)
    with pytest.raises(AnalysisError, match="steps > 1 integrates along the inputs"):
        attribution_patch(tiny, prompts, NODES, LD, corrupt, effect="direct", steps=2)
    with pytest.raises(AnalysisError, match="need method=attribution"):
        patch(tiny, prompts, NODES, LD, corrupt, steps=2)
    with pytest.raises(AnalysisError, match="direct effects needs a model the fast engine runs"):
        attribution_patch(tiny, prompts, NODES, LD, corrupt, effect="direct", kernel="hooks")
    with pytest.raises(AnalysisError, match="need method=attribution"):
        patch(tiny, prompts, NODES, LD, corrupt, verify=2)

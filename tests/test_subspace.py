"""Low-rank q/k/v fits: a query planted in one direction is recovered at rank 1, and
scores match a projection computed independently with torch.linalg.svd."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.analyses.subspace import subspace
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples, write_jsonl

LD = ir.Metric("ld", "logit_diff")


def plant_rank_one_query(loaded, layer=1, head=2):
    """Make the head's query weight an outer product, so every query minus the mean
    lies on one direction."""
    d_model, d_head = loaded.shape.d_model, loaded.shape.d_head
    attn = loaded.bridge.original_model.transformer.h[layer].attn
    generator = torch.Generator().manual_seed(3)
    u = torch.randn(d_model, generator=generator)
    v = torch.randn(d_head, generator=generator) * 3
    with torch.no_grad():
        attn.c_attn.weight[:, head * d_head:(head + 1) * d_head] = torch.outer(u, v)


def test_planted_rank_one_query_recovers_fully_at_rank_one(fresh_tiny):
    plant_rank_one_query(fresh_tiny)
    fit = tokenize(fresh_tiny, mcq_examples(8, ragged=True), source_name="clean")
    other = tokenize(fresh_tiny, mcq_examples(5, seed=9), source_name="other")
    heads = [ir.Node(1, "head", 2), ir.Node(1, "head", 0)]
    result = subspace(fresh_tiny, fit, heads, LD, parts=["q"], ranks=[1, 2, "full"], evals={"other": other},
                      batch_size=3, show_progress=False)
    planted, plain = result["values"]["L1.H2"], result["values"]["L1.H0"]
    assert set(planted) == {"clean", "other"}
    for dataset in ("clean", "other"):
        assert planted[dataset]["1"] == pytest.approx(1.0, abs=1e-4)
        assert planted[dataset]["full"] == 1.0
    assert result["explained"]["L1.H2"]["q"]["1"] == pytest.approx(1.0, abs=1e-5)
    assert abs(plain["clean"]["1"] - 1.0) > 1e-3
    assert result["explained"]["L1.H0"]["q"]["1"] < 0.99
    assert result["per_part"] == {}


def svd_recovery(loaded, prompts, head, part, rank):
    """Fit with torch.linalg.svd on the stacked vectors and score with plain hooks."""
    name = f"blocks.{head.layer}.attn.hook_{part}"
    with torch.no_grad():
        logits, cache = loaded.bridge.run_with_cache(prompts.tokens)
    vectors = cache[name][:, :, head.head][prompts.real_mask()]
    mean = vectors.mean(0)
    _, _, vh = torch.linalg.svd(vectors - mean, full_matrices=False)
    top = vh[:rank].T

    def run(replace):
        def hook(x, hook):
            x = x.clone()
            x[:, :, head.head] = replace(x[:, :, head.head])
            return x
        with torch.no_grad():
            patched = loaded.bridge.run_with_hooks(prompts.tokens, fwd_hooks=[(name, hook)])
        return metric_values(patched, prompts, LD).mean().item()

    clean = metric_values(logits, prompts, LD).mean().item()
    ablated = run(lambda x: mean.expand_as(x))
    ranked = run(lambda x: mean + (x - mean) @ top @ top.T)
    return (ranked - ablated) / (clean - ablated)


def test_scores_match_an_independent_svd(tiny):
    prompts = tokenize(tiny, mcq_examples(6, ragged=True), source_name="clean")
    head = ir.Node(1, "head", 1)
    result = subspace(tiny, prompts, [head], LD, parts=["q", "k"], ranks=[2, 5], show_progress=False)
    for part in ("q", "k"):
        for rank in (2, 5):
            expected = svd_recovery(tiny, prompts, head, part, rank)
            assert result["per_part"]["L1.H1"][part]["clean"][str(rank)] == pytest.approx(expected, abs=1e-4)
    assert set(result["values"]["L1.H1"]["clean"]) == {"2", "5"}


def test_bad_parts_and_ranks(tiny):
    prompts = tokenize(tiny, mcq_examples(2), source_name="clean")
    with pytest.raises(AnalysisError, match="parts are q, k and v"):
        subspace(tiny, prompts, [ir.Node(0, "head", 0)], LD, parts=["z"])
    with pytest.raises(AnalysisError, match="positive integer or full"):
        subspace(tiny, prompts, [ir.Node(0, "head", 0)], LD, ranks=[0])


def test_a_spec_reads_recovery_by_the_dataset_names_it_used(tiny_dir, tmp_path):
    """`low.recovered(clean, ...)` must find the fit dataset under its spec name, even
    when the data came from a file."""
    import json

    from circ.cli.run import run_spec

    write_jsonl(tmp_path / "data.jsonl", mcq_examples(6, seed=4))
    (tmp_path / "s.circ").write_text(f'''model hf("{tiny_dir}")
data clean = jsonl("data.jsonl")
data other = jsonl("data.jsonl", n=3)
metric ld = logit_diff(answer, wrong) at last
analysis low = subspace(L1.H0, parts=[q], ranks=[1, full], fit=clean, eval=[other], metric=ld)
expect low.recovered(clean, rank == full) >= 0.99
expect low.recovered(other, rank == full) >= 0.99
''')
    code = run_spec(str(tmp_path / "s.circ"), str(tmp_path / "out"), model=None, device=None, batch_size=4,
                    seed=0, trust_remote_code=False, progress=False)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["analyses"]["low"]["values"]["L1.H0"]) == {"clean", "other"}
    assert [e["value"] for e in results["expectations"]] == [1.0, 1.0]
    assert code == 0


def test_ratio_of_means_error_equals_the_covariance_form_of_the_delta_method():
    import math
    import statistics

    from circ.runtime.analyses.node_stats import ratio_of_means

    above = torch.tensor([1.0, 2.5, 0.5, 3.0, 2.0], dtype=torch.float64)
    below = torch.tensor([2.0, 3.0, 1.5, 4.0, 2.5], dtype=torch.float64)
    ratio, error = ratio_of_means(above, below)
    a, b = above.tolist(), below.tolist()
    r = statistics.mean(a) / statistics.mean(b)
    variance = statistics.variance(a) - 2 * r * statistics.covariance(a, b) + r * r * statistics.variance(b)
    assert ratio == pytest.approx(r, abs=1e-12)
    assert error == pytest.approx(math.sqrt(variance / len(a)) / statistics.mean(b), abs=1e-12)
    assert ratio_of_means(above, torch.tensor([1.0, -1.0, 2.0, -2.0, 0.0], dtype=torch.float64)) == (None, None)


def test_recoveries_carry_their_standard_error_and_prompt_count(tiny):
    prompts = tokenize(tiny, mcq_examples(6, ragged=True), source_name="clean")
    result = subspace(tiny, prompts, [ir.Node(1, "head", 1)], LD, parts=["q"], ranks=[1, 4, "full"],
                      show_progress=False)
    errors = result["stderr"]["L1.H1"]["clean"]
    assert result["n"] == {"clean": 6} and errors["full"] == 0.0
    assert set(errors) == {"1", "4", "full"} and all(errors[r] > 0 for r in ("1", "4"))

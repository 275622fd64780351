"""ablate(): a set of nodes ablated together, against hand-written hooks and a metric
computed by hand; and through a spec, with the set chosen from attention scores."""
import json
import math

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.ablation import ablate
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples, write_jsonl

from circ.cli.run import run_spec

LD = ir.Metric("ld", "logit_diff")
NODES = [ir.Node(0, "head", 1), ir.Node(1, "head", 3), ir.Node(1, "head", 0), ir.Node(0, "mlp")]


def logit_diffs(logits, prompts):
    """Per prompt: the answer's logit minus its one wrong answer's, at the last token."""
    out = []
    for i in range(len(prompts)):
        last = logits[i, int(prompts.lengths[i]) - 1]
        out.append(float(last[prompts.answer[i]] - last[prompts.wrong[i, 0]]))
    return out


def hand_ablated(loaded, prompts, replacement):
    """The run with L0.H1, L1.H3, L1.H0 and L0.MLP written from `replacement` by our own hooks."""
    def heads(layer, chosen):
        def hook(z, hook):
            z = z.clone()
            for h in chosen:
                z[:, :, h] = replacement[f"blocks.{layer}.attn.hook_z"][:, :, h]
            return z
        return hook

    hooks = [("blocks.0.attn.hook_z", heads(0, [1])), ("blocks.1.attn.hook_z", heads(1, [3, 0])),
             ("blocks.0.hook_mlp_out", lambda x, hook: replacement["blocks.0.hook_mlp_out"].clone())]
    with torch.no_grad():
        return loaded.bridge.run_with_hooks(prompts.tokens, fwd_hooks=hooks)


def stats(samples):
    n = len(samples)
    mean = sum(samples) / n
    return mean, math.sqrt(sum((x - mean) ** 2 for x in samples) / (n - 1) / n)


def test_ablation_matches_hand_written_hooks(tiny):
    prompts = tokenize(tiny, mcq_examples(7), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("corrupt"), {}, batch_size=3)
    result = ablate(tiny, prompts, NODES, LD, source, batch_size=3, show_progress=False)
    with torch.no_grad():
        clean_logits = tiny.bridge(prompts.tokens)
        _, corrupt_cache = tiny.bridge.run_with_cache(prompts.corrupt)
    clean = logit_diffs(clean_logits, prompts)
    ablated = logit_diffs(hand_ablated(tiny, prompts, corrupt_cache), prompts)
    helped = [c - a for a, c in zip(ablated, clean)]
    for key, samples in (("clean", clean), ("ablated", ablated), ("value", helped)):
        mean, stderr = stats(samples)
        assert result[key] == pytest.approx(mean, abs=1e-5), key
        assert result["stderr"][key] == pytest.approx(stderr, abs=1e-5), key
    assert result["n"] == 7 and result["nodes"] == [n.id for n in NODES]
    assert abs(result["value"]) > 1e-3  # the ablation moved the metric: the comparison is not vacuous


def test_a_lower_is_better_metric_turns_the_value_round(tiny):
    prompts = tokenize(tiny, mcq_examples(4), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("zero"), {})
    loss = ablate(tiny, prompts, NODES, ir.Metric("nll", "loss"), source, show_progress=False)
    assert loss["value"] == pytest.approx(loss["ablated"] - loss["clean"], abs=1e-9)
    assert loss["value"] != 0.0


def test_ablation_rejects_other_nodes(tiny):
    prompts = tokenize(tiny, mcq_examples(2), source_name="clean")
    source = make_source(tiny, prompts, ir.PatchSource("zero"), {})
    with pytest.raises(AnalysisError, match="does not take L0.RESID"):
        ablate(tiny, prompts, [ir.Node(0, "resid")], LD, source, show_progress=False)


SPEC = '''spec "ablate-chosen"
model hf("{model}")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis prev = attention(heads, on=clean, score=previous_token)
analysis ko = ablate(top(prev, 2), on=clean, with=zero, metric=ld)
analysis rest = ablate(heads - top(prev, 2), on=clean, with=zero, metric=ld)
circuit mixed = top(prev, 2) + L0.MLP
categories mixed {
  scored = effect > 0
  fixed  = effect == 0
}
expect ko.value > -100
'''


def test_ablating_the_top_scored_heads_through_a_spec(tiny_dir, tmp_path):
    write_jsonl(tmp_path / "data.jsonl", mcq_examples(5))
    (tmp_path / "s.circ").write_text(SPEC.replace("{model}", str(tiny_dir)))
    code = run_spec(str(tmp_path / "s.circ"), str(tmp_path / "out"), model=None, device=None, batch_size=4,
                    seed=0, trust_remote_code=False, progress=False)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0
    scores = results["analyses"]["prev"]["values"]
    top2 = sorted(sorted(scores, key=lambda h: -scores[h])[:2])
    assert sorted(results["analyses"]["ko"]["nodes"]) == top2
    every = {f"L{l}.H{h}" for l in range(2) for h in range(4)}
    assert set(results["analyses"]["rest"]["nodes"]) == every - set(top2)
    mixed = {n["id"]: (n["category"], n["score"]) for n in results["circuits"]["mixed"]["nodes"]}
    assert mixed == {**{h: ("scored", scores[h]) for h in top2}, "L0.MLP": ("fixed", 0.0)}

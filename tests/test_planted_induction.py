"""The Llama-architecture model with induction heads planted by hand: the committed
folder is what the script builds, the scores on it equal a hand-written hook, and
specs/induction_llama.circ chooses exactly the planted heads."""
import json
from pathlib import Path

import pytest
from circ.compiler import ir
from circ.runtime.analyses.attention_scores import attention_scores
from circ.runtime.data.prompts import tokenize
from circ.runtime.data.readers import read_jsonl
from conftest import load_tiny
from planted_induction import PLANTED, build_model_dir, repeated_records, write_records
from test_attention_scores import scores_by_hand

from circ.cli.run import run_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"
MODEL, DATA = SPECS / "models" / "induction_llama", SPECS / "data" / "induction_llama.jsonl"


def test_committed_model_and_prompts_are_what_the_script_builds(tmp_path):
    build_model_dir(tmp_path / "model")
    write_records(tmp_path / "data.jsonl", repeated_records(24))
    for path in sorted(MODEL.iterdir()):
        assert (tmp_path / "model" / path.name).read_bytes() == path.read_bytes(), path.name
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(p.name for p in MODEL.iterdir())
    assert (tmp_path / "data.jsonl").read_bytes() == DATA.read_bytes()
    assert sum(p.stat().st_size for p in MODEL.iterdir()) < 500_000


@pytest.fixture(scope="module")
def planted():
    return load_tiny(MODEL)


@pytest.mark.parametrize("score", ["induction", "previous_token"])
def test_scores_on_the_llama_model_match_a_hand_written_hook(planted, score):
    assert planted.bridge.cfg.n_key_value_heads == 2  # grouped-query attention
    prompts = tokenize(planted, read_jsonl(DATA)[:8],
                       source_name="seqs")
    heads = [ir.Node(layer, "head", head) for layer in range(2) for head in range(4)]
    result = attention_scores(planted, prompts, heads, score=score, batch_size=3, show_progress=False)
    for head in heads:
        per_prompt, _ = scores_by_hand(planted, prompts, head, score)
        assert result["values"][head.id] == pytest.approx(sum(per_prompt) / len(per_prompt), abs=1e-6)
    planted_head = PLANTED[0] if score == "previous_token" else PLANTED[1]
    assert result["values"][planted_head] > 0.99
    assert max(v for h, v in result["values"].items() if h != planted_head) < 0.2


def test_the_spec_chooses_the_planted_heads(tmp_path):
    code = run_spec(str(SPECS / "induction_llama.circ"), str(tmp_path), model=None, device=None, batch_size=8,
                    seed=0, trust_remote_code=False, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    assert code == 0
    circuits = {name: [n["id"] for n in c["nodes"]] for name, c in results["circuits"].items()}
    assert circuits["induction_heads"] == ["L1.H2"] and circuits["previous_token_heads"] == ["L0.H1"]
    assert set(circuits["others"]) == {f"L{l}.H{h}" for l in range(2) for h in range(4)} - set(PLANTED)
    assert results["analyses"]["knockout"]["nodes"] == ["L0.H1", "L1.H2"]
    assert results["analyses"]["rest"]["value"] == pytest.approx(0.0, abs=1e-6)


def test_ablating_the_induction_head_matches_a_hand_written_hook(planted):
    import torch
    from circ.runtime.analyses.ablation import ablate
    from circ.runtime.analyses.patch_sources import make_source

    prompts = tokenize(planted, read_jsonl(DATA)[:6], source_name="seqs")
    lp = ir.Metric("lp", "logprob")
    zero = make_source(planted, prompts, ir.PatchSource("zero"), {})
    result = ablate(planted, prompts, [ir.Node(1, "head", 2)], lp, zero, batch_size=4, show_progress=False)

    def zero_head(z, hook):
        z = z.clone()
        z[:, :, 2] = 0.0
        return z

    with torch.no_grad():
        clean = planted.bridge(prompts.tokens).log_softmax(-1)
        ablated = planted.bridge.run_with_hooks(prompts.tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_head)])
    ablated = ablated.log_softmax(-1)
    last = prompts.lengths - 1
    rows = torch.arange(len(prompts))
    clean_lp = clean[rows, last, prompts.answer]
    ablated_lp = ablated[rows, last, prompts.answer]
    assert result["clean"] == pytest.approx(float(clean_lp.mean()), abs=1e-5)
    assert result["ablated"] == pytest.approx(float(ablated_lp.mean()), abs=1e-5)
    assert result["value"] == pytest.approx(float((clean_lp - ablated_lp).mean()), abs=1e-5)
    assert result["value"] > 1.0

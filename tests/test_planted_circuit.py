"""A circuit planted by hand in a GPT-2's weights (tests/planted_model.py) must be found
exactly by `circ run`: the previous-token head L0.H2 and the copying head L1.H1, no
more, no fewer. Numbers are checked against what the construction implies: the clean
logit difference is known in closed form, and patching either planted head from the
corrupted prompt (marker moved) makes the model copy the wrong word, which flips the
logit difference's sign. Every check runs in raw numerics and in compatibility mode
(folded LayerNorm), which must agree."""
import json

import pytest
import torch
from planted_model import (
    MARKER,
    PLANTED,
    build_planted_model_dir,
    expected_logit_diff,
    marker_records,
    spec_text,
)

from circ.cli.run import run_spec

N_PROMPTS = 16
EXACT = 1e-4  # float32 agreement with the closed-form values


@pytest.fixture(scope="module", params=["raw", "compat"])
def planted_run(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"planted-{request.param}")
    build_planted_model_dir(folder / "model")
    with open(folder / "data.jsonl", "w") as handle:
        for record in marker_records(N_PROMPTS, seed=1):
            handle.write(json.dumps(record) + "\n")
    spec = spec_text(compat=request.param == "compat")
    (folder / "planted.circ").write_text(spec)
    code = run_spec(str(folder / "planted.circ"), str(folder / "out"), model=None, device=None,
                    batch_size=16, seed=0, trust_remote_code=False, progress=False)
    results = json.loads((folder / "out" / "results.json").read_text())
    assert results["model"]["numerics"] == request.param
    return folder, code, results


def test_planted_model_does_the_task_through_the_planted_heads(tmp_path):
    """Independent of circ: plain transformers on 200 fresh prompts."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    build_planted_model_dir(tmp_path)
    model = GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    records = marker_records(200, seed=7)
    for record in records:  # the marks point at the marker, the answer and the word before "="
        prompt, marks = record["prompt"], record["marks"]
        assert prompt[marks["marker"][0]:].split()[0] == MARKER
        assert f" {prompt[marks['after_marker'][0]:].split()[0]}" == record["answer"]
        assert prompt[marks["last_word"][0]:].split()[1] == "="

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    tokens = torch.tensor([[tokenizer.bos_token_id, *ids(r["prompt"])] for r in records])
    answer = torch.tensor([ids(r["answer"])[0] for r in records])
    wrong = torch.tensor([ids(r["wrong"][0])[0] for r in records])
    rows = torch.arange(len(records))
    with torch.no_grad():
        out = model(tokens, output_attentions=True)
    final = out.logits[:, -1]
    assert torch.equal(final.argmax(-1), answer)  # 100% accuracy over the whole vocabulary
    difference = final[rows, answer] - final[rows, wrong]
    assert torch.allclose(difference, torch.full_like(difference, expected_logit_diff()), atol=EXACT)
    assert expected_logit_diff() > 10

    previous = out.attentions[0][:, 2]  # [batch, query, key]
    assert torch.all(previous[:, 1:].diagonal(offset=0, dim1=1, dim2=2) > 0.999)  # row i+1 -> key i
    after_marker = (tokens == tokenizer.convert_tokens_to_ids(MARKER)).int().argmax(1) + 1
    assert torch.all(out.attentions[1][rows, 1, -1, after_marker] > 0.999)


def test_circ_run_names_exactly_the_planted_heads(planted_run):
    _, code, results = planted_run
    assert code == 0
    nodes = results["circuits"]["found"]["nodes"]
    assert [n["id"] for n in nodes] == list(PLANTED)
    assert results["circuit"]["name"] == "found"
    values = results["analyses"]["patched"]["values"]
    assert len(values) == 8 + 2  # top 5 alone would have kept three dead nodes
    assert all(abs(v) < EXACT for node, v in values.items() if node not in PLANTED)


def test_categories_read_the_planted_attention(planted_run):
    _, _, results = planted_run
    categories = {n["id"]: n["category"] for n in results["circuits"]["found"]["nodes"]}
    assert categories == {"L0.H2": "previous_token", "L1.H1": "copier"}


def test_total_effects_flip_the_answer(planted_run):
    _, _, results = planted_run
    patched = results["analyses"]["patched"]
    clean = expected_logit_diff()
    assert patched["baseline"]["clean"] == pytest.approx(clean, abs=EXACT)
    assert patched["baseline"]["patched_source"] == pytest.approx(-clean, abs=EXACT)
    for node in PLANTED:  # each helps: patching it flips the answer, clean - patched = 2 * clean
        assert patched["values"][node] == pytest.approx(2 * clean, abs=EXACT)


def test_previous_token_head_acts_only_through_the_copying_head(planted_run):
    _, _, results = planted_run
    total = results["analyses"]["patched"]["values"]
    direct = results["analyses"]["direct"]["values"]
    assert abs(direct["L0.H2"]) < EXACT < abs(total["L0.H2"])
    assert direct["L1.H1"] == pytest.approx(total["L1.H1"], abs=EXACT)  # nothing after it but a dead MLP
    assert all(abs(v) < EXACT for node, v in direct.items() if node not in PLANTED)


def test_copying_head_has_the_largest_direct_logit_attribution(planted_run):
    _, _, results = planted_run
    dla = results["analyses"]["dla"]
    values = dla["values"]
    assert max(values, key=lambda node: abs(values[node])) == "L1.H1"
    assert values["L1.H1"] == pytest.approx(expected_logit_diff(), abs=EXACT)
    assert dla["total"] == pytest.approx(expected_logit_diff(), abs=EXACT)
    assert sum(values.values()) == pytest.approx(dla["total"], abs=EXACT)
    assert all(abs(v) < EXACT for node, v in values.items() if node != "L1.H1")


def test_path_patching_finds_the_key_edge(planted_run):
    _, _, results = planted_run
    paths = results["analyses"]["paths"]["values"]
    assert set(paths) == {f"L0.H{h}->L1.H1.{p}" for h in range(4) for p in "qkv"}
    assert paths["L0.H2->L1.H1.k"] == pytest.approx(2 * expected_logit_diff(), abs=EXACT)
    assert all(abs(v) < EXACT for edge, v in paths.items() if edge != "L0.H2->L1.H1.k")
    edges = {(e["src"], e["dst"], e["part"]): e["weight"] for e in results["circuits"]["found"]["edges"]}
    assert set(edges) == {("L0.H2", "L1.H1", p) for p in "qkv"}
    assert edges[("L0.H2", "L1.H1", "k")] == pytest.approx(paths["L0.H2->L1.H1.k"])
    assert edges[("L0.H2", "L1.H1", "k")] > 0  # helps: positive
    scores = {n["id"]: n["score"] for n in results["circuits"]["found"]["nodes"]}
    effects = results["analyses"]["patched"]["values"]
    assert scores == pytest.approx({node: effects[node] for node in scores})


def test_diagram_shows_the_planted_circuit(planted_run):
    folder, _, _ = planted_run
    dot = (folder / "out" / "found.dot").read_text()
    assert dot.startswith("digraph")
    assert "L0.H2" in dot and "L1.H1" in dot
    assert "L0.H0" not in dot and "L1.H2" not in dot

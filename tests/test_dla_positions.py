"""attribute(at=each) and attribute(at=[...]): the direct logit attribution of the
metric read at each token position, checked against a hand-written removal from the
final residual stream at that position (LayerNorm scale held at its clean value)."""
import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.dla import attribute
from circ.runtime.analyses.metrics import metric_values
from circ.runtime.data.prompts import tokenize
from conftest import mcq_examples
from test_dla import all_nodes, removal_effect

LD = ir.Metric("ld", "logit_diff")


@pytest.fixture(scope="module")
def each(tiny):
    prompts = tokenize(tiny, mcq_examples(5), source_name="d")
    assert len(set(prompts.lengths.tolist())) == 1  # one token length: every position is one slot
    result = attribute(tiny, prompts, all_nodes(tiny.shape), LD, position=ir.EACH, batch_size=2,
                       show_progress=False)
    return prompts, result


def _at(p: int) -> ir.Metric:
    return ir.Metric("ld", "logit_diff", ir.Position("index", index=p))


def removal_at(loaded, prompts, p, part_of_resid):
    """The logit difference at position p, clean minus with `part_of_resid(cache)` taken
    out of the final residual stream (the final LayerNorm keeps its clean scale)."""
    return removal_effect(loaded, prompts, part_of_resid, metric=_at(p))


def test_each_cell_is_its_removal_effect_at_that_position(tiny, each):
    prompts, result = each
    W_O = tiny.bridge.W_O.detach()
    width = prompts.tokens.shape[1]
    parts = {"L0.MLP": lambda c: c["blocks.0.hook_mlp_out"],
             "L1.H2": lambda c: c["blocks.1.attn.hook_z"][:, :, 2] @ W_O[1, 2],
             "EMBED": lambda c: c["blocks.0.hook_resid_pre"]}
    checked = []
    for node_id, part in parts.items():
        for p in (1, width // 2, width - 1):
            expected = removal_at(tiny, prompts, p, part)
            assert result["positions"][node_id][str(p)] == pytest.approx(expected, abs=1e-4), (node_id, p)
            checked.append(expected)
    assert len({round(v, 5) for v in checked}) == len(checked)  # not the same number everywhere


def test_parts_sum_to_the_logit_difference_at_every_position(tiny, each):
    prompts, result = each
    width = prompts.tokens.shape[1]
    assert set(result["positions"]["L0.H0"]) == {str(p) for p in range(width)}
    with torch.no_grad():
        logits = tiny.bridge(prompts.tokens)
    for p in range(width):
        direct = metric_values(logits, prompts, _at(p)).mean().item()
        summed = sum(by_position[str(p)] for by_position in result["positions"].values())
        assert summed == pytest.approx(direct, abs=1e-4), p


def test_values_stay_those_at_the_metric_position_and_tokens_are_the_first_prompt(tiny, each):
    prompts, result = each
    plain = attribute(tiny, prompts, all_nodes(tiny.shape), LD, show_progress=False)
    assert result["values"] == pytest.approx(plain["values"], abs=1e-6)
    last = str(prompts.tokens.shape[1] - 1)
    assert result["values"]["L1.H2"] == pytest.approx(result["positions"]["L1.H2"][last], abs=1e-6)
    assert result["tokens"] == tiny.tokenizer.convert_ids_to_tokens(prompts.tokens[0].tolist())


def test_listed_positions_are_keyed_by_name_on_ragged_prompts(tiny):
    prompts = tokenize(tiny, mcq_examples(5, ragged=True), source_name="d")
    listed = ir.Position("each", items=(ir.Position("named", name="answer_label"), ir.LAST))
    result = attribute(tiny, prompts, all_nodes(tiny.shape), LD, position=listed, show_progress=False)
    at_label = attribute(tiny, prompts, all_nodes(tiny.shape),
                         ir.Metric("ld", "logit_diff", ir.Position("named", name="answer_label")),
                         show_progress=False)
    assert set(result["positions"]["L0.H1"]) == {"answer_label", "last"}
    assert result["tokens"] is None
    for node_id, value in at_label["values"].items():
        assert result["positions"][node_id]["answer_label"] == pytest.approx(value, abs=1e-6)
        assert result["positions"][node_id]["last"] == pytest.approx(result["values"][node_id], abs=1e-6)


def test_each_needs_prompts_of_one_length(tiny):
    prompts = tokenize(tiny, mcq_examples(5, ragged=True), source_name="d")
    with pytest.raises(AnalysisError, match=r"attribute\(at=each\) needs prompts of one token length"):
        attribute(tiny, prompts, all_nodes(tiny.shape), LD, position=ir.EACH, show_progress=False)


def test_parts_sum_at_every_position_on_the_llama_family(bpe_models):
    """RMSNorm, rotary positions, no biases: the identity holds there too."""
    from circ.runtime.data.examples import Example

    llama = bpe_models["llama"]
    generator = torch.Generator().manual_seed(0)
    examples = [Example(prompt="", answer=int(ids[-1]), wrong=(int(ids[0]), int(ids[1])),
                        tokens=tuple(int(i) for i in ids[:-1]), line=row + 1)
                for row, ids in enumerate(torch.randint(1, llama.shape.d_vocab, (4, 9), generator=generator))]
    prompts = tokenize(llama, examples, source_name="ids")
    result = attribute(llama, prompts, all_nodes(llama.shape), LD, position=ir.EACH, show_progress=False)
    with torch.no_grad():
        logits = llama.bridge(prompts.tokens)
    for p in range(8):
        direct = metric_values(logits, prompts, _at(p)).mean().item()
        assert sum(row[str(p)] for row in result["positions"].values()) == pytest.approx(direct, abs=1e-4), p
    assert max(abs(row["3"]) for row in result["positions"].values()) > 0.01

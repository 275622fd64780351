"""Cost estimates: parameter counts against real models, FLOPs against torch's FLOP
counter, and pass counts and padded widths against the forward passes a real run makes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from circ.compiler.api import compile_file, compile_source, plan
from circ.compiler.estimate.cost import estimate_plan
from circ.compiler.estimate.cost_shapes import (
    NAMED_SHAPES,
    EstimateError,
    cost_shape,
    from_config,
    from_ir_shape,
)
from circ.runtime.data.token_counts import measure_prompts, prompt_lengths
from click.testing import CliRunner
from conftest import build_tiny_model_dir, mcq_examples, write_jsonl

from circ.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- shapes
def test_named_shapes_count_their_parameters():
    llama = NAMED_SHAPES["llama-7b"]
    # Llama-7B has 6,738,415,616 parameters; the estimate leaves out the 65 RMSNorm vectors.
    assert llama.params + 65 * 4096 == 6_738_415_616
    assert NAMED_SHAPES["gpt2-small"].params == 12 * (4 * 768 ** 2 + 2 * 768 * 3072) + 768 * 50257
    assert NAMED_SHAPES["chinchilla-70b"].params == 80 * (4 * 8192 ** 2 + 2 * 8192 * 32768) + 2 * 8192 * 32000
    assert NAMED_SHAPES["chinchilla-70b"].ir_shape().n_layers * NAMED_SHAPES["chinchilla-70b"].n_heads == 5120


def _tiny_llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       tie_word_embeddings=False)


def _tiny_gpt2_config():
    from transformers import GPT2Config

    return GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=4)


@pytest.mark.parametrize("make_config", [_tiny_llama_config, _tiny_gpt2_config])
def test_patches_of_llama_and_gpt2_configs_are_counted_as_resumed(make_config):
    """The fast engine runs both families (grouped keys and values included)."""
    assert from_config(make_config().to_dict(), "tiny").resumable
    assert NAMED_SHAPES["llama-7b"].resumable and not NAMED_SHAPES["chinchilla-70b"].resumable


@pytest.mark.parametrize("make_config", [_tiny_llama_config, _tiny_gpt2_config])
def test_config_shapes_count_the_parameters_of_the_real_model(make_config):
    from transformers import AutoModelForCausalLM

    config = make_config()
    model = AutoModelForCausalLM.from_config(config)
    shape = from_config(config.to_dict(), "tiny")
    # named_parameters lists a tied unembedding once; position embeddings cost no FLOPs and are left out
    assert shape.params == sum(p.numel() for name, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in name)


@pytest.mark.parametrize("make_config", [_tiny_llama_config, _tiny_gpt2_config])
def test_forward_flops_equal_torchs_flop_count(make_config):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM

    config = make_config()
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config)
    shape = from_config(config.to_dict(), "tiny")
    batch, width = 3, 11
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randint(0, 50, (batch, width)))
    assert counter.get_total_flops() == batch * shape.forward_flops(width)


def test_cost_shape_errors_are_one_line_messages(tmp_path):
    with pytest.raises(EstimateError, match="unknown model shape `gpt5`: use gpt2-small, llama-7b"):
        cost_shape("gpt5")
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(EstimateError, match="is not a JSON object"):
        cost_shape(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 2}))
    with pytest.raises(EstimateError, match="lacks n_heads, d_model, d_vocab"):
        cost_shape(str(tmp_path / "config.json"))


# --------------------------------------------------------------------------- against a real run
SPEC = '''
spec "cost"
model hf("model")
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
analysis total = patch(heads + mlps, source=corrupt, target=clean, metric=ld)
analysis direct = patch([L1.H0, L1.MLP], source=mean(clean), target=clean, metric=ld, effect=direct)
analysis attn = attention(top(dla, 2), on=clean, query=last)
analysis paths = path_patch([L0.H0, L0.MLP, L1.H2], to=[L1.H1, L1.MLP], source=corrupt, target=clean, metric=ld)
analysis low = subspace(L1.H2, parts=[q, k], ranks=[1, 2, full], fit=clean, metric=ld)
expect faithfulness(top(total, 3), on=clean, ablate=mean(clean), metric=ld) >= -1000
analysis fc = curve(total, on=clean, metric=ld, points=3, random=1)
'''


@pytest.fixture(scope="module")
def cost_run(tmp_path_factory):
    """The spec's estimate, and the forward passes (op, prompts, width) a real run made."""
    from circ.runtime.execute.executor import Executor, Settings
    from circ.runtime.models.loading import load_model

    folder = tmp_path_factory.mktemp("cost")
    build_tiny_model_dir(folder / "model")
    write_jsonl(folder / "data.jsonl", mcq_examples(8, seed=5, ragged=True))
    (folder / "cost.circ").write_text(SPEC)
    spec = compile_file(folder / "cost.circ")
    loaded = load_model(spec.model, spec_dir=folder)
    tracker = _OpTracker()
    loaded.bridge.original_model.register_forward_pre_hook(
        lambda module, args, kwargs: tracker.calls.append(
            (tracker.op, *(args[0] if args else kwargs["input_ids"]).shape)),
        with_kwargs=True)
    graph = plan(spec)
    try:
        Executor(spec, graph, loaded, Settings(batch_size=3, show_progress=True, log=tracker), {}).run()
    finally:
        tracker.stop()
    shape = from_config(json.loads((folder / "model/config.json").read_text()), "tiny")
    estimate = estimate_plan(spec, graph, shape, *_prompts(spec, 3))
    return spec, estimate, tracker.calls, tracker.flops


def _prompts(spec, batch_size):
    lengths, starts = measure_prompts(spec)
    return lengths, batch_size, starts


class _OpTracker:
    """A progress log that remembers which op runs ("[n/N] op" lines) and counts each
    op's FLOPs with torch's FLOP counter."""

    def __init__(self):
        self.op, self.calls, self.flops, self._counter = None, [], {}, None

    def write(self, text):
        if text.startswith("["):
            self.stop()
            from torch.utils.flop_counter import FlopCounterMode

            self.op = text.split("] ", 1)[1].strip()
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def stop(self):
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops[self.op] = self._counter.get_total_flops()
            self._counter = None

    def flush(self):
        pass


def _measured(calls, op=None):
    """The forward passes of op (all ops when None). The data's batches hold 3, 3 and
    2 prompts: one-prompt calls are the resumed patch kernel's self-check, left out."""
    return [(b, w) for name, b, w in calls if (op is None or name == op) and b > 1]


def test_prompt_lengths_are_the_runtime_token_counts(cost_run, tiny):
    from circ.runtime.data.datasets import build_examples
    from circ.runtime.data.prompts import tokenize

    spec, _, _, _ = cost_run
    examples = build_examples(spec.dataset("clean"), spec)
    prompts = tokenize(tiny, examples, source_name="x")
    assert prompt_lengths(spec)["clean"] == prompts.lengths.tolist()
    differs = (prompts.tokens != prompts.corrupt).int().argmax(1).tolist()
    assert measure_prompts(spec)[1][("clean", "corrupt")] == differs and min(differs) > 0


def test_a_full_resumed_run_is_a_forward_pass():
    for shape in NAMED_SHAPES.values():
        assert shape.resumed_flops(37, 0, "attn", None) == shape.forward_flops(37)
        assert shape.resumed_flops(37, 0, "attn", None, start=37) == 0


def test_forward_passes_per_op_equal_a_real_run(cost_run):
    spec, estimate, calls, _ = cost_run
    by_op = {op.op: op for op in estimate.ops}
    for op_id, cost in by_op.items():
        measured = _measured(calls, op_id)
        if op_id == "mean:clean":  # means are computed inside the analyses that read them
            continue
        # the first reader of the means (in plan order) averages every hook: its run includes them
        extra = by_op["mean:clean"] if op_id == "analysis:_expect1_faithfulness" else None
        forwards = sum(b for b, _ in measured) - (extra.forwards if extra else 0)
        assert forwards == cost.forwards - cost.resumed, op_id
        assert len(measured) - (extra.calls if extra else 0) == cost.calls, op_id
    assert sum(b for b, _ in _measured(calls)) == estimate.forwards - sum(op.resumed for op in estimate.ops)
    assert by_op["mean:clean"].forwards == 8
    assert by_op["analysis:total"].resumed == 8 * 10 and by_op["analysis:direct"].resumed == 8 * 2


def test_flops_follow_the_padded_width_of_every_call(cost_run):
    _, estimate, calls, _ = cost_run
    shape = estimate.shape
    assert (shape.n_layers, shape.n_heads, shape.d_head, shape.d_model) == (2, 4, 8, 32)
    full = sum(b * shape.forward_flops(w) for b, w in _measured(calls))
    # besides its forward passes, attribution projects at the one position `ld` reads of
    # each of the 8 prompts every head's z through W_O (2 layers x 4 heads, 8 x 32) and
    # dots EMBED, 8 heads, 2 MLPs and BIAS with the logit-difference direction; the clean
    # run weights the [w, w] pattern of every head (2 layers x 4) per prompt for attention,
    # whose own passes are only its explorer's first 8 prompts
    attribution = 8 * (2 * 2 * 4 * 8 * 32 + 2 * (1 + 8 + 2 + 1) * 32)
    attention = sum(b * 2 * 4 * (2 * w * w) for b, w in _measured(calls, "run:clean"))
    assert [b for b, _ in _measured(calls, "analysis:attn")] == [3, 3, 2]
    assert full + attribution + attention == estimate.flops - sum(op.flops for op in estimate.ops if op.resumed) + sum(
        shape.forward_flops(w) * b for op in estimate.ops if op.resumed for b, w in _measured(calls, op.op))


def test_flops_per_op_are_close_to_torchs_count_of_the_run(cost_run):
    """Torch counts every matrix product of the op (metrics, attributions, the resumed
    kernel's own products too); the estimate must stay within 25% of it."""
    _, estimate, _, flops = cost_run
    by_op = {op.op: op for op in estimate.ops}
    expected = {op_id: cost.flops for op_id, cost in by_op.items() if op_id != "mean:clean"}
    expected["analysis:_expect1_faithfulness"] += by_op["mean:clean"].flops  # it computes the means
    ratios = {op_id: flops[op_id] / value for op_id, value in expected.items()}
    assert all(0.8 <= ratio <= 1.25 for ratio in ratios.values()), ratios


def test_counts_by_hand():
    spec = compile_source(SPEC_BY_HAND, str(ROOT / "specs" / "by_hand.circ"))
    lengths = {"clean": [10, 12, 7], "moved": [10, 12, 7]}
    shape = from_ir_shape(spec.shape, "demo")
    result = {op.op: op for op in estimate_plan(spec, plan(spec), shape, lengths, batch_size=2).ops}
    one_pass = 2 * shape.forward_flops(12) + shape.forward_flops(7)  # batches [10, 12] and [7]
    attribution = result["analysis:fast"]
    assert (attribution.forwards, attribution.backwards) == (3 * (1 + 1 + 3), 3)
    assert attribution.flops == (5 + 2) * one_pass
    integrated = result["analysis:integrated"]
    assert (integrated.forwards, integrated.backwards) == (3 * (4 + 1 + 0), 3 * 4)
    assert integrated.flops == (5 + 2 * 4) * one_pass
    exact = result["analysis:exact"]
    nodes = spec.shape.n_layers * (spec.shape.n_heads + 1)
    assert exact.forwards == 3 * (2 + nodes) and exact.calls == 2 * (2 + nodes)
    assert not exact.bounded and result["analysis:fromtop"].bounded
    assert result["analysis:fromtop"].forwards == 3 * (1 + 1 + 2)


def test_kernel_products_by_hand():
    """What the resumed direct-effect kernel, attribution and attention compute besides
    forward passes, on GPT-2 small (12 x 12 heads, d_head 64, d_model 768, vocab 50257)."""
    shape = NAMED_SHAPES["gpt2-small"]
    spec = compile_source(SPEC_KERNELS, str(ROOT / "specs" / "kernels.circ"), shape=shape.ir_shape())
    lengths = {"clean": [10, 12, 7], "moved": [10, 12, 7]}
    starts = {("clean", "moved"): [4, 12, 2]}  # the second prompt's source is the prompt itself
    result = {op.op: op for op in estimate_plan(spec, plan(spec), shape, lengths, 2, starts).ops}
    batches = [(2, 12), (1, 7)]  # (prompts, padded width)
    one_pass = sum(b * shape.forward_flops(w) for b, w in batches)
    # direct effect on the logit difference at the last position: per prompt and node, the
    # head's z change through W_O at every position, and the final stream there dotted
    # with one direction (d_model); the second prompt's batch still changes (the first
    # prompt does), so every prompt is read
    head_change = [2 * 64 * 768 * w for _, w in batches]
    direct = result["analysis:direct"]
    assert direct.flops == 2 * one_pass + sum(b * (3 * change + 4 * 2 * 768)
                                              for (b, _), change in zip(batches, head_change))
    # the same nodes scored by probability: every logit of the vocabulary at the read position
    assert result["analysis:direct_p"].flops == 2 * one_pass + sum(
        b * (3 * change + 4 * 2 * 768 * 50257) for (b, _), change in zip(batches, head_change))
    # a q input recomputes its head twice (scores and weighted values over w x w, d_head 64)
    assert result["analysis:direct_q"].flops == 2 * one_pass + sum(
        b * (change + 2 * 4 * 64 * w * w + 2 * 768) for (b, w), change in zip(batches, head_change))
    # attribution: at the last position, 144 heads through W_O and 158 parts onto the direction
    assert result["analysis:dla"].flops == one_pass + 3 * (144 * 2 * 64 * 768 + (1 + 144 + 12 + 1) * 2 * 768)
    # ... and at every position (padded) for a metric read at all of them
    assert result["analysis:dla_all"].flops == one_pass + sum(
        b * w * (144 * 2 * 64 * 768 + (1 + 144 + 12 + 1) * 2 * 768) for b, w in batches)
    # attention: a pass over its explorer's prompts (all 3 here); the clean run weights
    # every head's pattern [w, w] (12 layers x 12 heads) by the query row
    assert result["analysis:attn"].flops == one_pass
    assert result["run:clean"].flops == one_pass + sum(b * 144 * 2 * w * w for b, w in batches)


SPEC_KERNELS = '''
model demo
data clean = mcq(n=3, seed=0)
data moved = clean.move_answer(seed=1)
metric ld = logit_diff(answer, wrong) at last
metric lda = logit_diff(answer, wrong) at all
metric p = prob(answer) at last
analysis direct = patch([L0.H0, L5.H3, L11.H11, L4.MLP], source=moved, target=clean, metric=ld, effect=direct)
analysis direct_p = patch([L0.H0, L5.H3, L11.H11, L4.MLP], source=moved, target=clean, metric=p, effect=direct)
analysis direct_q = patch([L3.H2.q], source=moved, target=clean, metric=ld, effect=direct)
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
analysis dla_all = attribute(heads + mlps, on=clean, metric=lda)
analysis attn = attention([L1.H1, L2.H2, L3.H3], on=clean, query=last)
'''


SPEC_BY_HAND = '''
model demo
data clean = mcq(n=3, seed=0)
data moved = clean.move_answer(seed=1)
metric ld = logit_diff(answer, wrong) at last
analysis exact = patch(heads + mlps, source=moved, target=clean, metric=ld)
analysis fast = patch(heads + mlps, source=moved, target=clean, metric=ld, method=attribution, verify=3)
analysis fromtop = patch(top(exact, 2), source=moved, target=clean, metric=ld)
analysis integrated = patch(heads, source=moved, target=clean, metric=ld, method=attribution, steps=4)
'''


# --------------------------------------------------------------------------- command line
def test_a_named_shape_expands_the_spec_for_that_model():
    result = CliRunner().invoke(main, ["plan", str(ROOT / "specs" / "mcq_correct_letter.circ"), "--estimate",
                                       "--model-shape", "chinchilla-70b", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    patched = next(op for op in document["ops"] if op["op"] == "analysis:direct")
    assert patched["forwards"] == 96 * (1 + 1 + 80 * 64 + 80)
    assert document["shape"]["params"] == NAMED_SHAPES["chinchilla-70b"].params


def test_command_line_errors():
    runner = CliRunner()
    spec = str(ROOT / "specs" / "mcq_correct_letter.circ")
    unknown = runner.invoke(main, ["plan", spec, "--estimate", "--model-shape", "gpt5"])
    assert unknown.exit_code == 2 and "unknown model shape `gpt5`" in unknown.output
    assert runner.invoke(main, ["plan", spec, "--estimate", "--format", "dot"]).exit_code == 2
    assert runner.invoke(main, ["plan", spec, "--model-shape", "gpt2-small"]).exit_code == 2


def test_the_estimate_command_never_imports_torch():
    spec = str(ROOT / "specs" / "mcq_correct_letter.circ")
    code = ("import io, sys; from circ.cli.estimate import estimate_path; out = io.StringIO();"
            f"status = estimate_path({spec!r}, 'llama-7b', 8, 'text', out, sys.stderr);"
            "assert status == 0, status; assert 'torch' not in sys.modules; print(out.getvalue())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "estimate of mcq-correct-letter on llama-7b" in result.stdout
    assert "total" in result.stdout


def test_patch_at_each_position_costs_one_patch_per_position_of_the_longest_prompt():
    text = ("model demo\ndata clean = mcq(n=3)\ndata moved = clean.move_answer(seed=1)\n"
            "metric ld = logit_diff(answer, wrong) at last\n"
            "analysis every = patch(resid, source=moved, target=clean, metric=ld, at=all)\n"
            "analysis each = patch(resid, source=moved, target=clean, metric=ld, at=each)\n")
    spec = compile_source(text, str(ROOT / "specs" / "each.circ"))
    lengths = {"clean": [9, 9, 9], "moved": [9, 9, 9]}
    result = {op.op: op for op in estimate_plan(spec, plan(spec), from_ir_shape(spec.shape, "demo"), lengths,
                                                batch_size=2).ops}
    every, each = result["analysis:every"], result["analysis:each"]
    assert (each.forwards, each.flops, each.peak_bytes) == (9 * every.forwards, 9 * every.flops, every.peak_bytes)
    assert "at each of 9 positions" in each.what


def test_attribute_at_each_position_costs_one_more_projection_per_position_and_no_forward():
    text = ("model demo\ndata clean = mcq(n=3)\nmetric ld = logit_diff(answer, wrong) at last\n"
            "analysis plain = attribute(heads + mlps, on=clean, metric=ld)\n"
            "analysis each = attribute(heads + mlps, on=clean, metric=ld, at=each)\n")
    spec = compile_source(text, str(ROOT / "specs" / "each.circ"))
    lengths = {"clean": [9, 9, 9]}
    shape = from_ir_shape(spec.shape, "demo")
    result = {op.op: op for op in estimate_plan(spec, plan(spec), shape, lengths, batch_size=2).ops}
    plain, each = result["analysis:plain"], result["analysis:each"]
    assert each.forwards == plain.forwards
    assert each.flops - plain.flops == 3 * shape.attribution_flops(9)

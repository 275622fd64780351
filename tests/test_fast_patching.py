"""The fast exact kernel against the hook kernel (one hooked forward per node), which
tests/test_patching.py checks against hand-written TransformerLens hooks."""
import weakref

import pytest
import torch
from circ.compiler import ir
from circ.runtime.analyses import fast_patching
from circ.runtime.analyses import resumed_blocks as resume
from circ.runtime.analyses.common import AnalysisError
from circ.runtime.analyses.patch_sources import make_source
from circ.runtime.analyses.patching import patch
from circ.runtime.analyses.resumed_blocks import (
    Resumer,
    resumer_for,
    unsupported_reason,
)
from circ.runtime.data.prompts import tokenize
from conftest import build_tiny_model_dir, load_tiny, mcq_examples

N_LAYERS = 3
NODES = [ir.Node(0, "head", 1), ir.Node(1, "head", 3), ir.Node(2, "head", 0), ir.Node(0, "mlp"), ir.Node(1, "mlp"),
         ir.Node(2, "mlp"), ir.Node(0, "embed"), ir.Node(1, "resid"), ir.Node(N_LAYERS, "resid"),
         ir.Node(2, "head_input", 2, "q"), ir.Node(1, "head_input", 0, "k"), ir.Node(0, "head_input", 3, "v")]


@pytest.fixture(autouse=True)
def fresh_engines(monkeypatch):
    """Each test builds (and checks) its own engines."""
    monkeypatch.setattr(resume, "_ENGINES", weakref.WeakKeyDictionary())


@pytest.fixture(scope="module")
def deep_dir(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-3-layers"), n_layer=N_LAYERS)


@pytest.fixture(scope="module")
def deep(deep_dir):
    return load_tiny(deep_dir)


@pytest.fixture(scope="module")
def deep_compat(deep_dir):
    return load_tiny(deep_dir, compat=True)


@pytest.fixture(scope="module")
def prompts(deep):
    return tokenize(deep, mcq_examples(7, ragged=True), source_name="clean")


def both_kernels(loaded, prompts, nodes, metric, source, **options):
    fast = patch(loaded, prompts, nodes, metric, source, show_progress=False, batch_size=3, kernel="fast", **options)
    hooks = patch(loaded, prompts, nodes, metric, source, show_progress=False, batch_size=3, kernel="hooks", **options)
    return fast, hooks


def assert_same(fast, hooks, tolerance=1e-5):
    assert fast["values"].keys() == hooks["values"].keys()
    for key, expected in hooks["values"].items():
        assert fast["values"][key] == pytest.approx(expected, abs=tolerance), key
    assert fast["baseline"] == pytest.approx(hooks["baseline"], abs=1e-6)


CASES = [
    ("raw", "total", ir.Metric("ld", "logit_diff"), ir.ALL),
    ("raw", "direct", ir.Metric("ld", "logit_diff"), ir.LAST),
    ("compat", "total", ir.Metric("kl", "kl"), ir.ALL),
    ("compat", "direct", ir.Metric("lp", "logprob", normalized=True), ir.ALL),
    ("raw", "total", ir.Metric("loss", "loss", position=ir.ALL), ir.Position("named", name="labels")),
    ("raw", "total", ir.Metric("p", "prob", position=ir.Position("named", name="answer_label")), ir.ALL),
    ("raw", "direct", ir.Metric("acc", "accuracy", position=ir.Position("index", index=-2)), ir.ALL),
]


@pytest.mark.parametrize("numerics,effect,metric,position", CASES)
def test_fast_kernel_equals_hook_kernel(request, prompts, numerics, effect, metric, position):
    loaded = request.getfixturevalue("deep" if numerics == "raw" else "deep_compat")
    source = make_source(loaded, prompts, ir.PatchSource("corrupt"), {})
    assert_same(*both_kernels(loaded, prompts, NODES, metric, source, effect=effect, position=position))


@pytest.mark.parametrize("kind", ["mean", "zero", "resample"])
def test_sources_that_do_not_run_the_target(deep, prompts, kind):
    source = make_source(deep, prompts, ir.PatchSource(kind, "clean", seed=3), {"clean": prompts})
    fast, hooks = both_kernels(deep, prompts, NODES, ir.Metric("ld", "logit_diff"), source)
    assert_same(fast, hooks)
    assert max(abs(v) for v in fast["values"].values()) > 1e-3


def test_unchanged_prefix_is_not_recomputed(deep, prompts, monkeypatch):
    """The corrupted prompts differ from the clean ones only from the question words
    on, so every resumed run starts after the first three positions."""
    starts = []
    original = Resumer.run

    def spy(self, resid, layer, stage="attn", **options):
        starts.append(options.get("start", 0))
        return original(self, resid, layer, stage, **options)

    monkeypatch.setattr(Resumer, "run", spy)
    first_difference = int((prompts.tokens != prompts.corrupt).any(0).nonzero()[0])
    assert first_difference >= 2
    source = make_source(deep, prompts, ir.PatchSource("corrupt"), {})
    fast, hooks = both_kernels(deep, prompts, NODES, ir.Metric("ld", "logit_diff"), source)
    assert_same(fast, hooks)
    self_check, resumed = starts[0], starts[1:]  # the first run checks the engine from the embeddings
    assert self_check == 0 and resumed and min(resumed) >= first_difference


def test_stacked_variants_equal_one_forward_per_variant(deep, prompts, monkeypatch):
    source = make_source(deep, prompts, ir.PatchSource("corrupt"), {})
    metric = ir.Metric("ld", "logit_diff")
    rows = []
    monkeypatch.setattr(Resumer, "run", lambda self, resid, *a, _run=Resumer.run, **k: rows.append(len(resid))
                        or _run(self, resid, *a, **k))
    stacked = patch(deep, prompts, NODES, metric, source, show_progress=False, kernel="fast")
    assert rows[0] == 1 and max(rows[1:]) > len(prompts)  # rows[0]: the engine's self-check on one prompt
    rows.clear()
    monkeypatch.setattr(fast_patching, "ELEMENTS_PER_FORWARD", 1)
    alone = patch(deep, prompts, NODES, metric, source, show_progress=False, kernel="fast")
    assert set(rows) == {len(prompts)}  # the engine checked before is reused
    for key, value in alone["values"].items():
        assert stacked["values"][key] == pytest.approx(value, abs=1e-6), key


def test_engine_is_reused_until_a_weight_changes(fresh_tiny):
    prompts = tokenize(fresh_tiny, mcq_examples(2), source_name="clean")
    first = resumer_for(fresh_tiny, prompts, "auto")
    assert first is not None and resumer_for(fresh_tiny, prompts, "auto") is first
    with torch.no_grad():
        fresh_tiny.bridge.original_model.transformer.h[1].mlp.c_proj.bias.add_(0.5)
    rebuilt = resumer_for(fresh_tiny, prompts, "auto")
    assert rebuilt is not None and rebuilt is not first


def test_self_check_catches_an_engine_that_differs(deep, prompts):
    tokens = prompts.tokens[:1, : int(prompts.lengths[0])]
    resumer = Resumer(deep.bridge)
    assert resumer.reproduces(tokens)
    resumer._w_o.mul_(1.01)
    assert not resumer.reproduces(tokens)


def test_self_check_drops_an_unembedding_that_differs(deep, prompts):
    tokens = prompts.tokens[:1, : int(prompts.lengths[0])]
    resumer = Resumer(deep.bridge)
    assert resumer.reproduces(tokens) and resumer.unembedding is not None
    W_U, b_U = resumer.unembedding
    resumer._unembed = (W_U, b_U + 0.5)
    assert resumer.reproduces(tokens)  # the engine still runs, scoring every logit
    assert resumer.unembedding is None


@pytest.mark.parametrize("metric", [ir.Metric("ld", "logit_diff"), ir.Metric("lda", "logit_diff", position=ir.ALL)])
def test_direct_logit_difference_is_read_along_one_direction(deep, prompts, monkeypatch, metric):
    """Every node's final stream of a batch is scored in one stack, along one direction
    per prompt; the values are those of every logit."""
    source = make_source(deep, prompts, ir.PatchSource("corrupt"), {})
    stacks = []
    monkeypatch.setattr(Resumer, "final_norm",
                        lambda self, final, _norm=Resumer.final_norm: stacks.append(len(final)) or _norm(self, final))
    one_direction, hooks = both_kernels(deep, prompts, NODES, metric, source, effect="direct")
    assert_same(one_direction, hooks)
    # the engine's self-check, then one stack per batch of 3, 3 and 1 prompts (nodes that
    # change nothing in a batch are not stacked)
    assert stacks[0] == 1 and len(stacks) == 4 and stacks[1] > 3 * len(NODES) // 2
    monkeypatch.setattr(Resumer, "unembedding", property(lambda self: None))
    every_logit = patch(deep, prompts, NODES, metric, source, show_progress=False, batch_size=3, kernel="fast",
                        effect="direct")
    for key, value in every_logit["values"].items():
        assert one_direction["values"][key] == pytest.approx(value, abs=1e-6), key


def test_models_the_engine_cannot_run_fall_back_to_hooks(deep, prompts, monkeypatch):
    class Alibi:
        positional_embedding_type = "alibi"

    assert unsupported_reason(deep.bridge.cfg) is None
    assert unsupported_reason(Alibi()) == "positions are neither absolute nor rotary embeddings"
    monkeypatch.setattr(Resumer, "reproduces", lambda self, tokens: False)
    assert resumer_for(deep, prompts, "auto") is None
    with pytest.raises(AnalysisError, match="fast kernel cannot run this model"):
        resumer_for(deep, prompts, "fast")
    source = make_source(deep, prompts, ir.PatchSource("corrupt"), {})
    metric = ir.Metric("ld", "logit_diff")
    auto = patch(deep, prompts, NODES[:3], metric, source, show_progress=False)
    hooks = patch(deep, prompts, NODES[:3], metric, source, show_progress=False, kernel="hooks")
    assert auto == hooks
    with pytest.raises(AnalysisError, match="unknown kernel"):
        patch(deep, prompts, NODES[:1], metric, source, kernel="gpu")

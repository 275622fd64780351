"""Patching speed: circ's compiled kernels against TransformerLens's own patching.

    .venv/bin/python bench/bench_patching.py [--prompts 16] [--tokens 32] [--baseline-heads 12]

Builds a GPT-2-small-shaped model (12 layers, 12 heads, d_model 768, vocabulary 50257)
with random weights from a config in memory (nothing is downloaded), and prompts of
random words with corrupted copies whose every word differs. Both sides run in this
one process, one after the other, on the same model and prompts, so their ratio is
fair on a shared machine. Printed:

1. exact patching of every head and MLP: TransformerLens 4.3's
   `get_act_patch_attn_head_out_all_pos` and a hand-written `run_with_hooks` loop
   (one patched forward per node) on `--baseline-heads` heads, one per layer (the
   loop on `--other-heads` of them), timed per node and extrapolated to all nodes
   (a baseline run costs the same for any node); circ's exact kernel on all of them.
   Every value a baseline computed is compared with circ's.
2. the direct effect of every node (exact), against circ's hook kernel on
   `--other-heads` heads.
3. attribution patching (AtP*) of every node against the exact kernel, with the
   Spearman correlation of the two rankings.
4. edge attribution over every head/MLP edge (q, k, v apart) against path patching
   timed on a few edges.
5. the case study's patch analysis on the embedded demo model: exact patching of its
   heads against TransformerLens's function, and the Spearman correlation of
   attribution (AtP*, and integrated over 10 steps) with exact patching.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 50257


def gpt2_small(seed: int = 0):
    """A LoadedModel around a random GPT-2-small-shaped model and a word-level tokenizer."""
    import torch
    from circ.runtime.models.loading import LoadedModel, shape_of
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = word_tokenizer(VOCAB)
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=VOCAB, n_positions=1024,
                        bos_token_id=0, eos_token_id=0, pad_token_id=1)
    hf_model = GPT2LMHeadModel(config).eval()
    bridge = TransformerBridge.boot_transformers("gpt2", hf_model=hf_model, tokenizer=tokenizer)
    return LoadedModel(bridge=bridge, name="gpt2-small-shaped (random)", shape=shape_of(bridge), numerics="raw",
                       tokenizer=bridge.tokenizer, source="memory", location=None, dtype="float32", device="cpu")


def word_tokenizer(size: int):
    """A word-level tokenizer of `size` tokens: <bos>, <pad>, <unk>, then w3, w4, ..."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<bos>": 0, "<pad>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, size)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    folder = tempfile.mkdtemp(prefix="circ-bench-tokenizer-")
    PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def word_prompts(loaded, n: int, tokens: int, seed: int = 1, vocab: int = VOCAB):
    """(clean, corrupted) Prompts of `tokens` tokens (BOS + words); every corrupted word
    differs from the clean one at its position; answers and wrong answers shared."""
    import random

    from circ.runtime.data.examples import Example
    from circ.runtime.data.prompts import tokenize

    rng = random.Random(seed)
    clean, corrupted = [], []
    for line in range(1, n + 1):
        words = [rng.randrange(3, vocab) for _ in range(tokens - 1)]
        other = [(w + rng.randrange(1, vocab - 3) - 3) % (vocab - 3) + 3 for w in words]
        answer, wrong = rng.sample(range(3, vocab), 2)
        for out, ids in ((clean, words), (corrupted, other)):
            out.append(Example(prompt=" ".join(f"w{i}" for i in ids), answer=f"w{answer}", wrong=(f"w{wrong}",), line=line))
    return (tokenize(loaded, clean, source_name="clean"), tokenize(loaded, corrupted, source_name="corrupted"))


class Timing:
    """Wall-clock and CPU seconds of one call. The machine may be shared: CPU time
    (this process's, all threads) is what another process's load disturbs least."""

    def __init__(self, wall: float, cpu: float):
        self.wall, self.cpu = wall, cpu

    def per(self, n: int) -> "Timing":
        return Timing(self.wall / n, self.cpu / n)

    def times(self, n: float) -> "Timing":
        return Timing(self.wall * n, self.cpu * n)

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU"

    def ratio(self, other: "Timing") -> str:
        """How many times faster `other` is than this."""
        return f"{self.wall / other.wall:.1f}x wall, {self.cpu / other.cpu:.1f}x CPU"


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--baseline-heads", type=int, default=12)
    parser.add_argument("--other-heads", type=int, default=4,
                        help="heads for the hand-written loop and the hook kernel (slow, same cost for any head)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["exact", "direct", "attribution", "edges", "case-study"])
    args = parser.parse_args(argv)
    import torch
    from circ.compiler import ir
    from circ.runtime.analyses.patch_sources import make_source

    print(f"machine: {os.cpu_count()} CPUs, {_cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    loaded, seconds = timed(gpt2_small)
    print(f"model: {loaded.name}, {loaded.shape.n_layers} layers x {loaded.shape.n_heads} heads, "
          f"d_model {loaded.shape.d_model}, built in {seconds.wall:.1f} s", flush=True)
    clean, corrupted = word_prompts(loaded, args.prompts, args.tokens)
    print(f"prompts: {len(clean)} x {clean.tokens.shape[1]} tokens; patch clean activations into the corrupted run",
          flush=True)
    source = make_source(loaded, corrupted, ir.PatchSource("dataset", "clean"), {"clean": clean})
    shape = loaded.shape
    heads = [ir.Node(layer, "head", head) for layer in range(shape.n_layers) for head in range(shape.n_heads)]
    nodes = heads + [ir.Node(layer, "mlp") for layer in range(shape.n_layers)]
    picked = [ir.Node(layer % shape.n_layers, "head", layer % shape.n_heads) for layer in range(args.baseline_heads)]
    context = Context(loaded, clean, corrupted, source, nodes, picked, picked[::max(1, len(picked) // args.other_heads)])
    exact = None
    if "exact" not in args.skip:
        exact = bench_exact(context)
    if "direct" not in args.skip:
        bench_direct(context)
    if "attribution" not in args.skip:
        bench_attribution(context, exact)
    if "edges" not in args.skip:
        bench_edges(context)
    if "case-study" not in args.skip:
        bench_case_study()
    return 0


class Context:
    def __init__(self, loaded, clean, corrupted, source, nodes, picked, few):
        from circ.compiler import ir

        self.loaded, self.clean, self.corrupted, self.source = loaded, clean, corrupted, source
        self.nodes, self.picked, self.few = nodes, picked, few
        self.metric = ir.Metric("ld", "logit_diff")


def bench_exact(c: Context) -> dict:
    import pandas as pd
    import torch
    from circ.runtime.analyses.metrics import metric_values
    from circ.runtime.analyses.patching import patch
    from transformer_lens.patching import get_act_patch_attn_head_out_all_pos

    bridge = c.loaded.bridge

    def tl_metric(logits):
        return metric_values(logits, c.corrupted, c.metric).mean()

    index = pd.DataFrame({"layer": [n.layer for n in c.picked], "head": [n.head for n in c.picked]})
    print(f"\n[1] exact patching, {len(c.nodes)} nodes (every head and MLP)", flush=True)
    with torch.no_grad():
        (_, clean_cache), cache_time = timed(lambda: bridge.run_with_cache(c.clean.tokens))
        tl_values, tl_time = timed(lambda: get_act_patch_attn_head_out_all_pos(
            bridge, c.corrupted.tokens, clean_cache, tl_metric, index_axis_names=None, index_df=index))
    tl_all = tl_time.per(len(c.picked)).times(len(c.nodes))
    print(f"  TransformerLens get_act_patch_attn_head_out_all_pos, {len(c.picked)} heads (spread over the layers): {tl_time}; "
          f"per node {tl_time.per(len(c.picked))}; clean cache {cache_time}")
    hand, hand_time = timed(lambda: hand_written_loop(c, clean_cache))
    hand_all = hand_time.per(len(c.few)).times(len(c.nodes))
    print(f"  hand-written run_with_hooks loop, {len(c.few)} of those heads: {hand_time}; "
          f"per node {hand_time.per(len(c.few))}", flush=True)
    result, circ_time = timed(lambda: patch(c.loaded, c.corrupted, c.nodes, c.metric, c.source, show_progress=False))
    print(f"  circ exact (fast kernel), all {len(c.nodes)} nodes: {circ_time}; per node {circ_time.per(len(c.nodes))}")
    print(f"  baselines extrapolated to {len(c.nodes)} nodes: TransformerLens {tl_all}; hand-written {hand_all}")
    print(f"  speed-up over TransformerLens: {tl_all.ratio(circ_time)}; over the hand-written loop: "
          f"{hand_all.ratio(circ_time)}")
    clean_metric = result["baseline"]["clean"]
    errors = [abs(float(tl_values[i]) - (clean_metric - result["values"][n.id])) for i, n in enumerate(c.picked)]
    errors_hand = [abs(hand[n] - (clean_metric - result["values"][n.id])) for n in c.few]
    print(f"  max |circ - TransformerLens| over the {len(c.picked)} baseline heads: {max(errors):.2e}; "
          f"|circ - hand-written|: {max(errors_hand):.2e} (target <= 1e-4)", flush=True)
    return {"values": result["values"], "time": circ_time, "baseline": tl_all}


def hand_written_loop(c: Context, clean_cache) -> dict:
    """One run_with_hooks per head: the clean z of that head written into the corrupted run."""
    import torch
    from circ.runtime.analyses.metrics import metric_values

    out = {}
    with torch.no_grad():
        for node in c.few:
            name = f"blocks.{node.layer}.attn.hook_z"

            def write(z, hook, head=node.head, value=clean_cache[name]):
                z = z.clone()
                z[:, :, head] = value[:, :, head]
                return z

            logits = c.loaded.bridge.run_with_hooks(c.corrupted.tokens, fwd_hooks=[(name, write)])
            out[node] = float(metric_values(logits, c.corrupted, c.metric).mean())
    return out


def bench_direct(c: Context) -> None:
    from circ.runtime.analyses.patching import patch

    print(f"\n[2] direct effect, {len(c.nodes)} nodes", flush=True)
    fast, fast_time = timed(lambda: patch(c.loaded, c.corrupted, c.nodes, c.metric, c.source, effect="direct",
                                          show_progress=False))
    hooks, hook_time = timed(lambda: patch(c.loaded, c.corrupted, c.few, c.metric, c.source, effect="direct",
                                           show_progress=False, kernel="hooks"))
    hooks_all = hook_time.per(len(c.few)).times(len(c.nodes))
    error = max(abs(fast["values"][n.id] - hooks["values"][n.id]) for n in c.few)
    print(f"  circ hook kernel (later outputs frozen by hooks), {len(c.few)} heads: {hook_time}; "
          f"extrapolated to {len(c.nodes)} nodes {hooks_all}")
    print(f"  circ exact (final stream + delta), all {len(c.nodes)} nodes: {fast_time}; speed-up "
          f"{hooks_all.ratio(fast_time)}; max difference over the {len(c.few)} heads {error:.2e} (target <= 1e-5)",
          flush=True)


def bench_attribution(c: Context, exact: dict | None) -> None:
    from circ.runtime.analyses.patching import patch

    print(f"\n[3] attribution patching (AtP*), {len(c.nodes)} nodes", flush=True)
    if exact is None:
        result, circ_time = timed(lambda: patch(c.loaded, c.corrupted, c.nodes, c.metric, c.source,
                                                show_progress=False))
        exact = {"values": result["values"], "time": circ_time, "baseline": None}
    estimate, time_taken = timed(lambda: patch(c.loaded, c.corrupted, c.nodes, c.metric, c.source,
                                               method="attribution", show_progress=False))
    ids = [n.id for n in c.nodes]
    rho = spearman([estimate["values"][i] for i in ids], [exact["values"][i] for i in ids])
    print(f"  circ attribution ({estimate['estimator']}), all {len(c.nodes)} nodes: {time_taken}")
    print(f"  speed-up over circ exact: {exact['time'].ratio(time_taken)}" + (
        "" if exact["baseline"] is None else f"; over TransformerLens: {exact['baseline'].ratio(time_taken)}"))
    print(f"  Spearman correlation with exact patching: {rho:.3f}", flush=True)


def bench_edges(c: Context) -> None:
    from circ.compiler import ir
    from circ.runtime.analyses.edge_attribution import edge_attribution
    from circ.runtime.analyses.path_patching import path_patch

    shape = c.loaded.shape
    senders = [ir.Node(0, "embed")] + c.nodes
    receivers = c.nodes
    print("\n[4] edge attribution, every head/MLP/EMBED -> head q/k/v and MLP edge", flush=True)
    result, time_taken = timed(lambda: edge_attribution(c.loaded, c.corrupted, senders, receivers, c.metric,
                                                        c.source, show_progress=False))
    sample_senders = [ir.Node(shape.n_layers - 2, "head", 1), ir.Node(shape.n_layers - 2, "mlp")]
    sample_receivers = [ir.Node(shape.n_layers - 1, "head_input", 2, "q"), ir.Node(shape.n_layers - 1, "mlp")]
    exact, exact_time = timed(lambda: path_patch(c.loaded, c.corrupted, sample_senders, sample_receivers, c.metric,
                                                 c.source, show_progress=False))
    per_edge = exact_time.per(len(exact["values"]))
    print(f"  circ edge attribution, {len(result['values'])} edges: {time_taken}")
    print(f"  path patching, {len(exact['values'])} edges: {exact_time}; extrapolated to all "
          f"{per_edge.times(len(result['values'])).wall / 3600:.1f} h wall")
    for key, value in exact["values"].items():
        print(f"  {key}: path patching {value:+.6f}, edge attribution {result['values'][key]:+.6f}")


def bench_case_study() -> None:
    """The case-study spec's patch analysis (specs/mcq_correct_letter.circ: every head and
    MLP, moved answers patched into the clean prompts, logit difference at the last
    token) on the embedded demo model: attribution against exact, ranked."""
    from pathlib import Path

    from circ.compiler import ir
    from circ.runtime.analyses.patch_sources import make_source
    from circ.runtime.analyses.patching import patch
    from circ.runtime.data import generators
    from circ.runtime.data.prompts import tokenize
    from circ.runtime.models.demo_model import demo_model_dir
    from circ.runtime.models.loading import load_model

    print("\n[5] the case study on the demo model: clean = mcq(n=96, labels=ABCD, seed=0), "
          "source = clean.move_answer(seed=3)", flush=True)
    if not (demo_model_dir() / "config.json").is_file():
        print("  skipped: the demo model's files are not in this checkout")
        return
    loaded = load_model(ir.Model(source="demo"), spec_dir=Path.cwd())
    base = ("mcq", {"n": 96, "labels": "ABCD", "seed": 0})
    clean = tokenize(loaded, generators.build(*base), source_name="clean")
    moved = tokenize(loaded, generators.build("move_answer", {"seed": 3}, base), source_name="moved")
    source = make_source(loaded, clean, ir.PatchSource("dataset", "moved"), {"moved": moved})
    shape = loaded.shape
    nodes = [ir.Node(layer, "head", head) for layer in range(shape.n_layers) for head in range(shape.n_heads)]
    nodes += [ir.Node(layer, "mlp") for layer in range(shape.n_layers)]
    metric = ir.Metric("ld", "logit_diff")
    heads = [n for n in nodes if n.kind == "head"]
    demo_baseline(loaded, clean, moved, heads, metric, source)
    for effect, steps in (("direct", 1), ("total", 1), ("total", 10)):
        exact, exact_time = timed(lambda: patch(loaded, clean, nodes, metric, source, effect=effect,
                                                show_progress=False))
        estimate, estimate_time = timed(lambda: patch(loaded, clean, nodes, metric, source, effect=effect,
                                                      method="attribution", steps=steps, show_progress=False))
        ids = [n.id for n in nodes]
        guess, truth = [estimate["values"][i] for i in ids], [exact["values"][i] for i in ids]
        rho = spearman(guess, truth)
        rho_size = spearman([abs(x) for x in guess], [abs(x) for x in truth])
        print(f"  effect={effect}, {estimate['estimator']}: Spearman(attribution, exact) over {len(ids)} nodes "
              f"{rho:.3f} (target >= 0.9), by size {rho_size:.3f}; exact {exact_time}, attribution {estimate_time}",
              flush=True)
        print("    " + "  ".join(f"{i} {a:+.2f}/{b:+.2f}" for i, a, b in zip(ids, truth, guess)) + "  (exact/attribution)",
              flush=True)


def demo_baseline(loaded, clean, moved, heads, metric, source) -> None:
    """TransformerLens's head patching (moved activations written into the clean run)
    against circ's exact kernel on the same heads, prompts and model."""
    import pandas as pd
    import torch
    from circ.runtime.analyses.metrics import metric_values
    from circ.runtime.analyses.patching import patch
    from transformer_lens.patching import get_act_patch_attn_head_out_all_pos

    bridge = loaded.bridge
    index = pd.DataFrame({"layer": [n.layer for n in heads], "head": [n.head for n in heads]})
    with torch.no_grad():
        (_, moved_cache), _ = timed(lambda: bridge.run_with_cache(moved.tokens))
        tl_values, tl_time = timed(lambda: get_act_patch_attn_head_out_all_pos(
            bridge, clean.tokens, moved_cache, lambda logits: metric_values(logits, clean, metric).mean(),
            index_axis_names=None, index_df=index))
    result, circ_time = timed(lambda: patch(loaded, clean, heads, metric, source, show_progress=False))
    clean_metric = result["baseline"]["clean"]
    error = max(abs(float(tl_values[i]) - (clean_metric - result["values"][n.id])) for i, n in enumerate(heads))
    print(f"  exact patching of the {len(heads)} heads: TransformerLens get_act_patch_attn_head_out_all_pos "
          f"{tl_time}, circ {circ_time}; speed-up {tl_time.ratio(circ_time)}; max difference {error:.2e} "
          "(target <= 1e-4)", flush=True)


def spearman(a, b) -> float:
    import torch

    def ranks(x):
        order = torch.tensor(x, dtype=torch.float64).argsort()
        out = torch.empty(len(x), dtype=torch.float64)
        out[order] = torch.arange(len(x), dtype=torch.float64)
        return out

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())

"""Patching speed on a Llama-shaped model: circ's exact kernel against TransformerLens.

    .venv/bin/python bench/bench_llama_patching.py [--quick] [--prompts 4] [--tokens 41]

Builds a model of the Llama family with random weights from a config in memory
(nothing is downloaded): 30 layers, 9 query heads over 3 key/value heads, d_model 576,
SwiGLU MLP of 1536, vocabulary 49152, rotary positions, RMSNorm, no biases (the
shape of a 135M-parameter chat model); `--quick` keeps 6 of the layers. Prompts are
random words, the corrupted copies differ in every word (the worst case for circ,
which skips positions a patch leaves unchanged); clean activations are patched into
the corrupted run, as TransformerLens's patching functions do. Both sides run in this
one process on the same model and prompts. Printed, as in `bench_patching.py`:

1. exact patching of every head and MLP: TransformerLens 4.3's
   `get_act_patch_attn_head_out_all_pos` (on the TransformerBridge) and a
   hand-written `run_with_hooks` loop on a few heads, timed per node and
   extrapolated to all nodes (a baseline run costs the same for any node); circ's
   exact kernel on all of them; every baseline value compared with circ's.
2. the direct effect of every node, against circ's hook kernel (later outputs pinned
   by hooks) on a few heads.
3. attribution patching (AtP*) of every node against the exact kernel, with the
   Spearman correlation of the two rankings.
"""
from __future__ import annotations

import argparse
import os
import sys

from bench_patching import Context, _cpu_model, bench_attribution, bench_direct, bench_exact, timed, word_prompts, \
    word_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 49152


def llama_shaped(n_layers: int, seed: int = 0):
    """A LoadedModel around a random Llama-family model of the shape above."""
    import torch
    from circ.runtime.models.loading import LoadedModel, shape_of
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer(VOCAB)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=576, intermediate_size=1536, num_hidden_layers=n_layers,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                         rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                         attention_bias=False, mlp_bias=False, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    config._attn_implementation = "eager"
    hf_model = LlamaForCausalLM(config).eval()
    bridge = TransformerBridge.boot_transformers("llama-shaped", hf_model=hf_model, tokenizer=tokenizer)
    return LoadedModel(bridge=bridge, name=f"llama-shaped (random, {n_layers} layers)", shape=shape_of(bridge),
                       numerics="raw", tokenizer=bridge.tokenizer, source="memory", location=None, dtype="float32",
                       device="cpu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 layers instead of 30")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=41)
    parser.add_argument("--baseline-heads", type=int, default=6,
                        help="heads TransformerLens patches (spread over the layers), timed and extrapolated")
    parser.add_argument("--other-heads", type=int, default=3,
                        help="heads for the hand-written loop and the hook kernel (slow, same cost for any head)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["exact", "direct", "attribution"])
    args = parser.parse_args(argv)
    import torch
    from circ.compiler import ir
    from circ.runtime.analyses.patch_sources import make_source
    from circ.runtime.analyses.resumed_blocks import resumer_for

    print(f"machine: {os.cpu_count()} CPUs, {_cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    loaded, seconds = timed(lambda: llama_shaped(6 if args.quick else 30))
    shape, cfg = loaded.shape, loaded.bridge.cfg
    print(f"model: {loaded.name}, {shape.n_layers} layers x {shape.n_heads} heads ({cfg.n_key_value_heads} key/value "
          f"heads), d_model {shape.d_model}, d_mlp {shape.d_mlp}, vocabulary {shape.d_vocab}, "
          f"{cfg.positional_embedding_type} positions, {cfg.normalization_type} norm, gated MLP {cfg.gated_mlp}; "
          f"built in {seconds.wall:.1f} s", flush=True)
    clean, corrupted = word_prompts(loaded, args.prompts, args.tokens, vocab=VOCAB)
    print(f"prompts: {len(clean)} x {clean.tokens.shape[1]} tokens; patch clean activations into the corrupted run",
          flush=True)
    if resumer_for(loaded, corrupted, "auto") is None:
        print("the fast engine does not reproduce this model; circ would run the hook kernel")
        return 1
    print("the fast engine reproduces the bridge's logits (self-check passed)", flush=True)
    source = make_source(loaded, corrupted, ir.PatchSource("dataset", "clean"), {"clean": clean})
    heads = [ir.Node(layer, "head", head) for layer in range(shape.n_layers) for head in range(shape.n_heads)]
    nodes = heads + [ir.Node(layer, "mlp") for layer in range(shape.n_layers)]
    step = max(1, shape.n_layers // args.baseline_heads)
    picked = [ir.Node(layer, "head", layer % shape.n_heads) for layer in range(0, shape.n_layers, step)]
    picked = picked[:args.baseline_heads]
    few = picked[::max(1, len(picked) // args.other_heads)][:args.other_heads]
    context = Context(loaded, clean, corrupted, source, nodes, picked, few)
    exact = None
    if "exact" not in args.skip:
        exact = bench_exact(context)
    if "direct" not in args.skip:
        bench_direct(context)
    if "attribution" not in args.skip:
        bench_attribution(context, exact)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of a patch analysis as the dataset grows: prompts are streamed in batches.

    .venv/bin/python bench/bench_memory.py [--sizes 1000 10000] [--method exact]

Runs the same analysis (every head and MLP patched from each prompt's corrupted copy,
logit difference at the last token, batches of 32) on 1,000 and on 10,000 prompts,
each in a fresh subprocess, and prints each process's peak resident set size
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) and their ratio. The model is the
embedded demo model when its files are present, otherwise a random model of the same
shape (2 layers, 4 heads, d_model 128) saved as a Hugging Face folder.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = [f"word{i}" for i in range(40)]
LABELS = ["A", "B", "C", "D"]


def demo_sized_model_dir(folder: str) -> str:
    """A random GPT-2 with the demo model's shape and a word-level tokenizer, saved to `folder`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(["<bos>", "<pad>", "<unk>", "Question", ":", "Answer", "(", ")",
                                                *LABELS, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>",
                                        pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=128, n_layer=2, n_head=4, n_inner=512,
                        bos_token_id=0, eos_token_id=0, pad_token_id=1)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def examples(n: int, seed: int = 0):
    """Multiple-choice prompts over WORDS, each with a corrupted copy (question reversed)."""
    from circ.runtime.examples import Example

    rng = random.Random(seed)
    out = []
    for line in range(1, n + 1):
        question = rng.sample(WORDS, 3)
        options = rng.sample(WORDS, 4)
        answer = rng.randrange(4)
        parts = ["Question", ":", *question]
        for label, option in zip(LABELS, options):
            parts += ["(", label, ")", option]
        prompt = " ".join(parts + ["Answer", ":"])
        corrupt = prompt.replace(" ".join(question), " ".join(reversed(question)), 1)
        out.append(Example(prompt=prompt, answer=f" {LABELS[answer]}",
                           wrong=tuple(f" {label}" for label in LABELS if label != LABELS[answer]),
                           corrupt=corrupt, line=line))
    return out


def child(n: int, model_dir: str, method: str) -> dict:
    """Run the analysis on `n` prompts in this process; report its peak RSS."""
    from pathlib import Path

    from circ.compiler import ir
    from circ.runtime.analyses.patching import patch
    from circ.runtime.models import load_model
    from circ.runtime.prompts import tokenize
    from circ.runtime.sources import make_source

    loaded = load_model(ir.Model(source="hf", location=model_dir), spec_dir=Path(model_dir))
    prompts = tokenize(loaded, examples(n), source_name="clean")
    nodes = [ir.Node(layer, "head", head) for layer in range(loaded.shape.n_layers)
             for head in range(loaded.shape.n_heads)] + [ir.Node(layer, "mlp") for layer in range(loaded.shape.n_layers)]
    source = make_source(loaded, prompts, ir.PatchSource("corrupt"), {})
    start = time.perf_counter()
    result = patch(loaded, prompts, nodes, ir.Metric("ld", "logit_diff"), source, method=method,
                   batch_size=32, show_progress=False)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"prompts": n, "nodes": len(result["values"]), "seconds": seconds, "peak_mib": peak_kib / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    parser.add_argument("--method", choices=["exact", "attribution"], default="exact")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.model_dir, args.method)))
        return 0
    from circ.runtime.demo_model import demo_model_dir

    model_dir = demo_model_dir()
    if (model_dir / "config.json").is_file():
        model, model_dir = "the embedded demo model", str(model_dir)
    else:
        model, model_dir = "a random demo-sized GPT-2", demo_sized_model_dir(tempfile.mkdtemp(prefix="circ-bench-"))
    print(f"patch analysis ({args.method}) of every head and MLP on {model}, batches of 32")
    runs = []
    for n in args.sizes:
        output = subprocess.run([sys.executable, __file__, "--child", str(n), "--model-dir", model_dir,
                                 "--method", args.method], check=True, capture_output=True, text=True).stdout
        run = json.loads(output.strip().splitlines()[-1])
        runs.append(run)
        print(f"  {run['prompts']:>6} prompts: peak RSS {run['peak_mib']:.0f} MiB ({run['seconds']:.1f} s)")
    ratio = runs[1]["peak_mib"] / runs[0]["peak_mib"]
    print(f"  peak RSS ratio {args.sizes[1]} / {args.sizes[0]} prompts: {ratio:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

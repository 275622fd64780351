"""Peak memory of a patch analysis as the dataset grows: prompts are streamed in batches.

    .venv/bin/python bench/bench_memory.py [--sizes 1000 10000] [--method exact]

Runs the same analysis on the embedded demo model (every head and MLP patched from
each prompt's corrupted copy, logit difference at the last token, batches of 32) on
1,000 and on 10,000 multiple-choice prompts of the `mcq` generator, each in a fresh
subprocess, and prints each process's peak resident set size
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) and their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child(n: int, method: str) -> dict:
    """Run the analysis on `n` prompts in this process; report its peak RSS."""
    from pathlib import Path

    from circ.compiler import ir
    from circ.runtime.analyses.patch_sources import make_source
    from circ.runtime.analyses.patching import patch
    from circ.runtime.data import generators
    from circ.runtime.data.prompts import tokenize
    from circ.runtime.models.loading import load_model

    loaded = load_model(ir.Model(source="demo"), spec_dir=Path.cwd())
    prompts = tokenize(loaded, generators.build("mcq", {"n": n, "labels": "ABCD", "seed": 0}), source_name="clean")
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
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.method)))
        return 0
    print(f"patch analysis ({args.method}) of every head and MLP on the embedded demo model, batches of 32")
    runs = []
    for n in args.sizes:
        output = subprocess.run([sys.executable, __file__, "--child", str(n), "--method", args.method],
                                check=True, capture_output=True, text=True).stdout
        run = json.loads(output.strip().splitlines()[-1])
        runs.append(run)
        print(f"  {run['prompts']:>6} prompts: peak RSS {run['peak_mib']:.0f} MiB ({run['seconds']:.1f} s)")
    ratio = runs[1]["peak_mib"] / runs[0]["peak_mib"]
    print(f"  peak RSS ratio {args.sizes[1]} / {args.sizes[0]} prompts: {ratio:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

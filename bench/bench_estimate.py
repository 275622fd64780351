"""Check `circ plan --estimate` against measured time: run a spec on a demo-shaped and
a GPT-2-small-shaped model (random weights, the demo's word-level tokenizer), time
every op, calibrate one FLOP rate on one op, and print measured / predicted time
for every other op.

Usage: .venv/bin/python bench/bench_estimate.py [--models demo gpt2-small] [--n N]
       [--batch-size B] [--repeats R] [--calibrate OP] [--target 0.25]
Exits 1 when an op's ratio is off by more than the target (default 25%).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SPEC = '''
spec "bench-{name}"
model hf("model")
data clean = mcq(n={n}, seed=0)
data moved = clean.move_answer(seed=3)
metric ld = logit_diff(answer, wrong) at last
analysis dla = attribute(heads + mlps, on=clean, metric=ld)
analysis attn = attention(heads, on=clean, query=last)
analysis total = patch({patched}, source=moved, target=clean, metric=ld)
analysis direct = patch(heads + mlps, source=moved, target=clean, metric=ld, effect=direct)
analysis paths = path_patch({senders}, to={receivers}, source=moved, target=clean, metric=ld)
analysis low = subspace(L1.H0, parts=[q], ranks=[1, 4, full], fit=clean, metric=ld)
expect faithfulness({senders}, on=clean, ablate=mean(clean), metric=ld) >= -1000
'''

MODELS = {
    "demo": {"n_layer": 2, "n_head": 4, "n_embd": 128, "n_inner": 512, "vocab_size": None,
             "patched": "heads + mlps", "senders": "[L0.H0, L0.H1, L0.MLP]", "receivers": "[L1.H0, L1.MLP]"},
    "gpt2-small": {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_inner": 3072, "vocab_size": 50257,
                   "patched": "[L0.H0, L2.MLP, L4.H3, L6.H7, L8.MLP, L10.H1, L11.H11]",
                   "senders": "[L0.H0, L3.MLP]", "receivers": "[L9.H1, L11.MLP]"},
}


def build_model(folder: Path, dims: dict) -> None:
    """A random GPT-2 of the given dimensions with the demo model's tokenizer."""
    import torch
    from circ.runtime.models.demo_model.tokenizer import build_tokenizer, save_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = build_tokenizer(128)
    config = GPT2Config(vocab_size=dims["vocab_size"] or len(tokenizer), n_positions=128, n_embd=dims["n_embd"],
                        n_layer=dims["n_layer"], n_head=dims["n_head"], n_inner=dims["n_inner"],
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    save_tokenizer(tokenizer, folder)


class OpClock:
    """A progress log that times each op ("[n/N] op" lines)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._op, self._start = None, None

    def write(self, text: str) -> None:
        if text.startswith("["):
            self.stop()
            self._op, self._start = text.split("] ", 1)[1].strip(), time.perf_counter()

    def stop(self) -> None:
        if self._op is not None:
            self.seconds[self._op] = time.perf_counter() - self._start
            self._op = None

    def flush(self) -> None:
        pass


def measure(name: str, n: int, batch_size: int, repeats: int, folder: Path) -> tuple[dict, dict]:
    """(predicted FLOPs, the fastest of `repeats` measured times) per op; a mean op's
    FLOPs go to its first reader, which computes the means."""
    from circ.compiler.api import compile_file, plan
    from circ.compiler.estimate.cost import estimate_plan
    from circ.compiler.estimate.cost_shapes import from_config
    from circ.compiler.plan.output import ordered_ids
    from circ.runtime.data.token_counts import measure_prompts
    from circ.runtime.execute.executor import Executor, Settings
    from circ.runtime.models.loading import load_model

    dims = MODELS[name]
    build_model(folder / "model", dims)
    spec_path = folder / f"{name}.circ"
    spec_path.write_text(SPEC.format(name=name, n=n, **{k: dims[k] for k in ("patched", "senders", "receivers")}))
    spec = compile_file(spec_path)
    graph = plan(spec)
    shape = from_config(json.loads((folder / "model" / "config.json").read_text()), name)
    lengths, starts = measure_prompts(spec)
    estimate = estimate_plan(spec, graph, shape, lengths, batch_size, starts)
    flops = {op.op: op.flops for op in estimate.ops}
    order = ordered_ids(graph)
    for op_id in [o for o in flops if o.startswith("mean:")]:
        reader = next(o for o in order if o in graph.successors(op_id) and o in flops
                      and spec.analysis(o.split(":", 1)[1]).kind in ("patch", "path_patch", "faithfulness"))
        flops[reader] += flops.pop(op_id)
    loaded = load_model(spec.model, spec_dir=folder)
    best = dict.fromkeys(flops, float("inf"))
    for _ in range(repeats):  # the first run also warms up; the fastest of each op is kept
        clock = OpClock()
        Executor(spec, graph, loaded, Settings(batch_size=batch_size, show_progress=True, log=clock), {}).run()
        clock.stop()
        best = {op: min(best[op], clock.seconds[op]) for op in flops}
    return flops, best


def report(name: str, flops: dict, seconds: dict, calibrate: str, target: float) -> bool:
    rate = flops[calibrate] / seconds[calibrate]
    print(f"\n{name}: calibrated on {calibrate}: {rate / 1e9:.2f} GFLOP/s")
    print(f"{'op':<34}{'GFLOP':>10}{'measured s':>12}{'predicted s':>13}{'ratio':>8}")
    good = True
    for op, value in flops.items():
        predicted = value / rate
        ratio = seconds[op] / predicted if predicted else float("nan")
        mark = "" if op == calibrate else ("  ok" if abs(ratio - 1) <= target else "  OFF")
        good = good and (op == calibrate or abs(ratio - 1) <= target)
        print(f"{op:<34}{value / 1e9:>10.3f}{seconds[op]:>12.3f}{predicted:>13.3f}{ratio:>8.2f}{mark}")
    return good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["demo", "gpt2-small"])
    parser.add_argument("--n", type=int, default=8, help="prompts per dataset")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the plan; each op's fastest counts")
    parser.add_argument("--calibrate", default="run:clean", help="the op whose time sets the FLOP rate")
    parser.add_argument("--target", type=float, default=0.25)
    args = parser.parse_args()
    good = True
    for name in args.models:
        with tempfile.TemporaryDirectory() as folder:
            flops, seconds = measure(name, args.n, args.batch_size, args.repeats, Path(folder))
        good = report(name, flops, seconds, args.calibrate, args.target) and good
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())

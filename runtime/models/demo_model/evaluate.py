"""Accuracy and logit difference of the demo model on held-out multiple-choice prompts.

    python -m circ.runtime.models.demo_model.evaluate [--model DIR] [--n 1000]

loads the model through `TransformerBridge.boot_transformers`, the path circ itself
uses, and prints, for ABCD labels, random-letter labels and number labels, the
accuracy (the correct label is the top token over the whole vocabulary) and the
mean logit difference (correct label minus the mean of the wrong labels) at the
final position.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from circ.compiler.ir import Word
from circ.runtime.data.examples import Example
from circ.runtime.models.demo_model import demo_model_dir
from circ.runtime.models.demo_model.split import held_out_examples

LABEL_SETS = (("ABCD", "ABCD"), ("random letters", Word("random_letters")), ("numbers", Word("numbers")))
EVAL_SEED = 0


@dataclass(frozen=True)
class Score:
    prompts: int
    accuracy: float
    logit_diff: float


def score(examples: list[Example], final_logits: Callable[[list[str]], torch.Tensor],
          token_id: Callable[[str], int], batch_size: int = 128) -> Score:
    """Accuracy and mean logit difference of `final_logits` (prompts -> [n, d_vocab])."""
    correct, diffs = 0, []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        logits = final_logits([e.prompt for e in batch])
        for row, example in zip(logits, batch):
            answer = row[token_id(example.answer)]
            wrong = torch.stack([row[token_id(w)] for w in example.wrong])
            correct += int(row.argmax().item() == token_id(example.answer))
            diffs.append((answer - wrong.mean()).item())
    return Score(len(examples), correct / len(examples), sum(diffs) / len(diffs))


def bridge_final_logits(bridge) -> Callable[[list[str]], torch.Tensor]:
    """Final-position logits of right-padded prompts through a TransformerBridge."""
    pad_id = bridge.tokenizer.pad_token_id

    def final_logits(prompts: list[str]) -> torch.Tensor:
        tokens = bridge.to_tokens(prompts, padding_side="right")
        last = (tokens != pad_id).sum(dim=1) - 1
        with torch.no_grad():
            logits = bridge(tokens)
        return logits[torch.arange(len(prompts)), last]

    return final_logits


def evaluate_bridge(bridge, n: int) -> dict[str, Score]:
    """Scores on n held-out prompts per label set."""
    token_id = bridge.tokenizer.convert_tokens_to_ids
    final_logits = bridge_final_logits(bridge)
    return {
        name: score(held_out_examples(n, labels, seed=EVAL_SEED), final_logits, token_id)
        for name, labels in LABEL_SETS
    }


def format_scores(scores: dict[str, Score]) -> str:
    lines = [f"{'labels':<16}{'prompts':>8}{'accuracy':>10}{'mean logit diff':>17}"]
    for name, s in scores.items():
        lines.append(f"{name:<16}{s.prompts:>8}{s.accuracy:>10.4f}{s.logit_diff:>17.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=demo_model_dir(),
                        help="a Hugging Face model folder (default: the shipped demo model)")
    parser.add_argument("--n", type=int, default=1000, help="held-out prompts per label set")
    args = parser.parse_args(argv)
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} holds no config.json; train the model first")
    if args.n < 1:
        parser.error("--n must be at least 1")
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(str(args.model), device="cpu")
    print(f"model: {args.model}")
    print(format_scores(evaluate_bridge(bridge, args.n)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

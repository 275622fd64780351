"""Train the demo model: a small GPT-2 that answers multiple-choice prompts with a label.

    python -m circ.runtime.models.demo_model.train --seed 0 --out DIR

writes config.json, model.safetensors, the tokenizer files and training.json (the
recipe and the held-out accuracies seen during training) to DIR. Training runs on
one CPU thread and is deterministic for a seed on a given machine. The recipe and
what it took to get off the loss plateau are described in docs/demo-model.md.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from circ.runtime.models.demo_model.data import (
    LABEL_MIX,
    OPTION_COUNTS,
    SHIFTED_SHARE,
    Sequence,
    training_sequence,
)
from circ.runtime.models.demo_model.evaluate import LABEL_SETS, Score, score
from circ.runtime.models.demo_model.guide import guide_loss
from circ.runtime.models.demo_model.split import held_out_examples
from circ.runtime.models.demo_model.tokenizer import build_tokenizer, save_tokenizer

THREADS = 1
EVAL_PROMPTS = 256
EVAL_SEED = 1  # training watches other held-out prompts than evaluate.py reports


@dataclass(frozen=True)
class Recipe:
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 128
    d_mlp: int = 512
    n_ctx: int = 64
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    init_std: float = 0.1  # standard deviation of the initial weights (GPT-2 uses 0.02)
    guide_steps: int = 500  # steps over which the attention guidance fades out
    eval_every: int = 250


def build_model(recipe: Recipe, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=recipe.n_ctx,
        n_embd=recipe.d_model,
        n_layer=recipe.n_layers,
        n_head=recipe.n_heads,
        n_inner=recipe.d_mlp,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=recipe.init_std,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = "eager"  # attention weights are needed for the guidance
    return GPT2LMHeadModel(config)


def encode(batch: list[Sequence], vocab: dict[str, int], pad_id: int, n_ctx: int):
    """Input ids and position ids [batch, longest sequence], and the targets
    (-100 where not supervised)."""
    width = max(len(sequence.words) for sequence in batch)
    positions = torch.stack([torch.arange(width) + s.start for s in batch]).clamp(max=n_ctx - 1)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, sequence in enumerate(batch):
        ids[row, :len(sequence.words)] = torch.tensor([vocab[w] for w in sequence.words])
        targets[row, list(sequence.targets)] = ids[row, list(sequence.targets)]
    return ids, positions, targets


def learning_rate(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def held_out_scores(model, tokenizer) -> dict[str, Score]:
    def final_logits(prompts: list[str]) -> torch.Tensor:
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
        last = batch["attention_mask"].sum(dim=1) - 1
        with torch.no_grad():
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits[torch.arange(len(prompts)), last]

    model.eval()
    scores = {name: score(held_out_examples(EVAL_PROMPTS, labels, seed=EVAL_SEED), final_logits,
                          tokenizer.convert_tokens_to_ids)
              for name, labels in LABEL_SETS}
    model.train()
    return scores


def train(recipe: Recipe, seed: int, out: Path) -> dict:
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    rng = random.Random(f"train:{seed}")
    tokenizer = build_tokenizer(recipe.n_ctx)
    vocab = tokenizer.get_vocab()
    model = build_model(recipe, tokenizer)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": matrices, "weight_decay": recipe.weight_decay}, {"params": others, "weight_decay": 0.0}],
        lr=recipe.lr, betas=(0.9, 0.98),
    )
    started, history = time.time(), []
    model.train()
    for step in range(recipe.steps):
        batch = [training_sequence(rng, recipe.n_ctx) for _ in range(recipe.batch_size)]
        ids, positions, targets = encode(batch, vocab, tokenizer.pad_token_id, recipe.n_ctx)
        guide_weight = max(0.0, 1 - step / recipe.guide_steps) if recipe.guide_steps else 0.0
        output = model(ids, attention_mask=(ids != tokenizer.pad_token_id).long(), position_ids=positions,
                       output_attentions=guide_weight > 0)
        logits = output.logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1))
        total = loss + guide_weight * guide_loss(output.attentions, batch) if guide_weight > 0 else loss
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, step)
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % recipe.eval_every == 0 or step + 1 == recipe.steps:
            scores = held_out_scores(model, tokenizer)
            entry = {"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - started),
                     **{name: round(s.accuracy, 4) for name, s in scores.items()}}
            history.append(entry)
            print(json.dumps(entry), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    record = {"seed": seed, "threads": THREADS, "recipe": asdict(recipe), "label_mix": dict(LABEL_MIX),
              "option_counts": OPTION_COUNTS, "shifted_share": SHIFTED_SHARE,
              "seconds": round(time.time() - started), "history": history}
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for the Hugging Face files")
    defaults = Recipe()
    tunable = [f for f in fields(Recipe) if f.name not in ("n_ctx", "eval_every")]
    for field in tunable:
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name))
    args = parser.parse_args(argv)
    recipe = Recipe(**{field.name: getattr(args, field.name) for field in tunable})
    if min(recipe.n_layers, recipe.n_heads, recipe.d_model, recipe.d_mlp, recipe.steps, recipe.batch_size) <= 0:
        parser.error("sizes, steps and the batch size must be positive")
    if recipe.lr <= 0 or recipe.init_std <= 0 or recipe.guide_steps < 0 or recipe.warmup < 0:
        parser.error("lr and init-std must be positive, guide-steps and warmup not negative")
    if recipe.d_model % recipe.n_heads:
        parser.error("d-model must be a multiple of n-heads")
    train(recipe, args.seed, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

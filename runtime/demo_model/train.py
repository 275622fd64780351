"""Train the demo model: a small GPT-2 that answers multiple-choice prompts with a label.

    python -m circ.runtime.demo_model.train --seed 0 --out DIR

writes config.json, model.safetensors, the tokenizer files and training.json (the
recipe and the held-out accuracies seen during training) to DIR. The result is
deterministic for a seed on a given machine and thread count. The recipe and what
it took to get off the loss plateau are described in docs/demo-model.md.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from circ.runtime.demo_model.data import CURRICULUM, LABEL_MIX, Sequence, training_sequence
from circ.runtime.demo_model.evaluate import LABEL_SETS, Score, score
from circ.runtime.demo_model.split import held_out_examples
from circ.runtime.demo_model.tokenizer import build_tokenizer, save_tokenizer

THREADS = 1
EVAL_PROMPTS = 256


@dataclass(frozen=True)
class Recipe:
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 128
    d_mlp: int = 512
    n_ctx: int = 64
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.01
    advance_at: float = 0.9  # training label accuracy that moves the curriculum on
    advance_window: int = 50  # steps over which that accuracy is measured
    eval_every: int = 250
    supervise: tuple[str, ...] = ("label", "answer_text", "list_labels")
    guide_steps: int = 0  # steps during which attention is guided (see guide_loss)
    init_std: float = 0.02  # standard deviation of the initial weights (GPT-2: 0.02)


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
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=recipe.init_std,
    )
    config._attn_implementation = "eager"
    model = GPT2LMHeadModel(config)
    return model


def guide_loss(attentions: tuple[torch.Tensor, ...], batch: list[Sequence]) -> torch.Tensor:
    """How far head 0 of the first and of the last layer are from the two moves the
    task needs: in the first layer every word attends to the word two back (an option
    text to its label, the final `:` to the answer text), in the last layer the final
    `:` of each query attends to the option text it asks about. Each term is the mean
    of -log(attention weight on the target)."""
    first, last = attentions[0][:, 0], attentions[-1][:, 0]  # [batch, query, key]
    queries = torch.arange(2, first.shape[-1])
    lengths = torch.tensor([len(sequence.words) for sequence in batch])
    inside = queries[None, :] < lengths[:, None]
    two_back = first[:, queries, queries - 2][inside]
    rows, finals, texts = [], [], []
    for row, sequence in enumerate(batch):
        for answer, text in zip(sequence.answers, sequence.option_texts):
            rows.append(row)
            finals.append(answer - 1)
            texts.append(text)
    lookup = last[rows, finals, texts]
    return -torch.log(two_back + 1e-6).mean() - torch.log(lookup + 1e-6).mean()


def encode(batch: list[Sequence], vocab: dict[str, int], pad_id: int, n_ctx: int):
    """Input ids and position ids [batch, longest sequence], targets (-100 where not
    supervised) and a mask of the label answers among the targets."""
    width = max(len(sequence.words) for sequence in batch)
    positions = torch.stack([torch.arange(width) + sequence.start for sequence in batch]).clamp(max=n_ctx - 1)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), width), -100, dtype=torch.long)
    answers = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, sequence in enumerate(batch):
        ids[row, :len(sequence.words)] = torch.tensor([vocab[w] for w in sequence.words])
        for index in sequence.targets:
            targets[row, index] = ids[row, index]
        answers[row, list(sequence.answers)] = True
    return ids, positions, targets, answers


def learning_rate(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item()))


def hf_final_logits(model, tokenizer):
    def final_logits(prompts: list[str]) -> torch.Tensor:
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
        last = batch["attention_mask"].sum(dim=1) - 1
        with torch.no_grad():
            logits = model(batch["input_ids"]).logits
        return logits[torch.arange(len(prompts)), last]

    return final_logits


def held_out_scores(model, tokenizer) -> dict[str, Score]:
    model.eval()
    final_logits = hf_final_logits(model, tokenizer)
    scores = {
        name: score(held_out_examples(EVAL_PROMPTS, labels, seed=1), final_logits,
                    tokenizer.convert_tokens_to_ids)
        for name, labels in LABEL_SETS
    }
    model.train()
    return scores


def train(recipe: Recipe, seed: int, out: Path) -> dict:
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    rng = random.Random(f"train:{seed}")
    tokenizer = build_tokenizer(recipe.n_ctx)
    vocab = tokenizer.get_vocab()
    model = build_model(recipe, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr, betas=(0.9, 0.98),
    )
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, out)
    started, history = time.time(), []
    stage, stage_hits, stage_total, advanced = 0, 0, 0, []
    model.train()
    for step in range(recipe.steps):
        batch = [training_sequence(rng, CURRICULUM[stage], recipe.n_ctx, frozenset(recipe.supervise))
                 for _ in range(recipe.batch_size)]
        ids, positions, targets, answers = encode(batch, vocab, tokenizer.pad_token_id, recipe.n_ctx)
        pull = max(0.0, 1 - step / recipe.guide_steps) if recipe.guide_steps else 0.0
        output = model(ids, position_ids=positions, output_attentions=pull > 0)
        logits = output.logits[:, :-1]
        targets, answers = targets[:, 1:], answers[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if pull > 0:
            loss = loss + pull * guide_loss(output.attentions, batch)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, step)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        stage_hits += (logits.argmax(-1) == targets)[answers].sum().item()
        stage_total += answers.sum().item()
        if (step + 1) % recipe.advance_window == 0:
            if stage + 1 < len(CURRICULUM) and stage_hits >= recipe.advance_at * stage_total:
                stage += 1
                advanced.append(step + 1)
                print(json.dumps({"step": step + 1, "stage": stage}), flush=True)
            stage_hits, stage_total = 0, 0
        if (step + 1) % recipe.eval_every == 0 or step + 1 == recipe.steps:
            scores = held_out_scores(model, tokenizer)
            entry = {"step": step + 1, "loss": round(loss.item(), 4), "stage": stage,
                     "seconds": round(time.time() - started),
                     **{name: round(s.accuracy, 4) for name, s in scores.items()}}
            history.append(entry)
            print(json.dumps(entry), flush=True)
            model.save_pretrained(out)
    record = {"seed": seed, "threads": THREADS, "recipe": asdict(recipe), "label_mix": dict(LABEL_MIX),
              "curriculum": [asdict(s) for s in CURRICULUM], "stage_started": advanced,
              "seconds": round(time.time() - started), "history": history}
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for the Hugging Face files")
    defaults = Recipe()
    for name in ("n_layers", "n_heads", "d_model", "d_mlp", "steps", "batch_size", "warmup"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--supervise", default=",".join(defaults.supervise))
    parser.add_argument("--guide-steps", type=int, default=defaults.guide_steps)
    parser.add_argument("--init-std", type=float, default=defaults.init_std)
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name in
                 ("n_layers", "n_heads", "d_model", "d_mlp", "steps", "batch_size", "warmup", "lr")}
    if min(overrides.values()) <= 0:
        parser.error("sizes, steps and the learning rate must be positive")
    if overrides["d_model"] % overrides["n_heads"]:
        parser.error("d-model must be a multiple of n-heads")
    overrides["supervise"] = tuple(args.supervise.split(","))
    overrides["guide_steps"] = args.guide_steps
    overrides["init_std"] = args.init_std
    train(Recipe(**overrides), args.seed, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

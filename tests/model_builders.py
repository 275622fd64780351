"""Small random models built from a config and saved as local Hugging Face folders,
with a real byte-level BPE tokenizer trained here, for tests that load them the way
a user's model is loaded (`model hf("DIR")`).

Two families:
  llama  rotary positions, grouped-query attention (4 query heads, 2 key/value
         heads), RMSNorm, SwiGLU MLP, no biases
  gpt2   learned positions, LayerNorm, GELU MLP, biases everywhere

The tokenizer is trained with the `tokenizers` library on generated multiple-choice
and induction text (the words of circ's generators), so labels such as " A" and
" B" and the frame words are single tokens with their leading space, while many
content words are split into several tokens: generator spacing matters with it.
Everything is deterministic: the same call builds the same files. From the command
line (docs/own-model.md): `.venv/bin/python tests/model_builders.py FOLDER llama|gpt2`.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

BOS = "<|endoftext|>"
VOCAB_SIZE = 512
FAMILIES = ("llama", "gpt2")


def training_text(seed: int = 0, n: int = 400) -> list[str]:
    """Lines of multiple-choice and induction text for the tokenizer's trainer."""
    from circ.runtime.data.generators import build

    lines = [example.prompt + example.answer for example in build("mcq", {"n": n, "seed": seed})]
    lines += [example.prompt for example in build("mcq", {"n": n // 4, "labels": "numbers", "seed": seed + 1})]
    rng = random.Random(seed)
    lines += [" ".join(rng.sample("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 8)) for _ in range(n // 4)]
    return lines


def train_bpe_tokenizer(vocab_size: int = VOCAB_SIZE, seed: int = 0):
    """A byte-level BPE tokenizer (GPT-2's pre-tokenizer and decoder) wrapped as a
    Hugging Face fast tokenizer, with one special token for BOS, EOS and padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(training_text(seed), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=BOS, pad_token=BOS,
                                   padding_side="right")


def llama_config(vocab_size: int, *, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32, d_mlp=64, n_ctx=96):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=d_mlp,
                       num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_kv_heads,
                       max_position_embeddings=n_ctx, rms_norm_eps=1e-6, rope_theta=10000.0,
                       attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                       bos_token_id=0, eos_token_id=0, pad_token_id=0)


def gpt2_config(vocab_size: int, *, n_layers=2, n_heads=4, d_model=32, n_ctx=96):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_positions=n_ctx, n_embd=d_model, n_layer=n_layers,
                      n_head=n_heads, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def build_model_dir(folder, family: str, *, seed: int = 0, **dims) -> Path:
    """Save a random model of `family` ("llama" or "gpt2") and the BPE tokenizer into
    `folder`. Every weight is perturbed (norm weights and biases included), so no
    parameter has its trivial initial value. `dims` override the config's sizes."""
    import torch
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    tokenizer = train_bpe_tokenizer(seed=seed)
    vocab_size = len(tokenizer)
    if family == "llama":
        config, model_class = llama_config(vocab_size, **dims), LlamaForCausalLM
    else:
        config, model_class = gpt2_config(vocab_size, **dims), GPT2LMHeadModel
    torch.manual_seed(seed)
    model = model_class(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("wte.weight", "embed_tokens.weight")):
                parameter.mul_(10.0)
            parameter.add_(torch.randn_like(parameter) * 0.2)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in FAMILIES:
        sys.exit(f"usage: {sys.argv[0]} FOLDER {'|'.join(FAMILIES)}")
    print(build_model_dir(sys.argv[1], sys.argv[2]))

"""A two-layer Llama-architecture model (rotary positions, grouped-query attention,
RMSNorm, SwiGLU MLP, no biases) whose weights are set by hand so that it has one
previous-token head and one induction head, and repeated-sequence prompts for it.

    python tests/planted_induction.py specs/models/induction_llama specs/data/induction_llama.jsonl

writes the model folder (config, weights, word-level tokenizer) and the prompts;
the same arguments always give the same bytes.

Residual stream (d_model 64), every direction its own axis:
  0..12   the token's identity          (token embeddings: identity + constant)
  13      a constant, on every token
  16..28  the previous token's identity  (written by L0.H1)
  32..44  the copied token's identity    (written by L1.H2, read by the unembedding)

Rotary embeddings rotate each pair of query/key dimensions (k, k + 8) by the position
times theta^(-k/8); with theta = 1e6 pairs 0..2 turn fast and pairs 3..7 hardly turn
over a few dozen positions.

  L0.H1 (key/value head 0), previous-token head: its query and key read the
      constant into the fast pairs, the query turned back by one position's angle
      in each, so q.k peaks at distance 1; its value reads the token's identity and
      its output writes it into the previous-token directions.
  L1.H2 (key/value head 1), induction head: its query reads the current token's
      identity, its key the previous-token directions, both as the same one-hot code
      in the slow pairs, so a query attends to the position after an earlier
      occurrence of its token; its value reads that token's identity and its output
      writes it into the copied directions, which the unembedding turns into logits.

Every other head has a zero query (uniform attention) and a zero output; the MLPs
have zero weights; the norms have unit weights.
"""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

WORDS = ["apple", "brick", "cloud", "delta", "ember", "flint", "grove", "haze", "iris", "jade"]
VOCAB = ["<bos>", "<pad>", "<unk>", *WORDS]
D_MODEL, N_LAYER, N_HEAD, N_KV_HEAD, D_HEAD, D_MLP, N_CTX = 64, 2, 4, 2, 16, 8, 64
ROPE_THETA = 1e6
CONSTANT, PREVIOUS, COPIED = 13, 16, 32
FAST_PAIRS, SLOW_PAIRS = (0, 1, 2), (3, 4, 5, 6, 7)
PREVIOUS_TOKEN_HEAD, INDUCTION_HEAD = (0, 1), (1, 2)
PLANTED = ("L0.H1", "L1.H2")
PREVIOUS_GAIN = 30.0  # the previous-token head's attention logit at distance 1, per fast pair
MATCH_GAIN = 6.0  # scales the induction head's query and key codes
OUTPUT_GAIN = 12.0  # the unembedding's weight on the copied directions


def _rms_gain(squared_norm: float) -> float:
    """RMSNorm's factor for a residual of this squared norm."""
    return 1.0 / math.sqrt(squared_norm / D_MODEL)


def _code_dims() -> list[int]:
    """The query/key dimensions of the slow rotary pairs: one per content token."""
    half = D_HEAD // 2
    return [pair + side * half for pair in SLOW_PAIRS for side in (0, 1)]


def build_model_dir(folder) -> Path:
    """Save the hand-set model and its word-level tokenizer into `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=D_MODEL, intermediate_size=D_MLP,
                         num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD,
                         num_key_value_heads=N_KV_HEAD, head_dim=D_HEAD, max_position_embeddings=N_CTX,
                         rope_theta=ROPE_THETA, rms_norm_eps=1e-6, tie_word_embeddings=False,
                         bos_token_id=0, eos_token_id=0, pad_token_id=1)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        _set_weights(model, torch)
    folder = Path(folder)
    model.save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


def _set_weights(model, torch) -> None:
    half = D_HEAD // 2
    embed = model.model.embed_tokens.weight
    for token in range(len(VOCAB)):
        embed[token, token] = 1.0
        embed[token, CONSTANT] = 1.0
    for norm in [model.model.norm] + [n for layer in model.model.layers
                                      for n in (layer.input_layernorm, layer.post_attention_layernorm)]:
        norm.weight.fill_(1.0)

    # L0.H1: previous-token head; keys and values from key/value head 0
    attention = model.model.layers[0].self_attn
    gain = _rms_gain(2.0)  # token + constant
    layer, head = PREVIOUS_TOKEN_HEAD
    query = attention.q_proj.weight[head * D_HEAD:(head + 1) * D_HEAD]
    key = attention.k_proj.weight[0:D_HEAD]
    value = attention.v_proj.weight[0:D_HEAD]
    scale = math.sqrt(D_HEAD)
    for pair in FAST_PAIRS:
        angle = ROPE_THETA ** (-pair / half)
        key[pair, CONSTANT] = 1.0 / gain
        amplitude = PREVIOUS_GAIN * scale / gain  # q.k / sqrt(d_head) = PREVIOUS_GAIN at distance 1
        query[pair, CONSTANT] = amplitude * math.cos(angle)
        query[pair + half, CONSTANT] = -amplitude * math.sin(angle)
    for token in range(len(VOCAB)):
        value[token, token] = 1.0 / gain
        attention.o_proj.weight[PREVIOUS + token, head * D_HEAD + token] = 1.0

    # L1.H2: induction head; keys and values from key/value head 1
    attention = model.model.layers[1].self_attn
    gain = _rms_gain(3.0)  # token + constant + previous token
    layer, head = INDUCTION_HEAD
    query = attention.q_proj.weight[head * D_HEAD:(head + 1) * D_HEAD]
    key = attention.k_proj.weight[D_HEAD:2 * D_HEAD]
    value = attention.v_proj.weight[D_HEAD:2 * D_HEAD]
    for dim, word in zip(_code_dims(), WORDS):
        token = VOCAB.index(word)
        query[dim, token] = MATCH_GAIN / gain
        key[dim, PREVIOUS + token] = MATCH_GAIN / gain
    for token in range(len(VOCAB)):
        value[token, token] = 1.0 / gain
        attention.o_proj.weight[COPIED + token, head * D_HEAD + token] = 1.0
        model.lm_head.weight[token, COPIED + token] = OUTPUT_GAIN


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({word: i for i, word in enumerate(VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>",
                                   pad_token="<pad>", unk_token="<unk>", padding_side="right")


def repeated_records(n: int, *, half: int = 8, seed: int = 0) -> list[dict]:
    """JSONL records: `half` distinct words, then the same words again up to the one
    before last; the answer is the last word, which follows the earlier occurrence of
    the final word. The wrong answers are two other words of the sequence."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        words = rng.sample(WORDS, half)
        sequence = words + words[:-1]
        wrong = rng.sample(words[:-1], 2)
        records.append({"prompt": " ".join(sequence), "answer": f" {words[-1]}",
                        "wrong": [f" {w}" for w in wrong]})
    return records


def write_records(path, records) -> None:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/planted_induction.py MODEL_FOLDER DATA.jsonl")
    build_model_dir(sys.argv[1])
    write_records(sys.argv[2], repeated_records(24))

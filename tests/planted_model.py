"""A two-layer GPT-2 whose weights are set by hand so that a known circuit copies the
token that follows a marker to the output, and prompts for that task.

Task: "<bos> w w @ x w ... w =" -> x, the word after the marker "@".

Every vector lives in its own orthonormal direction of the residual stream, all
orthogonal to the all-ones vector, so LayerNorm's centering changes nothing; every
position's residual has the same norm at every layer, so LayerNorm only multiplies by
a known constant, which the weights below undo. Token embeddings are a token's
identity direction plus "is the marker" or "is plain"; position embeddings are a
position direction plus a constant bias direction. The unembedding is tied to the
token embeddings, as in GPT-2.

The planted circuit:
  L0.H2, previous-token head: queries position i-1 by position, and writes "my
      previous token was the marker" (flag) or "was not" (no flag) at position i.
  L1.H1, copying head: from every position it queries the constant bias direction
      against the flag, so it attends to the word after the marker, and its OV
      circuit writes that word's identity (times COPY_GAIN) onto its unembedding.

Every other head is present but carries nothing to the output: L0.H0 and L1.H2 have
random query/key/value weights and a zero output matrix; L0.H1 attends to its own
position and copies the token's identity into a scratch subspace nobody reads; L0.H3
and L1.H0 attend to BOS and write a constant; L1.H3 attends to the marker and writes
the marker's (constant) identity into scratch. The MLPs have random input weights and
zero output weights and biases.
"""
from __future__ import annotations

import math
import random

WORDS = ["cat", "dog", "red", "blue", "green", "sun", "moon", "tree", "fish", "bird", "rock"]
MARKER, QUERY = "@", "="
VOCAB = ["<bos>", "<pad>", "<unk>", MARKER, QUERY, *WORDS]
N_LAYER, N_HEAD, D_MODEL, N_CTX = 2, 4, 128, 16
D_HEAD = D_MODEL // N_HEAD
PREVIOUS_TOKEN_HEAD = (0, 2)
COPYING_HEAD = (1, 1)
PLANTED = ("L0.H2", "L1.H1")
SCORE_GAP = 40.0  # attention logit of the attended key over every other key
COPY_GAIN = 10.0  # norm of the copied identity that the copying head writes
LN_EPS = 1e-5


class _Directions:
    """Named groups of orthonormal directions of R^D_MODEL, each orthogonal to the
    all-ones vector (so LayerNorm's mean subtraction leaves them unchanged)."""

    def __init__(self, sizes: dict[str, int], seed: int):
        import torch

        generator = torch.Generator().manual_seed(seed)
        total = sum(sizes.values())
        if total > D_MODEL - 1:
            raise ValueError(f"{total} directions do not fit beside the all-ones vector in {D_MODEL} dimensions")
        raw = torch.randn(D_MODEL, total, generator=generator, dtype=torch.float64)
        raw = raw - raw.mean(dim=0, keepdim=True)
        basis, _ = torch.linalg.qr(raw)
        self.groups, start = {}, 0
        for name, size in sizes.items():
            self.groups[name] = basis[:, start:start + size].T.float()  # [size, D_MODEL]
            start += size

    def __getitem__(self, name):
        return self.groups[name]


def layernorm_gain(squared_norm: float) -> float:
    """What LayerNorm (weight 1, bias 0) multiplies a mean-zero vector of this squared norm by."""
    return 1.0 / math.sqrt(squared_norm / D_MODEL + LN_EPS)


def build_planted_model_dir(folder, *, seed: int = 0):
    """Save the hand-set GPT-2 and its word-level tokenizer into `folder` (a Hugging
    Face directory, loaded like any user's model)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=len(VOCAB), n_positions=N_CTX, n_embd=D_MODEL, n_layer=N_LAYER,
                        n_head=N_HEAD, layer_norm_epsilon=LN_EPS, bos_token_id=0, eos_token_id=0,
                        pad_token_id=1, tie_word_embeddings=True)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        _set_weights(model, _Directions({"identity": len(VOCAB), "kind": 2, "position": N_CTX, "bias": 1,
                                         "flag": 2, "self_copy": len(VOCAB), "bos": 2, "marker_copy": 1},
                                        seed), seed)
    model.save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({word: i for i, word in enumerate(VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<bos>",
                                   pad_token="<pad>", unk_token="<unk>", padding_side="right")


def _set_weights(model, d: _Directions, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    identity, kind, position, bias = d["identity"], d["kind"], d["position"], d["bias"][0]
    marker = VOCAB.index(MARKER)
    is_marker, is_plain = kind[0], kind[1]
    transformer = model.transformer
    for token in range(len(VOCAB)):
        transformer.wte.weight[token] = identity[token] + (is_marker if token == marker else is_plain)
    transformer.wpe.weight[:] = position + bias
    for module in [*(block.ln_1 for block in transformer.h), *(block.ln_2 for block in transformer.h),
                   transformer.ln_f]:
        module.weight.fill_(1.0)
    for block in transformer.h:  # MLPs: random input weights, zero output: they add nothing
        block.mlp.c_fc.weight.copy_(torch.randn(block.mlp.c_fc.weight.shape, generator=generator))

    # Residual norms (squared), the same at every position: embeddings 1 + 1 + 1 + 1;
    # layer 0 adds flag (1), self copy (1) and the BOS constant (1).
    gain0, gain1 = layernorm_gain(4.0), layernorm_gain(7.0)
    layer0, layer1 = _Heads(transformer.h[0].attn), _Heads(transformer.h[1].attn)

    layer0.random_dead(0, generator)
    sharp0 = math.sqrt(SCORE_GAP * math.sqrt(D_HEAD)) / gain0  # q.k / sqrt(d_head) = SCORE_GAP after LN
    layer0.query(1, position * sharp0)
    layer0.key(1, position * sharp0)
    layer0.value_output(1, identity / gain0, d["self_copy"])
    layer0.query(2, position[1:] * sharp0)  # query column j matches key column j at position j + 1
    layer0.key(2, position[:-1] * sharp0)
    layer0.value_output(2, torch.stack([is_marker, is_plain]) / gain0, d["flag"])
    layer0.query(3, bias[None] * sharp0)
    layer0.key(3, identity[:1] * sharp0)  # <bos> is token 0
    layer0.value_output(3, bias[None] / gain0, d["bos"][:1])

    sharp1 = math.sqrt(SCORE_GAP * math.sqrt(D_HEAD)) / gain1
    layer1.query(0, bias[None] * sharp1)
    layer1.key(0, identity[:1] * sharp1)
    layer1.value_output(0, bias[None] / gain1, d["bos"][1:])
    layer1.query(1, bias[None] * sharp1)
    layer1.key(1, d["flag"][:1] * sharp1)
    layer1.value_output(1, identity * (COPY_GAIN / gain1), identity)
    layer1.random_dead(2, generator)
    layer1.query(3, bias[None] * sharp1)
    layer1.key(3, is_marker[None] * sharp1)
    layer1.value_output(3, identity[marker:marker + 1] / gain1, d["marker_copy"])


class _Heads:
    """Writes one head's slice of a GPT-2 attention layer: c_attn holds [Q | K | V]
    (each split into heads of D_HEAD columns), c_proj's rows are the heads' W_O."""

    def __init__(self, attention):
        self.weight = attention.c_attn.weight  # [D_MODEL, 3 * D_MODEL]
        self.output = attention.c_proj.weight  # [D_MODEL, D_MODEL]

    def _columns(self, part: int, head: int, count: int) -> slice:
        start = part * D_MODEL + head * D_HEAD
        return slice(start, start + count)

    def query(self, head: int, reads):
        """Query column j reads the residual along reads[j]."""
        self.weight[:, self._columns(0, head, len(reads))] = reads.T

    def key(self, head: int, reads):
        self.weight[:, self._columns(1, head, len(reads))] = reads.T

    def value_output(self, head: int, reads, writes):
        """Value column j reads along reads[j]; the head writes it along writes[j]."""
        self.weight[:, self._columns(2, head, len(reads))] = reads.T
        self.output[head * D_HEAD:head * D_HEAD + len(writes)] = writes

    def random_dead(self, head: int, generator):
        """Random query, key and value weights; the output matrix stays zero."""
        import torch

        for part in range(3):
            columns = self._columns(part, head, D_HEAD)
            self.weight[:, columns] = torch.randn(D_MODEL, D_HEAD, generator=generator)


def marker_records(n: int, *, seed: int = 0, words: int = 9) -> list[dict]:
    """JSONL records of the task: `words` distinct words with the marker before one of
    them, then "=". The answer is the word after the marker; the corrupted prompt moves
    the marker (it swaps places with another word, at least two positions away), and
    the wrong answer is the word after the marker in the corrupted prompt. Marks
    (character offsets into the prompt): "marker", "after_marker", and "last_word",
    the word before "=" that the previous-token head attends to from the end."""
    if words + 3 > N_CTX:
        raise ValueError(f"{words} words, the marker, <bos> and = do not fit in {N_CTX} positions")
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        tokens = rng.sample(WORDS, words)
        at = rng.randrange(words - 1)  # the marker goes before tokens[at]; the last word is never the answer
        tokens.insert(at, MARKER)
        moved = rng.choice([i for i in range(len(tokens) - 2) if abs(i - at) >= 2])
        corrupt = list(tokens)
        corrupt[at], corrupt[moved] = corrupt[moved], corrupt[at]
        prompt = " ".join(tokens + [QUERY])
        offsets = [sum(len(t) + 1 for t in tokens[:i]) for i in range(len(tokens))]
        records.append({
            "prompt": prompt, "answer": f" {tokens[at + 1]}", "wrong": [f" {tokens[moved + 1]}"],
            "corrupt": " ".join(corrupt + [QUERY]),
            "marks": {"marker": [offsets[at]], "after_marker": [offsets[at + 1]], "last_word": [offsets[-1]]},
        })
    return records


def run_planted_spec(folder, spec: str) -> tuple[int, dict]:
    """Build the planted model in `folder`/model with 16 marker prompts in data.jsonl,
    run `spec` (which reads `hf("model")` and `jsonl("data.jsonl")`) into `folder`/out:
    (exit code, results)."""
    import json

    from circ.cli.run import run_spec

    build_planted_model_dir(folder / "model")
    with open(folder / "data.jsonl", "w") as handle:
        for record in marker_records(16, seed=1):
            handle.write(json.dumps(record) + "\n")
    (folder / "spec.circ").write_text(spec)
    code = run_spec(str(folder / "spec.circ"), str(folder / "out"), model=None, device=None,
                    batch_size=16, seed=0, trust_remote_code=False, progress=False)
    return code, json.loads((folder / "out" / "results.json").read_text())


def expected_logit_diff() -> float:
    """The planted model's logit difference: the copied identity (COPY_GAIN) after the
    final LayerNorm; the residual's squared norm is 7 + COPY_GAIN^2 + 2 (the layer-1
    BOS and marker heads' constants)."""
    return COPY_GAIN * layernorm_gain(9.0 + COPY_GAIN ** 2)


SPEC_TEMPLATE = '''# The planted copying circuit: which heads move the word after the marker to the output?
spec "planted-copy"
model hf("model", compat={compat})
data clean = jsonl("data.jsonl")
metric ld = logit_diff(answer, wrong) at last
analysis dla     = attribute(EMBED + heads + mlps, on=clean, metric=ld)
analysis patched = patch(heads + mlps, source=corrupt, target=clean, metric=ld)
analysis direct  = patch(heads + mlps, source=corrupt, target=clean, metric=ld, effect=direct)
analysis paths   = path_patch(L0.*, to=[L1.H1.q, L1.H1.k, L1.H1.v], source=corrupt, target=clean, metric=ld)
circuit found = top(patched, 5) where abs(effect) > 0.2
categories found {
  copier         = attends(after_marker) > 0.9
  previous_token = attends(last_word) > 0.9
}
expect patched[L1.H1] > 1
expect dla[L1.H1] > 1
render found to "found.dot"
'''


def spec_text(*, compat: bool = False) -> str:
    """A spec that runs every analysis on the planted model (folder `model`, prompts in
    `data.jsonl`, both beside the spec)."""
    return SPEC_TEMPLATE.replace("{compat}", "true" if compat else "false")

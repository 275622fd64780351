"""Induction prompts of random tokens: a sequence of the model's own tokens whose
first part repeats, given as token ids.

With `length` tokens in all (after BOS, when the model reads one), the first
h = length // 2 + 1 are distinct tokens drawn from those that survive a decode/encode
round trip for the model's tokenizer (`TokenVocabulary.round_trip_tokens`) and the
remaining length - h repeat them from the start. The answer is the token that
followed the final token's earlier occurrence; the wrong answers are other tokens of
the sequence. The corrupted prompt replaces that earlier occurrence by a token absent
from the prompt: the same number of tokens by construction. A draw is kept only when
the prompt and the corrupted prompt, decoded to text, re-tokenize to exactly their
ids. Marks are token indices: previous, induction_target, final (as induction()).
"""
from __future__ import annotations

import random

from circ.runtime.data.examples import Example
from circ.runtime.data.token_vocabulary import TokenVocabulary

WRONG_COUNT = 3
MIN_LENGTH = 4
DRAWS = 100  # draws per prompt before giving up on a tokenizer whose tokens merge


def repeated_token_examples(n: int, length: int, seed: int, vocabulary: TokenVocabulary) -> list[Example]:
    pool = vocabulary.round_trip_tokens()
    half = length // 2 + 1
    if len(pool) < half + 1:
        raise ValueError(f"repeated_tokens: the tokenizer has {len(pool)} round-trip tokens, "
                         f"fewer than the {half + 1} a sequence of length {length} needs")
    rng = random.Random(f"repeated_tokens:{seed}")
    return [_example(rng, length, pool, vocabulary) for _ in range(n)]


def _example(rng: random.Random, length: int, pool: tuple[int, ...], vocabulary: TokenVocabulary) -> Example:
    half = length // 2 + 1
    repeat = length - half
    previous, target = repeat - 1, repeat
    for _ in range(DRAWS):
        chosen = rng.sample(pool, half + 1)
        first, spare = chosen[:half], chosen[half]
        sequence = first + first[:repeat]
        corrupted = list(sequence)
        corrupted[previous] = spare
        if _round_trips(vocabulary, sequence) and _round_trips(vocabulary, corrupted):
            break
    else:
        raise ValueError(f"repeated_tokens: no sequence of {length} tokens in {DRAWS} draws re-tokenizes "
                         "to its own ids with this tokenizer")
    others = [t for t in first if t not in (first[target], sequence[-1])]
    wrong = tuple(rng.sample(others, min(WRONG_COUNT, len(others))))
    bos = [] if vocabulary.bos is None else [vocabulary.bos]
    offset = len(bos)
    marks = (
        ("previous", (offset + previous,)),
        ("induction_target", (offset + target,)),
        ("final", (offset + len(sequence) - 1,)),
    )
    return Example(vocabulary.decode(sequence), first[target], wrong, tuple(bos + corrupted), marks,
                   tokens=tuple(bos + sequence))


def _round_trips(vocabulary: TokenVocabulary, ids: list[int]) -> bool:
    return vocabulary.encode(vocabulary.decode(ids)) == ids

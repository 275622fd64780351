"""Induction prompts: a random word sequence whose first part repeats.

With `length` words in all, the first h = length // 2 + 1 words are distinct words
of the demo vocabulary and the remaining length - h words repeat them from the
start. The final word occurred once before; the answer is the word that followed
that earlier occurrence. The corrupted prompt replaces the earlier occurrence by a
word absent from the prompt, so the final word has no earlier occurrence to copy
from; it has the same number of words.
"""
from __future__ import annotations

import random

from circ.runtime.data.examples import Example
from circ.runtime.data.mcq import join_with_offsets
from circ.runtime.data.vocab import content_words

WRONG_COUNT = 3
MIN_LENGTH = 4  # the shortest sequence with at least one wrong answer


def max_length() -> int:
    """The longest sequence the vocabulary allows: h distinct words plus a spare."""
    return 2 * (len(content_words()) - 2) + 1


def induction_example(rng: random.Random, length: int, words: tuple[str, ...]) -> Example:
    half = length // 2 + 1
    chosen = rng.sample(words, half + 1)
    first, spare = chosen[:half], chosen[half]
    repeat = length - half
    sequence = first + first[:repeat]
    previous, target = repeat - 1, repeat
    prompt, offsets = join_with_offsets([(w, "") for w in sequence])
    others = [w for w in first if w not in (first[target], sequence[-1])]
    wrong = tuple(rng.sample(others, min(WRONG_COUNT, len(others))))
    corrupted = list(sequence)
    corrupted[previous] = spare
    corrupt, _ = join_with_offsets([(w, "") for w in corrupted])
    marks = (  # the checker declares these names (signatures.INDUCTION_POSITIONS)
        ("previous", (offsets[previous],)),
        ("induction_target", (offsets[target],)),
        ("final", (offsets[-1],)),
    )
    return Example(prompt, first[target], wrong, corrupt, marks)


def induction_examples(n: int, length: int, seed: int) -> list[Example]:
    rng = random.Random(f"induction:{seed}")
    words = content_words()
    return [induction_example(rng, length, words) for _ in range(n)]

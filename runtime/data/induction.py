"""Induction prompts: a random word sequence whose first part repeats.

With `length` words in all, the first h = length // 2 + 1 words are distinct words
of the demo vocabulary and the remaining length - h words repeat them from the
start. The final word occurred once before; the answer is the word that followed
that earlier occurrence. The corrupted prompt replaces the earlier occurrence by a
word absent from the prompt, so the final word has no earlier occurrence to copy
from.

Given the model's tokenizer (a `TokenVocabulary`), the words are those that are one
token after a space, answers are read in place after the prompt (" paper" for a
byte-level BPE tokenizer), and the replacement word has as many tokens as the word
it replaces, so the corrupted prompt has the clean prompt's token length by
construction. Without one, every word counts as one token (the demo model's
word-level tokenizer).
"""
from __future__ import annotations

import random

from circ.runtime.data.examples import Example
from circ.runtime.data.mcq import join_with_offsets
from circ.runtime.data.token_vocabulary import TokenVocabulary
from circ.runtime.data.vocab import content_words

WRONG_COUNT = 3
MIN_LENGTH = 4  # the shortest sequence with at least one wrong answer


def max_length(words: tuple[str, ...] | None = None) -> int:
    """The longest sequence the words allow: h distinct words plus a spare."""
    return 2 * (len(content_words() if words is None else words) - 2) + 1


def induction_words(vocabulary: TokenVocabulary | None) -> tuple[str, ...]:
    """The words prompts are made of: those that are one token after a space."""
    words = content_words()
    if vocabulary is None:
        return words
    single = vocabulary.spaced_word_tokens(words)
    return tuple(word for word in words if word in single)


def induction_example(rng: random.Random, length: int, words: tuple[str, ...],
                      vocabulary: TokenVocabulary | None = None) -> Example:
    half = length // 2 + 1
    chosen = rng.sample(words, half + 1)
    first, spare = chosen[:half], chosen[half]
    repeat = length - half
    sequence = first + first[:repeat]
    previous, target = repeat - 1, repeat
    prompt, offsets = join_with_offsets([(w, "") for w in sequence])
    others = [w for w in first if w not in (first[target], sequence[-1])]
    wrong = tuple(rng.sample(others, min(WRONG_COUNT, len(others))))
    if previous == 0 and vocabulary is not None:
        spare = _same_length_start(vocabulary, first[0], [w for w in words if w not in first], spare)
    corrupted = list(sequence)
    corrupted[previous] = spare
    corrupt, _ = join_with_offsets([(w, "") for w in corrupted])
    marks = (  # the checker declares these names (signatures.INDUCTION_POSITIONS)
        ("previous", (offsets[previous],)),
        ("induction_target", (offsets[target],)),
        ("final", (offsets[-1],)),
    )
    return Example(prompt, first[target], wrong, corrupt, marks, answer_separator=" ")


def _same_length_start(vocabulary: TokenVocabulary, word: str, unused: list[str], spare: str) -> str:
    """A replacement for the prompt's first word (read without a leading space) of as
    many tokens: `spare` when it fits, else the first unused word that does."""
    length = len(vocabulary.encode(word))
    fitting = [w for w in [spare, *unused] if len(vocabulary.encode(w)) == length]
    if not fitting:
        raise ValueError(f"induction: no word replaces {word!r} ({length} tokens) with as many tokens")
    return fitting[0]


def induction_examples(n: int, length: int, seed: int, vocabulary: TokenVocabulary | None = None) -> list[Example]:
    rng = random.Random(f"induction:{seed}")
    words = induction_words(vocabulary)
    return [induction_example(rng, length, words, vocabulary) for _ in range(n)]

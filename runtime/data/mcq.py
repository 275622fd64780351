"""Multiple-choice prompts in the format of Lieberum et al. (2023), word by word.

    question : which animal says moo ? A : cow B : dog C : owl D : fish answer : cow label :

The model must continue with the label of the correct option ("A"). A prompt is
first drawn as an `McqItem` (question, option texts, labels, which option is
correct) so that derivations can move answers or change labels on the same items;
`render` turns an item into an `Example` with its corrupted prompt and named
positions.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from circ.runtime.data.examples import Example
from circ.runtime.data.generator_params import option_value
from circ.runtime.data.vocab import (
    LETTERS,
    MAX_OPTIONS,
    QUESTION_BANK,
    category_answers,
)

LABEL_MODES = ("random_letters", "numbers")

QUESTIONS: tuple[tuple[str, str, str], ...] = tuple(
    (category, question, answer)
    for category, items in QUESTION_BANK.items()
    for question, answer in items
)


@dataclass(frozen=True)
class McqItem:
    """One multiple-choice question before rendering.

    correct: index of the correct option; corrupt_swap: index of the option whose
    text trades places with the correct text in the corrupted prompt.
    """

    question: str
    options: tuple[str, ...]
    labels: tuple[str, ...]
    correct: int
    corrupt_swap: int

    @property
    def answer_text(self) -> str:
        return self.options[self.correct]

    def swapped(self, i: int, j: int) -> tuple[str, ...]:
        """The option texts with those at i and j exchanged."""
        texts = list(self.options)
        texts[i], texts[j] = texts[j], texts[i]
        return tuple(texts)


def label_spec(kind: str, value):
    """Normalise a `labels` argument: a mode name, or a tuple of fixed labels."""
    value = option_value(value)
    if isinstance(value, str) and value in LABEL_MODES:
        return value
    if isinstance(value, str):
        fixed = tuple(value)
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        fixed = tuple(value)
    else:
        raise ValueError(
            f"{kind}: labels must be a string such as \"ABCD\", a list of strings, "
            f"random_letters or numbers; got {value!r}"
        )
    if len(fixed) < 2:
        raise ValueError(f"{kind}: labels must name at least 2 options, got {value!r}")
    if any(not label or label.split() != [label] for label in fixed):
        raise ValueError(f"{kind}: every label must be one word without spaces, got {value!r}")
    if len(set(fixed)) != len(fixed):
        raise ValueError(f"{kind}: labels must be distinct, got {value!r}")
    return fixed


def draw_labels(spec, options: int, rng: random.Random) -> tuple[str, ...]:
    """The labels of one prompt. Random letters are distinct capitals in an order
    that is never alphabetical; numbers run from 1."""
    if spec == "numbers":
        return tuple(str(i) for i in range(1, options + 1))
    if spec == "random_letters":
        while True:
            letters = tuple(rng.sample(LETTERS, options))
            if list(letters) != sorted(letters):
                return letters
    return spec


def sample_item(rng: random.Random, options: int, labels: tuple[str, ...]) -> McqItem:
    """A question drawn uniformly from the bank with options from its category."""
    if not 2 <= options <= MAX_OPTIONS:
        raise ValueError(f"options must be between 2 and {MAX_OPTIONS}, got {options}")
    category, question, answer = rng.choice(QUESTIONS)
    distractors = rng.sample([w for w in category_answers(category) if w != answer], options - 1)
    correct = rng.randrange(options)
    texts = distractors[:correct] + [answer] + distractors[correct:]
    corrupt_swap = rng.choice([i for i in range(options) if i != correct])
    return McqItem(question, tuple(texts), tuple(labels), correct, corrupt_swap)


def sample_items(n: int, labels, options: int, seed: int) -> list[McqItem]:
    """n items; `labels` is a label_spec value."""
    rng = random.Random(f"mcq:{seed}")
    return [sample_item(rng, options, draw_labels(labels, options, rng)) for _ in range(n)]


def prompt_words(item: McqItem, texts: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """(word, role) pairs of the prompt; roles name the marks."""
    texts = item.options if texts is None else texts
    words = [("question", ""), (":", "")] + [(w, "") for w in item.question.split()]
    for i, (label, text) in enumerate(zip(item.labels, texts)):
        role = "correct" if i == item.correct else "other"
        words.append((label, f"label_{role}"))
        words.append((":", ""))
        words.extend((w, f"text_{role}") for w in text.split())
    words += [("answer", ""), (":", "")]
    words += [(w, "answer") for w in item.answer_text.split()]
    words += [("label", ""), (":", "final")]
    return words


def join_with_offsets(words: list[tuple[str, str]]) -> tuple[str, list[int]]:
    """The space-separated prompt and the character offset of every word."""
    offsets, position = [], 0
    for word, _ in words:
        offsets.append(position)
        position += len(word) + 1
    return " ".join(word for word, _ in words), offsets


def render(item: McqItem) -> Example:
    """The item as an Example: answer label, wrong labels, corrupted prompt, marks."""
    words = prompt_words(item)
    prompt, offsets = join_with_offsets(words)

    def at(*roles: str) -> tuple[int, ...]:
        return tuple(off for off, (_, role) in zip(offsets, words) if role in roles)

    marks = (  # the checker declares these names (signatures.MCQ_POSITIONS); tests hold both equal
        ("answer_label", at("label_correct")),
        ("labels", at("label_correct", "label_other")),
        ("answer_text", at("text_correct")),
        ("options", at("text_correct", "text_other")),
        ("answer", at("answer")),
        ("final", at("final")),
    )
    corrupt_texts = item.swapped(item.correct, item.corrupt_swap)
    corrupt, _ = join_with_offsets(prompt_words(item, corrupt_texts))
    wrong = tuple(label for i, label in enumerate(item.labels) if i != item.correct)
    return Example(prompt, item.labels[item.correct], wrong, corrupt, marks)


def move_answer(item: McqItem, rng: random.Random) -> McqItem:
    """The correct text moved under another label; the original becomes the corrupt."""
    target = rng.choice([i for i in range(len(item.options)) if i != item.correct])
    return McqItem(item.question, item.swapped(item.correct, target), item.labels,
                   target, item.correct)


def shuffle_answers(item: McqItem, rng: random.Random) -> McqItem:
    """The options in a new order (never the same order); labels stay in place."""
    order = list(range(len(item.options)))
    while order == sorted(order):
        rng.shuffle(order)
    return replace(
        item,
        options=tuple(item.options[i] for i in order),
        correct=order.index(item.correct),
        corrupt_swap=order.index(item.corrupt_swap),
    )

"""Training sequences for the demo model: one multiple-choice prompt in the paper's
format followed by extra queries about the same options, each label supervised.

    <bos> question : which animal says moo ? A : cow B : dog C : owl D : fish
          answer : cow label : A   answer : owl label : C   answer : cow label : A ...

The first query is exactly an evaluation prompt. The extra queries
(`answer : TEXT label : LABEL`) pick their option uniformly *with replacement*, so
earlier queries never rule an option out: every supervised label is a real lookup
and elimination gives nothing away. The length of the prompt and the number of options follow a
curriculum (`CURRICULUM`) and the labels are drawn from a mix of label kinds
(`LABEL_MIX`). Prompts held out for evaluation (split.py) are never used.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass

from circ.runtime import gen_mcq
from circ.runtime.demo_model.split import is_held_out

# Share of training prompts per label kind: letters in alphabetical order from A
# ("AB", "ABC", "ABCD", ...), distinct random capitals in non-alphabetical order,
# and numbers from 1.
LABEL_MIX = (("alphabetical", 0.6), ("random_letters", 0.2), ("numbers", 0.2))

# Share of sequences whose position ids start at a random offset instead of 0, so
# that the model cannot tie options to absolute positions.
SHIFTED_SHARE = 0.75


@dataclass(frozen=True)
class Sequence:
    """Words of one training sequence (starting with <bos>), the indices of the
    words the loss supervises (each predicted from the words before it), among
    them the labels answered after `label :`, and for each of those answers the
    index of the option text it refers to."""

    words: tuple[str, ...]
    targets: tuple[int, ...]
    answers: tuple[int, ...]
    option_texts: tuple[int, ...]
    start: int = 0  # position id of the first word


@dataclass(frozen=True)
class Stage:
    """One step of the curriculum: the option counts drawn, whether the prompt
    keeps its question, at most how many extra queries follow (None: as many as
    fit), and whether queries are direct: `answer : TEXT LABEL`, the label right
    after the answer text instead of after `label :`."""

    options: tuple[int, ...]
    question: bool
    extra_queries: int | None
    direct: bool = False


# Training moves to the next stage once the labels of the current one are answered
# well (see train.py). Short prompts come first: at initialisation attention is
# spread evenly over the context, so the fewer the positions, the stronger the
# signal that the right option carries.
CURRICULUM = (
    Stage((2,), question=False, extra_queries=1),
    Stage((2, 3), question=False, extra_queries=2),
    Stage((2, 3, 4), question=False, extra_queries=4),
    Stage((2, 3, 4), question=True, extra_queries=None),
    Stage((2, 3, 4, 4, 4, 5), question=True, extra_queries=None),
)


def draw_label_kind(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for kind, share in LABEL_MIX:
        total += share
        if roll < total:
            return kind
    return LABEL_MIX[-1][0]


def draw_item(rng: random.Random, options: int) -> gen_mcq.McqItem:
    """A training item that is not held out."""
    kind = draw_label_kind(rng)
    spec = tuple(string.ascii_uppercase[:options]) if kind == "alphabetical" else kind
    while True:
        item = gen_mcq.sample_item(rng, options, gen_mcq.draw_labels(spec, options, rng))
        if not is_held_out(item):
            return item


def training_sequence(rng: random.Random, stage: Stage, n_ctx: int,
                      supervise: frozenset[str] = frozenset({"label"})) -> Sequence:
    """One prompt and its extra queries, at most n_ctx words.

    supervise: "label" (every label after `label :`), "answer_text" (the prompt's
    answer text after `answer :`, which the question determines) and "list_labels"
    (option labels in the list that follow from the one before: A then B, 1 then 2).
    """
    options = rng.choice(stage.options)
    item = draw_item(rng, options)
    prompt = gen_mcq.prompt_words(item)
    if not stage.question:
        prompt = prompt[[w for w, _ in prompt].index("?") + 1:]
    if stage.direct:
        prompt = prompt[:-2]
    words = ["<bos>"] + [w for w, _ in prompt] + [item.labels[item.correct]]
    answers = [len(words) - 1]
    texts = [index for index, (_, role) in enumerate(prompt, start=1) if role.startswith("text_")]
    option_texts = [texts[item.correct]]
    extra = []
    ordered = item.labels[0] in ("A", "1") and all(
        ord(b) == ord(a) + 1 for a, b in zip(item.labels, item.labels[1:]))
    for index, (_, role) in enumerate(prompt, start=1):
        if role == "answer" and stage.question and "answer_text" in supervise:
            extra.append(index)
        if (role.startswith("label_") and ordered and "list_labels" in supervise
                and words[index] != item.labels[0]):
            extra.append(index)
    frame = ("label", ":") if not stage.direct else ()
    room = (n_ctx - len(words)) // (4 + len(frame))
    queries = room if stage.extra_queries is None else min(room, rng.randint(0, stage.extra_queries))
    for _ in range(queries):
        asked = rng.randrange(options)
        words += ["answer", ":", item.options[asked], *frame, item.labels[asked]]
        answers.append(len(words) - 1)
        option_texts.append(texts[asked])
    start = rng.randint(0, n_ctx - len(words)) if rng.random() < SHIFTED_SHARE else 0
    return Sequence(tuple(words), tuple(sorted(answers + extra)), tuple(answers),
                    tuple(option_texts), start)

"""Training sequences for the demo model: one multiple-choice prompt in the paper's
format followed by extra queries about the same options, each label supervised.

    <bos> question : which animal says moo ? A : cow B : dog C : owl D : fish
          answer : cow label : A   answer : owl label : C   answer : cow label : A ...

The first query is exactly an evaluation prompt. The extra queries
(`answer : TEXT label : LABEL`) pick their option uniformly *with replacement*, so
earlier queries never rule an option out: every supervised label is a real lookup
and elimination gives nothing away. The answer text of the first query, which the
question determines, is supervised too. Option counts and label kinds are drawn
from `OPTION_COUNTS` and `LABEL_MIX`; prompts held out for evaluation (split.py)
are never used.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass

from circ.runtime.data import mcq as gen_mcq
from circ.runtime.models.demo_model.split import is_held_out

# Share of training prompts per label kind: letters in alphabetical order from A
# ("AB", "ABC", "ABCD", ...), distinct random capitals in non-alphabetical order,
# and numbers from 1.
LABEL_MIX = (("alphabetical", 0.6), ("random_letters", 0.2), ("numbers", 0.2))

# Option counts, drawn uniformly from this tuple: four options half of the time.
OPTION_COUNTS = (2, 3, 4, 4, 4, 5)

# Share of sequences whose position ids start at a random offset instead of 0, so
# that the model cannot tie options to absolute positions.
SHIFTED_SHARE = 0.75

QUERY_WORDS = 6  # answer : TEXT label : LABEL


@dataclass(frozen=True)
class Sequence:
    """One training sequence.

    words: starting with <bos>; targets: indices of the words the loss supervises
    (each predicted from the words before it); answers: among them, the labels
    after `label :`; option_texts: for each answer, the index of the option text
    it refers to; start: the position id of the first word.
    """

    words: tuple[str, ...]
    targets: tuple[int, ...]
    answers: tuple[int, ...]
    option_texts: tuple[int, ...]
    start: int = 0


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


def training_sequence(rng: random.Random, n_ctx: int) -> Sequence:
    """One prompt and as many extra queries as fit in n_ctx words."""
    options = rng.choice(OPTION_COUNTS)
    item = draw_item(rng, options)
    prompt = gen_mcq.prompt_words(item)
    words = ["<bos>"] + [w for w, _ in prompt] + [item.labels[item.correct]]
    answers = [len(words) - 1]
    texts = [index for index, (_, role) in enumerate(prompt, start=1) if role.startswith("text_")]
    option_texts = [texts[item.correct]]
    answer_text = [index for index, (_, role) in enumerate(prompt, start=1) if role == "answer"]
    while len(words) + QUERY_WORDS <= n_ctx:
        asked = rng.randrange(options)
        words += ["answer", ":", item.options[asked], "label", ":", item.labels[asked]]
        answers.append(len(words) - 1)
        option_texts.append(texts[asked])
    start = rng.randint(0, n_ctx - len(words)) if rng.random() < SHIFTED_SHARE else 0
    return Sequence(tuple(words), tuple(sorted(answers + answer_text)), tuple(answers),
                    tuple(option_texts), start)

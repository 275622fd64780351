"""Which multiple-choice prompts the demo model never sees in training.

A prompt is held out when a hash of its question and its option texts, in order,
falls in one tenth of the hash range; labels do not enter the hash, so a held-out
prompt stays held out under any labels. Training skips these prompts, and
evaluation uses only them.
"""
from __future__ import annotations

import random
import zlib

from circ.runtime.data import mcq as gen_mcq
from circ.runtime.data.examples import Example

HELD_OUT_BUCKETS = 10


def is_held_out(item: gen_mcq.McqItem) -> bool:
    key = item.question + " |" + " ".join(item.options)
    return zlib.crc32(key.encode()) % HELD_OUT_BUCKETS == 0


def held_out_examples(n: int, labels="ABCD", seed: int = 0, options: int = 4) -> list[Example]:
    """n held-out prompts; labels as for the mcq generator (a string, random_letters, numbers)."""
    spec = gen_mcq.label_spec("held-out prompts", labels)
    rng = random.Random(f"held-out:{seed}")
    examples = []
    while len(examples) < n:
        item = gen_mcq.sample_item(rng, options, gen_mcq.draw_labels(spec, options, rng))
        if is_held_out(item):
            examples.append(gen_mcq.render(item))
    return examples

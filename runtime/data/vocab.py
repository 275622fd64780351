"""The demo vocabulary: the question bank of the multiple-choice generator and every
word the demo model's tokenizer knows.

Each category holds questions whose answers are single lowercase words; the wrong
options of a question are drawn from the answers of its own category, so that every
option is a plausible answer. Labels are capital letters or digits; they never
collide with the lowercase content words.
"""
from __future__ import annotations

import string

QUESTION_BANK: dict[str, tuple[tuple[str, str], ...]] = {
    "animal": (
        ("which animal says moo ?", "cow"),
        ("which animal says woof ?", "dog"),
        ("which animal says meow ?", "cat"),
        ("which animal says hoot ?", "owl"),
        ("which animal says oink ?", "pig"),
        ("which animal says baa ?", "sheep"),
        ("which animal says neigh ?", "horse"),
        ("which animal says quack ?", "duck"),
        ("which animal says roar ?", "lion"),
        ("which animal says buzz ?", "bee"),
        ("which animal says croak ?", "frog"),
        ("which animal says hiss ?", "snake"),
        ("which animal has fins ?", "fish"),
    ),
    "color": (
        ("what color is the sky ?", "blue"),
        ("what color is grass ?", "green"),
        ("what color is snow ?", "white"),
        ("what color is coal ?", "black"),
        ("what color is blood ?", "red"),
        ("what color is a lemon ?", "yellow"),
        ("what color is a plum ?", "purple"),
        ("what color is chocolate ?", "brown"),
        ("what color is a flamingo ?", "pink"),
        ("what color is an elephant ?", "grey"),
        ("what color is a pumpkin ?", "orange"),
    ),
    "capital": (
        ("what is the capital of france ?", "paris"),
        ("what is the capital of spain ?", "madrid"),
        ("what is the capital of italy ?", "rome"),
        ("what is the capital of japan ?", "tokyo"),
        ("what is the capital of egypt ?", "cairo"),
        ("what is the capital of russia ?", "moscow"),
        ("what is the capital of germany ?", "berlin"),
        ("what is the capital of china ?", "beijing"),
        ("what is the capital of kenya ?", "nairobi"),
        ("what is the capital of peru ?", "lima"),
        ("what is the capital of greece ?", "athens"),
        ("what is the capital of cuba ?", "havana"),
    ),
    "opposite": (
        ("what is the opposite of hot ?", "cold"),
        ("what is the opposite of big ?", "small"),
        ("what is the opposite of fast ?", "slow"),
        ("what is the opposite of day ?", "night"),
        ("what is the opposite of happy ?", "sad"),
        ("what is the opposite of wet ?", "dry"),
        ("what is the opposite of up ?", "down"),
        ("what is the opposite of light ?", "dark"),
        ("what is the opposite of early ?", "late"),
        ("what is the opposite of full ?", "empty"),
        ("what is the opposite of loud ?", "quiet"),
        ("what is the opposite of hard ?", "soft"),
    ),
    "number": (
        ("how many legs does a spider have ?", "eight"),
        ("how many legs does a dog have ?", "four"),
        ("how many legs does a bird have ?", "two"),
        ("how many legs does an insect have ?", "six"),
        ("how many days are in a week ?", "seven"),
        ("how many fingers are on a hand ?", "five"),
        ("how many wheels does a tricycle have ?", "three"),
        ("how many eyes does a cyclops have ?", "one"),
        ("how many toes are on two feet ?", "ten"),
        ("how many lives does a cat have ?", "nine"),
    ),
    "tool": (
        ("what do you use to cut paper ?", "scissors"),
        ("what do you use to write a letter ?", "pen"),
        ("what do you use to dig a hole ?", "shovel"),
        ("what do you use to hit a nail ?", "hammer"),
        ("what do you use to sweep the floor ?", "broom"),
        ("what do you use to open a lock ?", "key"),
        ("what do you use to eat soup ?", "spoon"),
        ("what do you use to paint a wall ?", "brush"),
        ("what do you use to reach a roof ?", "ladder"),
        ("what do you use to sew a button ?", "needle"),
    ),
    "home": (
        ("where does a bee live ?", "hive"),
        ("where does a bird live ?", "nest"),
        ("where does a fox live ?", "den"),
        ("where does a rabbit live ?", "burrow"),
        ("where does a spider live ?", "web"),
        ("where does a whale live ?", "sea"),
        ("where does a cow live ?", "barn"),
        ("where does a dog live ?", "kennel"),
        ("where does a frog live ?", "pond"),
        ("where does a bear live ?", "forest"),
    ),
    "food": (
        ("what do bees make ?", "honey"),
        ("what do cows give ?", "milk"),
        ("what do hens lay ?", "eggs"),
        ("what is bread made from ?", "flour"),
        ("what do monkeys eat ?", "bananas"),
        ("what do rabbits eat ?", "carrots"),
        ("what is made from grapes ?", "wine"),
        ("what is made from milk ?", "cheese"),
        ("what do pandas eat ?", "bamboo"),
        ("what is toast made from ?", "bread"),
    ),
}

# Words that frame every multiple-choice prompt.
FRAME_WORDS = ("question", ":", "answer", "label")

LETTERS = tuple(string.ascii_uppercase)
DIGITS = tuple(str(d) for d in range(10))

# The largest number of options a multiple-choice prompt may have: every category
# must supply that many distinct answers, and numbered labels run from 1 to it.
MAX_OPTIONS = 9

SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>", "<unk>")


def category_answers(category: str) -> tuple[str, ...]:
    """The distinct answers of one category, in bank order."""
    return tuple(dict.fromkeys(answer for _, answer in QUESTION_BANK[category]))


def content_words() -> tuple[str, ...]:
    """Every lowercase word of the bank (questions and answers), sorted."""
    words = set()
    for items in QUESTION_BANK.values():
        for question, answer in items:
            words.update(w for w in question.split() if w.isalpha())
            words.add(answer)
    return tuple(sorted(words))


def demo_vocabulary() -> tuple[str, ...]:
    """The demo tokenizer's vocabulary: special tokens first, then every word, sorted."""
    words = set(content_words()) | set(FRAME_WORDS) | {"?"} | set(LETTERS) | set(DIGITS)
    return SPECIAL_TOKENS + tuple(sorted(words))

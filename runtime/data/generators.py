"""Synthetic datasets by name: `build(kind, params, base)` returns a list of Examples.

Generators:
  mcq(n, labels="ABCD", seed=0, options=len(labels) or 4)
      multiple-choice prompts (see mcq.py); labels is a string of labels in order
      ("ABCD", "1234"), a list of labels, `random_letters` (distinct random capitals
      per prompt, never in alphabetical order) or `numbers` ("1", "2", ... per option).
  induction(n, length=12, seed=0)
      repeated random word sequences (see induction.py).
  repeated_tokens(n, length=12, seed=0)
      repeated random sequences of the model's own tokens, as token ids (see
      repeated_tokens.py); needs the model's tokenizer.
Derivations of a multiple-choice dataset, applied item by item:
  move_answer(seed=0)      the correct text moves under another label; the
                           original prompt becomes the corrupted prompt
  shuffle_answers(seed=0)  the options in another order
  relabel(labels, seed=0)  the same items under other labels
A derivation's `base` is the dataset it derives from: either one step
("mcq", params) or the whole chain of steps, root first, as a list such as
[("mcq", {...}), ("move_answer", {"seed": 3})].

Everything is pure Python and deterministic for its seeds. Generators that build
prompts for the model's tokenizer take it as a `TokenVocabulary` (`vocabulary`);
without one, induction() counts every word as one token. Bad parameters raise
ValueError with a message naming the parameter.
"""
from __future__ import annotations

import random

from circ.runtime.data import mcq as gen_mcq
from circ.runtime.data.examples import Example
from circ.runtime.data.generator_params import check_names, int_param
from circ.runtime.data.induction import MIN_LENGTH, induction_examples, induction_words, max_length
from circ.runtime.data.repeated_tokens import repeated_token_examples
from circ.runtime.data.token_vocabulary import TokenVocabulary
from circ.runtime.data.vocab import MAX_OPTIONS

GENERATORS = ("mcq", "induction", "repeated_tokens")
DERIVATIONS = ("move_answer", "shuffle_answers", "relabel")
KINDS = GENERATORS + DERIVATIONS


def build(kind: str, params: dict, base: tuple[str, dict] | list | None = None,
          vocabulary: TokenVocabulary | None = None) -> list[Example]:
    """The examples of a generator, or of a derivation applied to `base`."""
    if kind == "induction":
        _no_base(kind, base)
        return _induction(params, vocabulary)
    if kind == "repeated_tokens":
        _no_base(kind, base)
        return _repeated_tokens(params, vocabulary)
    if kind == "mcq":
        _no_base(kind, base)
        return [gen_mcq.render(item) for item in _mcq_items(params)]
    if kind in DERIVATIONS:
        items = _resolve_items(kind, base)
        return [gen_mcq.render(item) for item in _derive(kind, params, items)]
    raise ValueError(f"unknown dataset kind {kind!r} (known: {', '.join(KINDS)})")


def _no_base(kind: str, base) -> None:
    if base is not None:
        raise ValueError(f"{kind} is a generator and takes no base dataset")


def _induction(params: dict, vocabulary: TokenVocabulary | None) -> list[Example]:
    check_names("induction", params, ("n", "length", "seed"), required=("n",))
    n = int_param("induction", params, "n", minimum=1)
    words = induction_words(vocabulary)
    if len(words) < MIN_LENGTH // 2 + 2:
        raise ValueError(f"induction: only {len(words)} of the generator's words are single tokens "
                         "for this tokenizer; use repeated_tokens() or a jsonl dataset")
    length = int_param("induction", params, "length", 12, minimum=MIN_LENGTH, maximum=max_length(words))
    seed = int_param("induction", params, "seed", 0)
    return induction_examples(n, length, seed, vocabulary)


def _repeated_tokens(params: dict, vocabulary: TokenVocabulary | None) -> list[Example]:
    check_names("repeated_tokens", params, ("n", "length", "seed"), required=("n",))
    n = int_param("repeated_tokens", params, "n", minimum=1)
    length = int_param("repeated_tokens", params, "length", 12, minimum=MIN_LENGTH)
    seed = int_param("repeated_tokens", params, "seed", 0)
    if vocabulary is None:
        raise ValueError("repeated_tokens draws tokens from the model's tokenizer, and none is available here")
    return repeated_token_examples(n, length, seed, vocabulary)


def _mcq_items(params: dict) -> list[gen_mcq.McqItem]:
    check_names("mcq", params, ("n", "labels", "seed", "options"), required=("n",))
    n = int_param("mcq", params, "n", minimum=1)
    seed = int_param("mcq", params, "seed", 0)
    labels = gen_mcq.label_spec("mcq", params.get("labels", "ABCD"))
    fixed_count = None if labels in gen_mcq.LABEL_MODES else len(labels)
    options = int_param("mcq", params, "options", fixed_count or 4, minimum=2, maximum=MAX_OPTIONS)
    if fixed_count is not None and fixed_count != options:
        raise ValueError(f"mcq: {fixed_count} labels given for {options} options")
    return gen_mcq.sample_items(n, labels, options, seed)


def _resolve_items(kind: str, base) -> list[gen_mcq.McqItem]:
    """The items of a base given as one ("mcq", params) step or a chain of steps."""
    if base is None:
        raise ValueError(f"{kind} derives from another dataset; give it a base")
    steps = [base] if _is_step(base) else base
    if not isinstance(steps, (list, tuple)) or not steps or not all(_is_step(s) for s in steps):
        raise ValueError(f"{kind}: base must be (kind, params) or a list of such steps, got {base!r}")
    root_kind, root_params = steps[0]
    if root_kind != "mcq":
        raise ValueError(f"{kind} applies to multiple-choice datasets, not to {root_kind!r}")
    items = _mcq_items(root_params)
    for step_kind, step_params in steps[1:]:
        if step_kind not in DERIVATIONS:
            raise ValueError(f"{kind}: base step {step_kind!r} is not a derivation")
        items = _derive(step_kind, step_params, items)
    return items


def _is_step(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and isinstance(value[0], str) and isinstance(value[1], dict))


def _derive(kind: str, params: dict, items: list[gen_mcq.McqItem]) -> list[gen_mcq.McqItem]:
    if kind == "relabel":
        check_names(kind, params, ("labels", "seed"), required=("labels",))
    else:
        check_names(kind, params, ("seed",))
    rng = random.Random(f"{kind}:{int_param(kind, params, 'seed', 0)}")
    if kind == "move_answer":
        return [gen_mcq.move_answer(item, rng) for item in items]
    if kind == "shuffle_answers":
        return [gen_mcq.shuffle_answers(item, rng) for item in items]
    labels = gen_mcq.label_spec(kind, params["labels"])
    relabelled = []
    for item in items:
        count = len(item.options)
        if labels not in gen_mcq.LABEL_MODES and len(labels) != count:
            raise ValueError(f"relabel: {len(labels)} labels given for {count} options")
        relabelled.append(gen_mcq.McqItem(item.question, item.options,
                                          gen_mcq.draw_labels(labels, count, rng),
                                          item.correct, item.corrupt_swap))
    return relabelled

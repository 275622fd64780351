"""Build a spec's datasets as lists of `Example`: generators, derivations of
generated datasets, and the JSONL / auto-circuit file readers; and the results.json
summary of a tokenised dataset, with the token strings its answers became."""
from __future__ import annotations

from circ.compiler import ir
from circ.runtime.data import generators
from circ.runtime.data.examples import Example
from circ.runtime.data.readers import read_autocircuit, read_jsonl
from circ.runtime.data.token_vocabulary import TokenVocabulary

READERS = {"jsonl": read_jsonl, "autocircuit": read_autocircuit}


def _plain(value):
    """IR values as the generators take them (bare words become strings)."""
    if isinstance(value, ir.Word):
        return value.name
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _params(dataset: ir.Dataset) -> dict:
    return {key: _plain(value) for key, value in dataset.params}


def _steps(dataset: ir.Dataset, spec: ir.Spec) -> list[tuple[str, dict]]:
    """The chain of (kind, params) from the generated root to `dataset`."""
    chain = []
    current = dataset
    while current is not None:
        chain.append((current.kind, _params(current)))
        current = spec.dataset(current.base) if current.base else None
    return chain[::-1]


def build_examples(dataset: ir.Dataset, spec: ir.Spec, vocabulary: TokenVocabulary | None = None) -> list[Example]:
    """The examples of `dataset`; generators build them for `vocabulary`, the model's
    tokenizer, when given."""
    if dataset.kind in READERS:
        examples = READERS[dataset.kind](dataset.param("path"))
        limit = dataset.param("n")
        return examples[:limit] if limit is not None else examples
    steps = _steps(dataset, spec)
    kind, params = steps[-1]
    base = steps[:-1] or None
    return generators.build(kind, params, base, vocabulary)


def dataset_entry(dataset: ir.Dataset, examples: list[Example], prompts=None, tokenizer=None) -> dict:
    """The results.json summary of a dataset; with its tokenised `prompts` and the
    model's tokenizer, `answer_tokens`: the distinct tokens the answers and the wrong
    answers became, as {"id", "text"} (the decoded text, leading space included; an
    answer's first token), and where some answer has several tokens,
    `answer_sequences`: the distinct answers of several tokens, as {"ids", "text"}."""
    params = {key: _plain(value) for key, value in dataset.params}
    first = examples[0] if examples else None
    example = first.prompt if first else None
    if first is not None and not example and first.tokens is not None and tokenizer is not None:
        example = tokenizer.decode(list(first.tokens), clean_up_tokenization_spaces=False)
    entry = {"kind": dataset.kind, "n": len(examples), "params": params, "example": example,
             "answer": first.answer if first else None}
    if dataset.base:
        entry["base"] = dataset.base
    if prompts is not None and tokenizer is not None:
        wrong = prompts.wrong[prompts.wrong_valid]
        entry["answer_tokens"] = {"answer": _token_strings(prompts.answer, tokenizer),
                                  "wrong": _token_strings(wrong, tokenizer)}
        sequences = _split_answers(prompts)
        if sequences:
            entry["answer_sequences"] = [{"ids": list(ids), "text": tokenizer.decode(list(ids),
                                                                                     clean_up_tokenization_spaces=False)}
                                         for ids in sequences]
    return entry


def _split_answers(prompts) -> list[tuple[int, ...]]:
    """The distinct answers of several tokens, as token ids, in sorted order."""
    counts = prompts.answer_count.tolist()
    return sorted({tuple(row[:count]) for row, count in zip(prompts.answer_tokens.tolist(), counts) if count > 1})


def _token_strings(ids, tokenizer) -> list[dict]:
    distinct = sorted({int(i) for i in ids.flatten().tolist()})
    return [{"id": i, "text": tokenizer.decode([i], clean_up_tokenization_spaces=False)} for i in distinct]

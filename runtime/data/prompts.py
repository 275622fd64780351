"""Tokenise a dataset once into tensors every analysis reads (`Prompts`).

Each prompt is encoded without the tokenizer's own special tokens and, when the
model expects one (`cfg.default_prepend_bos`), the BOS token is put in front, so
token `i + 1` is the i-th token of the text. Prompts are right-padded: in a causal
model the padding after the last real token changes no earlier position.

Prompts given as token ids (`Example.tokens`) are used exactly as given. Answers are
token ids, text tokenised exactly as written (write " A" for a token with a leading
space), or, from the generators, text tokenised in place after the prompt (see
`Example`). Named positions (`Example.marks`, character offsets) become the indices
of the tokens containing those characters.

An answer the tokenizer splits into several tokens is teacher-forced: its tokens but
the last are appended to the prompt (and to its corrupted prompt), so that the model
reads token j + 1 of the answer at the position of token j; `answer_count` says how
many tokens each answer has and `answer_tokens` holds them. Such a prompt's `last` is
the position that predicts the answer's last token. Only metrics over the whole
answer (`answer_logprob`) read such prompts; `split` marks them (and prompts whose
wrong answers split) for the metrics that read one answer token.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import torch
from circ.compiler import ir
from circ.runtime.data.examples import Example
from circ.runtime.data.readers import DatasetError


@dataclass(frozen=True)
class NamedPositions:
    """Token indices of one named position: `index[i, j]` is valid where `valid[i, j]`."""

    index: torch.Tensor  # long [n, m]
    valid: torch.Tensor  # bool [n, m]

    def select(self, rows) -> "NamedPositions":
        return NamedPositions(self.index[rows], self.valid[rows])


@dataclass(frozen=True)
class Prompts:
    """A tokenised dataset (or a batch of one).

    tokens [n, seq] right-padded; lengths [n] real tokens per prompt; answer [n];
    wrong [n, k] with wrong_valid marking real entries (prompts may have different
    numbers of wrong answers); corrupt [n, seq] or None; marks by name; rows [n]
    the index of each prompt in the whole dataset; answer_tokens [n, k] (padded) and
    answer_count [n] every token of each answer (`answer` is the first); split [n]
    True where the answer or a wrong answer has several tokens.
    """

    name: str
    tokens: torch.Tensor
    lengths: torch.Tensor
    answer: torch.Tensor
    wrong: torch.Tensor
    wrong_valid: torch.Tensor
    corrupt: torch.Tensor | None
    marks: dict[str, NamedPositions]
    rows: torch.Tensor
    examples: tuple[Example, ...]
    has_bos: bool
    answer_tokens: torch.Tensor
    answer_count: torch.Tensor
    split: torch.Tensor

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def last(self) -> torch.Tensor:
        """The index of each prompt's last real token."""
        return self.lengths - 1

    @property
    def answer_start(self) -> torch.Tensor:
        """The index of the token that predicts each answer's first token (`last` for
        answers of one token)."""
        return self.lengths - self.answer_count

    def select(self, rows: Sequence[int] | slice) -> "Prompts":
        """A sub-batch, trimmed to its longest prompt."""
        lengths = self.lengths[rows]
        width = int(lengths.max())
        picked = range(len(self))[rows] if isinstance(rows, slice) else rows
        return replace(
            self,
            tokens=self.tokens[rows, :width],
            lengths=lengths,
            answer=self.answer[rows],
            wrong=self.wrong[rows],
            wrong_valid=self.wrong_valid[rows],
            corrupt=None if self.corrupt is None else self.corrupt[rows, :width],
            marks={name: marks.select(rows) for name, marks in self.marks.items()},
            rows=self.rows[rows],
            examples=tuple(self.examples[i] for i in picked),
            answer_tokens=self.answer_tokens[rows],
            answer_count=self.answer_count[rows],
            split=self.split[rows],
        )

    def batches(self, batch_size: int) -> Iterator["Prompts"]:
        """Consecutive slices of at most `batch_size` prompts."""
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield self.select(slice(start, start + batch_size))

    def real_mask(self) -> torch.Tensor:
        """bool [n, seq]: True on real (non-padding) tokens."""
        positions = torch.arange(self.tokens.shape[1], device=self.lengths.device)
        return positions[None, :] < self.lengths[:, None]

    def position_mask(self, position: ir.Position) -> torch.Tensor:
        """bool [n, seq]: the token positions that `position` picks in each prompt."""
        n, width = self.tokens.shape
        mask = torch.zeros(n, width, dtype=torch.bool)
        rows = torch.arange(n)
        if position.kind == "all":
            return self.real_mask()
        if position.kind == "last":
            mask[rows, self.last] = True
            return mask
        if position.kind == "index":
            index = position.index
            chosen = self.lengths + index if index < 0 else torch.full((n,), index)
            if bool(((chosen < 0) | (chosen >= self.lengths)).any()):
                bad = int(((chosen < 0) | (chosen >= self.lengths)).nonzero()[0])
                raise DatasetError(self.name, self.examples[bad].line,
                                   f"position {index} is outside a prompt of {int(self.lengths[bad])} tokens")
            mask[rows, chosen] = True
            return mask
        if position.kind == "named":
            named = self.marks.get(position.name)
            missing = (torch.ones(n, dtype=torch.bool) if named is None else ~named.valid.any(dim=1))
            if bool(missing.any()):
                bad = int(missing.nonzero()[0])
                raise DatasetError(self.name, self.examples[bad].line,
                                   f'the prompt has no position named "{position.name}"')
            row_index = rows[:, None].expand_as(named.index)
            mask[row_index[named.valid], named.index[named.valid]] = True
            return mask
        raise ValueError(f"unknown position kind {position.kind!r}")


def tokenize(loaded, examples: Sequence[Example], *, source_name: str) -> Prompts:
    """Tokenise `examples` for `loaded.bridge`; `source_name` names the dataset in errors."""
    tokenizer = loaded.tokenizer
    has_bos = prepends_bos(loaded)
    if not examples:
        raise DatasetError(source_name, None, "the dataset holds no examples")
    n_ctx, n_vocab = loaded.shape.n_ctx, loaded.shape.d_vocab
    rows, corrupt_rows, answers, wrongs, marks = [], [], [], [], {}
    for number, example in enumerate(examples):
        where = _Where(source_name, example.line, n_vocab)
        if example.tokens is not None:
            ids, offsets = where.ids(example.tokens, "tokens"), None
        else:
            ids, offsets = _encode(tokenizer, example.prompt, has_bos)
        text_ids = ids[1:] if has_bos and example.tokens is None else ids  # the prompt's own tokens
        answer = _answer_ids(tokenizer, example, text_ids, example.answer, "answer", where)
        wrong = [_answer_ids(tokenizer, example, text_ids, w, "wrong", where) for w in example.wrong]
        continuation = answer[:-1]  # teacher forcing: the model reads the answer's tokens but the last
        if len(ids) + len(continuation) > n_ctx:
            with_answer = f" with {len(continuation)} tokens of its answer" if continuation else ""
            raise DatasetError(source_name, example.line, f"the prompt is {len(ids) + len(continuation)} tokens"
                               f"{with_answer}, longer than the model's context of {n_ctx}")
        rows.append(ids + continuation)
        if example.corrupt is not None:
            corrupt_ids = (_encode(tokenizer, example.corrupt, has_bos)[0] if isinstance(example.corrupt, str)
                           else where.ids(example.corrupt, "corrupt"))
            if len(corrupt_ids) != len(ids):
                raise DatasetError(source_name, example.line,
                                   f"the corrupted prompt is {len(corrupt_ids)} tokens but the prompt is {len(ids)}; they must match")
            corrupt_rows.append(corrupt_ids + continuation)
        answers.append(answer)
        wrongs.append(wrong)
        for name, chars in example.marks:
            found = (_checked_indices(chars, len(ids), name, where) if example.tokens is not None
                     else _token_indices(offsets, chars, source_name, example))
            marks.setdefault(name, {})[number] = found
    lacking = [e for e in examples if e.corrupt is None]
    if 0 < len(lacking) < len(examples):
        raise DatasetError(source_name, lacking[0].line,
                           "this example has no corrupted prompt but others have; give every example one or none")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Prompts(
        name=source_name,
        tokens=_pad(rows, pad),
        lengths=torch.tensor([len(r) for r in rows]),
        answer=torch.tensor([a[0] for a in answers]),
        wrong=_pad([[w[0] for w in ws] for ws in wrongs], 0),
        wrong_valid=_pad([[True] * len(w) for w in wrongs], False, dtype=torch.bool),
        corrupt=_pad(corrupt_rows, pad) if corrupt_rows else None,
        marks={name: _named_positions(by_row, len(examples)) for name, by_row in marks.items()},
        rows=torch.arange(len(examples)),
        examples=tuple(examples),
        has_bos=has_bos,
        answer_tokens=_pad(answers, 0),
        answer_count=torch.tensor([len(a) for a in answers]),
        split=torch.tensor([len(a) > 1 or any(len(w) > 1 for w in ws) for a, ws in zip(answers, wrongs)]),
    )


def prepends_bos(loaded) -> bool:
    """Whether the runtime puts the BOS token in front of every text prompt."""
    return (bool(getattr(loaded.bridge.cfg, "default_prepend_bos", True))
            and loaded.tokenizer.bos_token_id is not None)


@dataclass(frozen=True)
class _Where:
    """The dataset and line an example came from, and the model's vocabulary size."""

    source: str
    line: int | None
    n_vocab: int

    def fail(self, message: str):
        raise DatasetError(self.source, self.line, message)

    def ids(self, values: Sequence[int], field: str) -> list[int]:
        """Token ids given as such, checked against the model's vocabulary."""
        for value in values:
            self.id(value, field)
        return list(values)

    def id(self, value: int, field: str) -> int:
        if not 0 <= value < self.n_vocab:
            self.fail(f'"{field}": token id {value} is outside the model\'s vocabulary of {self.n_vocab}')
        return value


def _answer_ids(tokenizer, example: Example, before: list[int], answer: str | int, field: str,
                where: _Where) -> list[int]:
    """The token ids of an answer given as an id, as text, or as text continuing the
    prompt (whose own tokens are `before`): one or more."""
    if isinstance(answer, int):
        return [where.id(answer, field)]
    if example.answer_separator is None or example.tokens is not None:
        return _text_tokens(tokenizer, answer, where)
    after = tokenizer(example.prompt + example.answer_separator + answer, add_special_tokens=False)["input_ids"]
    added = after[len(before):]
    if after[:len(before)] != before:
        pieces = tokenizer.convert_ids_to_tokens(after[max(0, len(before) - 1):])
        where.fail(f"answer {answer!r} merges with the end of the prompt into {pieces}; "
                   "use labels and answers that the model's tokenizer reads as tokens of their own")
    if not added:
        where.fail(f"answer {answer!r} adds no token after the prompt")
    return [_known(tokenizer, int(token), answer.strip(), where) for token in added]


def _encode(tokenizer, text: str, has_bos: bool) -> tuple[list[int], list[tuple[int, int]] | None]:
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    else:
        ids, offsets = list(tokenizer(text, add_special_tokens=False)["input_ids"]), None
    if has_bos:
        ids = [tokenizer.bos_token_id] + ids
        offsets = None if offsets is None else [(0, 0)] + offsets
    return ids, offsets


def _text_tokens(tokenizer, text: str, where: _Where) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        where.fail(f"answer {text!r} is no token at all")
    return [_known(tokenizer, int(token), text.strip(), where) for token in ids]


def _known(tokenizer, token: int, text: str, where: _Where) -> int:
    unknown = tokenizer.unk_token_id
    if unknown is not None and token == unknown and text != tokenizer.unk_token:
        where.fail(f"answer {text!r} is not in the model's vocabulary")
    return token


def _checked_indices(indices: Sequence[int], length: int, name: str, where: _Where) -> list[int]:
    """Named positions given as token indices into a prompt of `length` tokens."""
    bad = [i for i in indices if not 0 <= i < length]
    if bad:
        where.fail(f'mark "{name}": token index {bad[0]} is outside the prompt of {length} tokens')
    return list(dict.fromkeys(indices))


def _token_indices(offsets, chars: Sequence[int], source_name: str, example: Example) -> list[int]:
    if offsets is None:
        raise DatasetError(source_name, example.line, "named positions need a fast tokenizer (one with offset mappings)")
    found = []
    for char in chars:
        index = next((i for i, (start, end) in enumerate(offsets) if start <= char < end), None)
        if index is not None and index not in found:
            found.append(index)
    if not found:
        text = "".join(example.prompt[c] for c in chars)
        raise DatasetError(source_name, example.line, f"the marked characters {text!r} belong to no token")
    return found


def _named_positions(by_row: dict[int, list[int]], n: int) -> NamedPositions:
    lists = [by_row.get(i, []) for i in range(n)]
    return NamedPositions(_pad(lists, 0), _pad([[True] * len(x) for x in lists], False, dtype=torch.bool))


def _pad(rows: list[list], value, dtype=torch.long) -> torch.Tensor:
    width = max(1, max(len(r) for r in rows))
    out = torch.full((len(rows), width), value, dtype=dtype)
    for i, row in enumerate(rows):
        if row:
            out[i, : len(row)] = torch.tensor(row, dtype=dtype)
    return out

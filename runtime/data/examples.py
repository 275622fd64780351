"""One prompt of a dataset, as every generator and file reader produces it.

A prompt is text (`prompt`), or exact token ids (`tokens`, used as given: BOS
included when the model should read one; `prompt` is then their decoded text, for
display). Named positions (`marks`) are character offsets into `prompt`, one tuple
per name, and the tokenizer maps each offset to the token that contains it, so the
same marks work for any model's tokenizer; with `tokens` they are token indices.
The corrupted prompt, when present, is text or token ids like the prompt and must
have the same number of tokens, so that activations can be patched position by
position.

Answers are text or token ids. Text answers are tokenised alone, exactly as written
(" A" for a token with a leading space), unless `answer_separator` is set: then each
answer is the text that follows the prompt after that separator, tokenised in place
as the model would read prompt + separator + answer (so " A" for a byte-level BPE
tokenizer, "A" for a word-level one), and must add exactly one token.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str | int
    wrong: tuple[str | int, ...]
    corrupt: str | tuple[int, ...] | None = None
    marks: tuple[tuple[str, tuple[int, ...]], ...] = ()
    line: int | None = None  # 1-based line of the source file, for error messages
    tokens: tuple[int, ...] | None = None
    answer_separator: str | None = None

    def mark(self, name: str) -> tuple[int, ...]:
        return dict(self.marks).get(name, ())

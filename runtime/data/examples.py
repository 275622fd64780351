"""One prompt of a dataset, as every generator and file reader produces it.

Named positions (`marks`) are character offsets into `prompt`, one tuple per name;
the tokenizer maps each offset to the token that contains it, so the same marks work
for any model's tokenizer. The corrupted prompt, when present, must tokenize to the
same length as the prompt so that activations can be patched position by position.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str
    wrong: tuple[str, ...]
    corrupt: str | None = None
    marks: tuple[tuple[str, tuple[int, ...]], ...] = ()
    line: int | None = None  # 1-based line of the source file, for error messages

    def mark(self, name: str) -> tuple[int, ...]:
        return dict(self.marks).get(name, ())

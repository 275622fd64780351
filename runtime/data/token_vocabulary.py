"""The model's tokenizer as the generators see it: how a prompt continues, which
words are one token after a space, and which tokens survive a decode/encode round
trip.

Built from a Hugging Face tokenizer at run time (`from_hf`) or from a tokenizer.json
for cost estimates (`from_tokenizer_file`, no torch). Texts are encoded without the
tokenizer's special tokens; `bos` is the BOS id the runtime puts in front of every
prompt, or None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# the text that precedes a word in the generators' prompts, to tokenise it in place
_CONTEXT = ":"


@dataclass(frozen=True)
class TokenVocabulary:
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]
    size: int
    special: frozenset[int]
    bos: int | None

    @classmethod
    def from_hf(cls, tokenizer, has_bos: bool) -> "TokenVocabulary":
        return cls(
            encode=lambda text: list(tokenizer(text, add_special_tokens=False)["input_ids"]),
            decode=lambda ids: tokenizer.decode(ids, clean_up_tokenization_spaces=False),
            size=len(tokenizer),
            special=frozenset(tokenizer.all_special_ids),
            bos=tokenizer.bos_token_id if has_bos else None,
        )

    @classmethod
    def from_tokenizer_file(cls, path, bos_token: str | None) -> "TokenVocabulary":
        from tokenizers import Tokenizer

        core = Tokenizer.from_file(str(path))
        special = frozenset(t.id if hasattr(t, "id") else i for i, t in core.get_added_tokens_decoder().items())
        bos = core.token_to_id(bos_token) if bos_token else None
        return cls(
            encode=lambda text: core.encode(text, add_special_tokens=False).ids,
            decode=lambda ids: core.decode(ids, skip_special_tokens=False),
            size=core.get_vocab_size(with_added_tokens=True),
            special=special,
            bos=bos,
        )

    def continuation(self, prompt: str, text: str) -> list[int] | None:
        """The ids that `text` adds after `prompt` when the model reads prompt + text,
        or None when the prompt's own tokens change (a merge across the boundary)."""
        before = self.encode(prompt)
        after = self.encode(prompt + text)
        return after[len(before):] if after[:len(before)] == before else None

    def spaced_word_tokens(self, words) -> dict[str, int]:
        """{word: id} of the words that are exactly one token after a space."""
        found = {}
        for word in words:
            ids = self.continuation(_CONTEXT, " " + word)
            if ids is not None and len(ids) == 1:
                found[word] = ids[0]
        return found

    def round_trip_tokens(self) -> tuple[int, ...]:
        """Ids, specials excluded, whose decoded text encodes back to that one id and is
        not blank. Where some tokens carry a leading space (byte-level BPE), only those:
        a sequence of them re-tokenizes word by word."""
        safe = []
        for token in range(self.size):
            if token in self.special:
                continue
            text = self.decode([token])
            if text.strip() and self.encode(text) == [token]:
                safe.append((token, text))
        spaced = [token for token, text in safe if text[0].isspace() and not any(c.isspace() for c in text[1:])]
        return tuple(spaced) if spaced else tuple(token for token, _ in safe)

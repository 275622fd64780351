"""The demo model's word-level tokenizer: one token per space-separated word.

A `tokenizers` WordLevel model over the demo vocabulary with a whitespace-split
pre-tokenizer and a post-processor that puts `<bos>` in front of every input,
wrapped in `PreTrainedTokenizerFast` so that it saves and loads as Hugging Face
files.
"""
from __future__ import annotations

import json
from pathlib import Path

from circ.runtime.data.vocab import demo_vocabulary


def build_tokenizer(n_ctx: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(demo_vocabulary())}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=n_ctx,
        padding_side="right",
    )


def save_tokenizer(tokenizer, out: Path) -> None:
    """The tokenizer files, plus special_tokens_map.json for older readers."""
    tokenizer.save_pretrained(out)
    special = {role: getattr(tokenizer, role) for role in ("bos_token", "eos_token", "pad_token", "unk_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")

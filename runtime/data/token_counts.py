"""Token counts of a spec's prompts, for cost estimates: no weights load and torch
is never imported.

With a `tokenizer.json` (the spec's model folder, its `tokenizer=` folder, the
embedded demo model, or the local Hugging Face cache) each prompt is encoded
exactly as circ's runtime does (no special tokens, plus one BOS token when the
tokenizer has one). Without one, words and punctuation marks count as tokens, plus
one BOS token. Besides each prompt's length, the counts say where a patch source (a
dataset, or the corrupted prompts) first differs from each prompt: patched runs that
resume from the patch compute only from there on.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from circ.compiler import ir

_WORDS = re.compile(r"\w+|[^\w\s]")


def model_folder(model: ir.Model) -> Path | None:
    """The local folder holding the model's files, if there is one."""
    if model.source == "demo":
        from circ.runtime.models.demo_model import demo_model_dir

        return demo_model_dir()
    if model.source == "hf" and model.location:
        return Path(model.location)
    if model.source == "cache" and model.location:
        from circ.compiler.check.model_shape import cached_config

        config = cached_config(model.location)
        return config.parent if config else None
    return None


def prompt_lengths(spec: ir.Spec) -> dict[str, list[int]]:
    """{dataset name: token count of each prompt, BOS included}."""
    return measure_prompts(spec)[0]


def measure_prompts(spec: ir.Spec) -> tuple[dict[str, list[int]], dict[tuple[str, str], list[int]]]:
    """(token counts per dataset, and for each patch from a dataset or from corrupted
    prompts, keyed (target, source or "corrupt"), the first token where each prompt's
    source differs from it)."""
    from circ.runtime.data.datasets import build_examples

    encode = token_encoder(spec.model)
    examples = {dataset.name: build_examples(dataset, spec) for dataset in spec.datasets}
    tokens = {name: [encode(example.prompt) for example in found] for name, found in examples.items()}
    starts = {}
    for analysis in spec.analyses:
        source = analysis.source
        if analysis.kind != "patch" or source is None or source.kind not in ("corrupt", "dataset"):
            continue
        if source.kind == "corrupt":
            key = (analysis.dataset, "corrupt")
            others = [encode(example.corrupt or "") for example in examples[analysis.dataset]]
        else:
            key, others = (analysis.dataset, source.dataset), tokens[source.dataset]
        starts[key] = [_first_difference(mine, other) for mine, other in zip(tokens[analysis.dataset], others)]
    return {name: [len(ids) for ids in found] for name, found in tokens.items()}, starts


def _first_difference(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def token_encoder(model: ir.Model):
    """A function from a prompt to its tokens for `model` (BOS included, as None)."""
    folder = Path(model.tokenizer) if model.tokenizer else model_folder(model)
    if folder is not None and folder.suffix == ".json":
        folder = folder.parent
    if folder is not None and (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        bos = [None] if _has_bos(folder) else []
        return lambda text: bos + tokenizer.encode(text, add_special_tokens=False).ids
    return lambda text: [None] + _WORDS.findall(text)


def _has_bos(folder: Path) -> bool:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        try:
            config = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # ValueError: not JSON, or not UTF-8
            continue
        if isinstance(config, dict) and config.get("bos_token"):
            return True
    return False

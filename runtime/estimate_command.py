"""`circ plan FILE --estimate`: build every dataset's prompts (pure Python), count
their tokens with the model's tokenizer file when there is one, and print the
compiler's cost estimate of the plan. No weights load and torch is never imported.

Tokens: with a `tokenizer.json` (the spec's model folder, its `tokenizer=` folder,
the embedded demo model, or the local Hugging Face cache) each prompt is encoded
exactly as circ's runtime does (no special tokens, plus one BOS token when the
tokenizer has one). Without one, words and punctuation marks count as tokens, plus
one BOS token. Besides each prompt's length, the estimate reads where a patch
source (a dataset, or the corrupted prompts) first differs from each prompt:
patched runs that resume from the patch compute only from there on.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from circ.compiler import ir
from circ.compiler.diagnostics import CircError
from circ.compiler.estimate_shapes import CostShape, EstimateError, cost_shape, from_config, from_ir_shape

_WORDS = re.compile(r"\w+|[^\w\s]")


def estimate_path(path: str, model_shape: str | None, batch_size: int, fmt: str, out, err) -> int:
    """Print the estimate of the spec at `path`: 0, or 1 for a spec or dataset error,
    or 2 for an unusable `--model-shape`."""
    from circ.compiler.api import compile_file, plan
    from circ.compiler.estimate import estimate_plan
    from circ.compiler.estimate_output import estimate_json, estimate_text
    from circ.runtime.readers import DatasetError

    try:
        shape = cost_shape(model_shape) if model_shape else None
    except EstimateError as error:
        print(f"circ: {error}", file=err)
        return 2
    try:
        spec = compile_file(path, shape=shape.ir_shape() if shape else None)
    except CircError as error:
        print(error.render(), file=err)
        return 1
    try:
        shape = shape or spec_cost_shape(spec)
        lengths, starts = measure_prompts(spec)
        estimate = estimate_plan(spec, plan(spec), shape, lengths, batch_size, starts)
    except (EstimateError, DatasetError, ValueError) as error:
        print(f"circ: {error}", file=err)
        return 1
    out.write(estimate_json(estimate) if fmt == "json" else estimate_text(estimate))
    return 0


def spec_cost_shape(spec: ir.Spec) -> CostShape:
    """The cost shape of the spec's own model: its config.json when it has one."""
    folder = model_folder(spec.model)
    name = "demo" if spec.model.source == "demo" else str(spec.model.location)
    if folder is not None and (folder / "config.json").is_file():
        try:
            return from_config(json.loads((folder / "config.json").read_text(encoding="utf-8")), name)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
    if spec.shape is None:
        raise EstimateError(f"the shape of {name} is known only once it loads: pass --model-shape")
    return from_ir_shape(spec.shape, name)


def model_folder(model: ir.Model) -> Path | None:
    """The local folder holding the model's files, if there is one."""
    if model.source == "demo":
        from circ.runtime.demo_model import demo_model_dir

        return demo_model_dir()
    if model.source == "hf" and model.location:
        return Path(model.location)
    if model.source == "cache" and model.location:
        from circ.compiler.shapes import cached_config

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
    from circ.runtime.datasets import build_examples

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
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(config, dict) and config.get("bos_token"):
            return True
    return False

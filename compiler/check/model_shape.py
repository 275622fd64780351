"""The shape of a model, known before any weights load: the embedded demo model's
constant, or a Hugging Face config.json read from a local directory or from the
local Hugging Face cache. GGUF files are only measured when loaded (None here)."""
from __future__ import annotations

import os
from pathlib import Path

from circ.compiler.bounded_read import read_json
from circ.compiler.ir import Model, Shape

DEMO_SHAPE = Shape(n_layers=2, n_heads=4, d_model=128, d_head=32, d_vocab=259, n_ctx=64, d_mlp=512)

# config.json key spellings, first match wins (GPT-2, Llama/Mistral/Qwen, GPT-NeoX, ...).
_KEYS = {
    "n_layers": ("n_layer", "num_hidden_layers", "num_layers", "n_layers"),
    "n_heads": ("n_head", "num_attention_heads", "n_heads"),
    "d_model": ("n_embd", "hidden_size", "d_model"),
    "d_vocab": ("vocab_size", "d_vocab"),
    "n_ctx": ("n_positions", "max_position_embeddings", "n_ctx", "max_sequence_length"),
    "d_mlp": ("n_inner", "intermediate_size", "ffn_dim", "d_mlp"),
    "d_head": ("head_dim", "d_head"),
}


# Beyond these a config describes no model circ can check: the checker enumerates every
# head (the largest models have under 20,000), and no dimension comes near 2**40.
MAX_HEADS = 100_000
MAX_DIMENSION = 1 << 40


class ShapeError(ValueError):
    """The model's configuration is missing or unreadable."""


class ShapeTooLarge(ShapeError):
    """A configuration whose sizes are beyond any model circ can check."""


def shape_for(model: Model, spec_dir: Path) -> Shape | None:
    """The Shape of `model`; None for GGUF (checked at run time).

    A relative `model.location` is used as given when it exists (the IR holds paths
    already resolved against the spec's folder), else taken relative to `spec_dir`.
    Raises ShapeError when a local directory or cached model has no usable config."""
    if model.source == "demo":
        return DEMO_SHAPE
    if model.source == "gguf":
        return None
    if model.source == "hf":
        folder = _local(model.location or "", spec_dir)
        if not folder.is_dir():
            raise ShapeError(f"model directory `{folder}` not found")
        return shape_from_config_file(folder / "config.json")
    if model.source == "cache":
        config = cached_config(model.location or "")
        if config is None:
            raise ShapeError(f"`{model.location}` is not in the local Hugging Face cache "
                             f"({hf_cache_dir()})")
        return shape_from_config_file(config)
    raise ShapeError(f"unknown model source `{model.source}`")


def _local(location: str, spec_dir: Path) -> Path:
    path = Path(location)
    if path.is_absolute() or path.exists():
        return path
    return Path(spec_dir) / path


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def cached_config(name: str) -> Path | None:
    """config.json of `name` ("org/model") in the local cache: the snapshot refs/main
    points to, else the newest snapshot that has one."""
    repo = hf_cache_dir() / ("models--" + name.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        config = repo / "snapshots" / ref.read_text().strip() / "config.json"
        if config.is_file():
            return config
    configs = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    return configs[-1] if configs else None


def shape_from_config_file(path: Path) -> Shape:
    return shape_from_config(read_config(path), str(path))


def read_config(path: Path) -> dict:
    """The config.json at `path`, read with a size limit (`bounded_read`)."""
    try:
        config = read_json(path)
    except FileNotFoundError:
        raise ShapeError(f"`{path}` not found") from None
    except ValueError as error:
        raise ShapeError(f"cannot read `{path}`: {error}") from None
    if not isinstance(config, dict):
        raise ShapeError(f"`{path}` is not a JSON object")
    return config


def shape_from_config(config: dict, where: str = "config.json") -> Shape:
    """The Shape described by a Hugging Face config dictionary."""
    found = {}
    for field, keys in _KEYS.items():
        value = next((config[k] for k in keys if isinstance(config.get(k), int)
                      and not isinstance(config.get(k), bool)), None)
        found[field] = value
    missing = [f for f in ("n_layers", "n_heads", "d_model", "d_vocab") if found[f] is None]
    if missing:
        raise ShapeError(f"{where} lacks " + ", ".join(missing))
    if found["n_heads"] <= 0 or found["n_layers"] <= 0:
        raise ShapeError(f"{where} has no layers or no heads")
    huge = [f for f, value in found.items() if value is not None and value > MAX_DIMENSION]
    if huge:
        raise ShapeTooLarge(f"{where}: {huge[0]} is larger than 2**40")
    if found["n_layers"] * found["n_heads"] > MAX_HEADS:
        raise ShapeTooLarge(f"{where} describes {found['n_layers'] * found['n_heads']:,} attention heads "
                            f"({found['n_layers']:,} layers of {found['n_heads']:,}); circ checks models "
                            f"of up to {MAX_HEADS:,}")
    d_model = found["d_model"]
    return Shape(
        n_layers=found["n_layers"],
        n_heads=found["n_heads"],
        d_model=d_model,
        d_head=found["d_head"] or d_model // found["n_heads"],
        d_vocab=found["d_vocab"],
        n_ctx=found["n_ctx"] or 2048,
        d_mlp=found["d_mlp"] or 4 * d_model,
        has_mlp=not config.get("attn_only", False),
    )

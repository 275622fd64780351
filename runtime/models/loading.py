"""Load the model a spec names into a TransformerBridge, offline.

Sources (`ir.Model.source`):
  demo   the embedded demo model (`circ.runtime.models.demo_model.demo_model_dir()`)
  hf     a local Hugging Face folder (config.json, weights, tokenizer files)
  cache  a model name found in the local Hugging Face cache
  gguf   a GGUF file, read by transformers (needs the `gguf` package)

Nothing is downloaded: cache names resolve with `local_files_only`, and
HF_HUB_OFFLINE is set (unless the environment already sets it) before loading. Remote code runs
only when the caller passes `trust_remote_code=True`. transformers prefers
safetensors and reads `.bin` checkpoints with `weights_only=True`, so nothing is
unpickled. config.json is read with a size limit before transformers reads it, and
a model whose config needs more memory than the device has is refused before any
weight is allocated (`memory_fit.py`). Any failure raises `ModelError` with a
one-line message.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circ.compiler import ir

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16", "float64": "float64"}
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


class ModelError(Exception):
    """A model that cannot be loaded; the message is one line meant for the user."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


@dataclass
class LoadedModel:
    """A booted model and what the results say about it."""

    bridge: Any
    name: str
    shape: ir.Shape
    numerics: str  # "compat" (folded LayerNorm, HookedTransformer numerics) or "raw"
    tokenizer: Any
    source: str
    location: str | None
    dtype: str
    device: str


def load_model(model: ir.Model, *, spec_dir: Path, trust_remote_code: bool = False) -> LoadedModel:
    """Boot `model` and apply compatibility mode if asked. Model and tokenizer paths are
    taken as the compiler resolved them; `spec_dir` anchors a device-map file named in
    the spec."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    dtype_name = _DTYPES.get(model.dtype)
    if dtype_name is None:
        raise ModelError(f"unknown dtype {model.dtype!r}; use one of float32, float16, bfloat16")
    spec_dir = Path(spec_dir)
    tokenizer = _load_tokenizer(model.tokenizer, spec_dir, trust_remote_code) if model.tokenizer else None
    if model.source == "gguf":
        bridge, name = _boot_gguf(model, spec_dir, dtype_name, tokenizer, trust_remote_code)
    else:
        folder, name = _model_folder(model, spec_dir)
        _check_folder(folder, need_tokenizer=tokenizer is None)
        _check_config(folder / "config.json", model, dtype_name)
        bridge = _boot(str(folder), model, dtype_name, tokenizer, trust_remote_code, spec_dir)
    _check_vocabulary(bridge, name)
    if model.compat:
        try:
            bridge.enable_compatibility_mode(disable_warnings=True)
        except (RuntimeError, NotImplementedError, ValueError) as error:
            raise ModelError(f"compatibility mode is not available for {name}: {_first_line(error)}") from None
    return LoadedModel(
        bridge=bridge,
        name=name,
        shape=shape_of(bridge),
        numerics="compat" if model.compat else "raw",
        tokenizer=bridge.tokenizer,
        source=model.source,
        location=model.location,
        dtype=dtype_name,
        device=str(bridge.cfg.device),
    )


def shape_of(bridge) -> ir.Shape:
    """The dimensions the checker validates node ids against."""
    cfg = bridge.cfg
    attn_only = bool(getattr(cfg, "attn_only", False))
    return ir.Shape(
        n_layers=int(cfg.n_layers), n_heads=int(cfg.n_heads), d_model=int(cfg.d_model),
        d_head=int(cfg.d_head), d_vocab=int(cfg.d_vocab), n_ctx=int(cfg.n_ctx),
        d_mlp=0 if attn_only else int(getattr(cfg, "d_mlp", 0) or 0), has_mlp=not attn_only,
    )


def _model_folder(model: ir.Model, spec_dir: Path) -> tuple[Path, str]:
    if model.source == "demo":
        try:
            from circ.runtime.models.demo_model import demo_model_dir
        except ImportError:
            raise ModelError("the embedded demo model is not part of this installation") from None
        folder = demo_model_dir()
        if not (folder / "config.json").is_file():
            raise ModelError(f"the embedded demo model's files are missing from {folder}")
        return folder, "demo"
    if not model.location:
        raise ModelError(f'a model of source "{model.source}" needs a location')
    if model.source == "hf":
        return _resolve(model.location), model.location
    if model.source == "cache":
        return _cached_snapshot(model.location), model.location
    raise ModelError(f"unknown model source {model.source!r}; use demo, hf, cache or gguf")


def _resolve(location: str) -> Path:
    """A model or tokenizer path as the compiler resolved it: absolute, or relative to
    the current folder (the compiler already joined it to the spec's folder)."""
    return Path(location).expanduser()


def _cached_snapshot(name: str) -> Path:
    from huggingface_hub import snapshot_download

    cache_dir = os.environ.get("HF_HUB_CACHE")
    if cache_dir is None and os.environ.get("HF_HOME"):
        cache_dir = str(Path(os.environ["HF_HOME"]) / "hub")
    try:
        return Path(snapshot_download(name, cache_dir=cache_dir, local_files_only=True))
    except Exception as error:  # the hub raises several kinds for a missing or broken entry
        raise ModelError(f"{name!r} is not in the local Hugging Face cache ({_first_line(error)})") from None


def _check_folder(folder: Path, *, need_tokenizer: bool) -> None:
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise ModelError(f"model folder {folder} has no config.json")
    if not any((folder / f).is_file() for f in _WEIGHT_FILES) and not any(folder.glob("*.safetensors")):
        raise ModelError(f"model folder {folder} has no weights (model.safetensors or pytorch_model.bin)")
    if need_tokenizer and not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise ModelError(f"model folder {folder} has no tokenizer files (tokenizer.json or tokenizer_config.json)")


def _check_config(path: Path, model: ir.Model, dtype_name: str) -> None:
    """config.json read with a size limit before transformers reads it, and the shape it
    describes against the memory of the device (`memory_fit`)."""
    from circ.compiler.check.model_shape import ShapeError, ShapeTooLarge, read_config, shape_from_config
    from circ.runtime.models.memory_fit import shortfall

    try:
        config = read_config(path)
    except ShapeError as error:
        raise ModelError(str(error)) from None
    try:
        shape = shape_from_config(config, str(path))
    except ShapeTooLarge as error:
        raise ModelError(str(error)) from None
    except ShapeError:
        return  # sizes under names circ does not know: transformers reads them
    reason = shortfall(shape, dtype_name, model.device) if model.device_map is None else None
    if reason is not None:
        raise ModelError(reason)


def _device_kwargs(model: ir.Model, spec_dir: Path) -> dict:
    """`device`, or `device_map` (resolved, see device_maps.py) and an offload folder."""
    from circ.runtime.models.device_maps import DeviceMapError, placement_kwargs

    try:
        return placement_kwargs(model.device_map, model.device, spec_dir)
    except DeviceMapError as error:
        raise ModelError(str(error)) from None


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _boot(path: str, model: ir.Model, dtype_name: str, tokenizer, trust_remote_code: bool, spec_dir: Path):
    from transformer_lens.model_bridge import TransformerBridge

    place = _device_kwargs(model, spec_dir)
    try:
        return TransformerBridge.boot_transformers(
            path, dtype=_torch_dtype(dtype_name), tokenizer=tokenizer,
            trust_remote_code=trust_remote_code, **place,
        )
    except Exception as error:  # transformers, safetensors and torch raise many kinds
        raise ModelError(f"cannot load the model in {path}: {_first_line(error)}") from None


def _load_tokenizer(location: str, spec_dir: Path, trust_remote_code: bool):
    from transformers import AutoTokenizer

    path = _resolve(location)
    source = str(path) if path.exists() else str(_cached_snapshot(location))
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as error:  # missing or unreadable tokenizer files
        raise ModelError(f"cannot load the tokenizer from {location}: {_first_line(error)}") from None


def _boot_gguf(model: ir.Model, spec_dir: Path, dtype_name: str, tokenizer, trust_remote_code: bool):
    if not model.location:
        raise ModelError('a model of source "gguf" needs the path of a .gguf file')
    path = _resolve(model.location)
    if not path.is_file():
        raise ModelError(f"GGUF file {path} does not exist")
    if importlib.util.find_spec("gguf") is None:  # transformers reads GGUF files through it
        raise ModelError("reading GGUF files needs the gguf package: .venv/bin/pip install gguf")
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    place = _device_kwargs(model, spec_dir)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=_torch_dtype(dtype_name),
            attn_implementation="eager", local_files_only=True, trust_remote_code=trust_remote_code,
            **{key: value for key, value in place.items() if key != "device"},
        )
        if "device" in place:
            hf_model = hf_model.to(place["device"])
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        bridge = TransformerBridge.boot_transformers(
            str(path), hf_model=hf_model, tokenizer=tokenizer, dtype=_torch_dtype(dtype_name),
            trust_remote_code=trust_remote_code,
        )
    except Exception as error:  # transformers and gguf raise many kinds
        raise ModelError(f"cannot load the GGUF file {path}: {_first_line(error)}") from None
    return bridge, model.location


def _check_vocabulary(bridge, name: str) -> None:
    """A tokenizer with more (base) tokens than the model has embeddings does not belong to it."""
    size = int(bridge.tokenizer.vocab_size)
    if size > int(bridge.cfg.d_vocab):
        raise ModelError(f"the tokenizer does not match the model {name}: it has {size} tokens "
                         f"but the model's vocabulary has {bridge.cfg.d_vocab} entries")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__

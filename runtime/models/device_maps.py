"""Device maps: where the parts of a model too large for one device live.

A device map is written in the spec (`model hf("DIR", device_map="...")`) or given
to `circ run --device-map`, in one of the Hugging Face/accelerate forms:

  auto, balanced, balanced_low_0, sequential   accelerate places the modules itself
  {"transformer.h.0": 0, "lm_head": "cpu"}     an explicit map as JSON text
  maps/split.json                              a file holding such a JSON object
                                               (relative to the spec's folder)

Explicit values are a GPU index, "cuda", "cuda:N", "mps", "cpu" or "disk". Modules
mapped to "disk" are read from an offload folder (a temporary folder removed when
the process exits) during each forward pass. TransformerLens accepts all-GPU maps
and maps that mix only cpu and disk; it refuses maps that mix a GPU with cpu or disk.

Weights of disk-offloaded modules are not in memory between forward passes (they
are meta tensors): code that reads weights directly rather than running the model
does so inside `readable_weights(bridge)`, or walks them with `named_weights`.
"""
from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
from pathlib import Path

from circ.compiler.bounded_read import read_json

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_PLACE = re.compile(r"(cpu|disk|mps|cuda(:[0-9]{1,3})?)\Z")
MAX_GPUS = 1024  # a device index at or above this is a typing mistake, not a machine


class DeviceMapError(ValueError):
    """A device map that cannot be used; the message is one line for the user."""


def parse_device_map(text: str, base_dir: Path | str = ".") -> str | dict[str, str | int]:
    """A strategy name, or the explicit map that `text` (JSON, or a JSON file's path
    relative to `base_dir`) describes."""
    text = text.strip()
    if text in STRATEGIES:
        return text
    if text.startswith(("{", "[")):
        return _checked(_json(text, "the device map"), "the device map")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL
        is_file = False
    if not is_file:
        raise DeviceMapError(f"device map {text[:100]!r} is not {', '.join(STRATEGIES)}, a JSON object "
                             "or a file")
    try:
        content = read_json(path)
    except (OSError, ValueError) as error:
        raise DeviceMapError(f"cannot read the device map {path}: {error}") from None
    return _checked(content, str(path))


def _json(text: str, where: str):
    try:
        return json.loads(text)
    except RecursionError:
        raise DeviceMapError(f"{where} is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, or an integer over Python's digit limit
        raise DeviceMapError(f"{where} is not valid JSON: {str(error).splitlines()[0][:200]}") from None


def _checked(value, where: str) -> dict[str, str | int]:
    if not isinstance(value, dict) or not value:
        raise DeviceMapError(f"{where} must be a JSON object from module names to devices")
    for module, place in value.items():
        valid = (isinstance(place, int) and not isinstance(place, bool) and 0 <= place < MAX_GPUS) or (
            isinstance(place, str) and _PLACE.match(place))
        if not valid:
            raise DeviceMapError(f"{where}: module {module[:100]!r} has device {repr(place)[:100]}; use "
                                 "a GPU index, cuda, cuda:N, mps, cpu or disk")
    return dict(value)


def placement_kwargs(device_map, device: str, base_dir: Path | str = ".") -> dict:
    """The placement arguments of `TransformerBridge.boot_transformers`: `device`
    alone without a map; else `device_map` (and an offload folder when needed)."""
    if device_map is None:
        return {"device": device}
    if isinstance(device_map, tuple):  # (module, device) pairs
        device_map = {str(module): place for module, place in device_map}
    resolved = parse_device_map(device_map, base_dir) if isinstance(device_map, str) else _checked(
        dict(device_map), "the device map")
    kwargs: dict = {"device_map": resolved}
    if isinstance(resolved, str) or "disk" in resolved.values():
        kwargs["offload_folder"] = offload_folder()
    return kwargs


_FOLDERS: list[str] = []


def offload_folder() -> str:
    """A fresh temporary folder for disk-offloaded weights, removed at exit."""
    folder = tempfile.mkdtemp(prefix="circ-offload-")
    if not _FOLDERS:
        atexit.register(lambda: [shutil.rmtree(f, ignore_errors=True) for f in _FOLDERS])
    _FOLDERS.append(folder)
    return folder


def readable_weights(bridge):
    """A context in which every offloaded weight of `bridge` is materialised, so that
    `bridge.W_O`, `bridge.tl_parameters()` and the like can be read (a no-op for a
    model without offloaded modules)."""
    from transformer_lens.model_bridge.generalized_components.base import (
        align_offloaded_subtree,
    )

    return align_offloaded_subtree(bridge.original_model)


def named_weights(module):
    """(name, tensor) of every parameter of `module`, as `named_parameters()` lists
    them, offloaded ones materialised one module at a time (so that reading every
    weight never holds more than one module's offloaded weights in memory)."""
    from accelerate.utils import align_module_device

    wanted = {name for name, _ in module.named_parameters()}
    for prefix, submodule in module.named_modules():
        with align_module_device(submodule):
            for name, parameter in submodule.named_parameters(recurse=False):
                full = f"{prefix}.{name}" if prefix else name
                if full in wanted:
                    yield full, parameter


def is_offloaded(bridge) -> bool:
    """Whether some of the bridge's weights live off-device (cpu or disk offload)."""
    return any(p.device.type == "meta" for p in bridge.original_model.parameters())

"""Before any weight is allocated: does the model a config.json describes fit in the
memory of the device it loads to? A config with `n_layer=200000` is an error in a
moment, not minutes spent building layers that cannot fit.

The parameter count is a lower bound (query and output projections, the MLP's two
matrices, one embedding; grouped keys and values, gated MLPs, biases and norms only
add to it), so a model that fits is never refused. A model placed with a device map
(offloaded to the CPU or disk) is not checked."""
from __future__ import annotations

import os

from circ.compiler.ir import Shape

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def minimum_parameters(shape: Shape) -> int:
    """At least this many parameters hold a model of `shape`."""
    attention = 2 * shape.n_heads * shape.d_head * shape.d_model
    mlp = 2 * shape.d_model * shape.d_mlp if shape.has_mlp else 0
    return shape.n_layers * (attention + mlp) + shape.d_vocab * shape.d_model


def shortfall(shape: Shape, dtype: str, device: str) -> str | None:
    """Why a model of `shape` in `dtype` cannot fit on `device`, or None when it may."""
    available = available_bytes(device)
    parameters = minimum_parameters(shape)
    needed = parameters * DTYPE_BYTES.get(dtype, 4)
    if available is None or needed <= available:
        return None
    return (f"the model's config describes at least {parameters:,} parameters ({_gib(needed)} in {dtype}), "
            f"more than the {_gib(available)} of memory available on {device}")


def available_bytes(device: str) -> int | None:
    """Memory free for new allocations on `device`; None when it cannot be told."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return int(torch.cuda.mem_get_info(index)[0])
    if device == "cpu":
        return _host_available()
    return None


def _host_available() -> int | None:
    """MemAvailable plus free swap (Linux), else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.strip()}
        return fields["MemAvailable"] + fields.get("SwapFree", 0)
    except (OSError, ValueError, KeyError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"

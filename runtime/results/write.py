"""Write results.json atomically and deterministically.

Keys are sorted and floats are written as Python's shortest round-trip repr, so the
same numbers give the same bytes. Non-finite floats become null (JSON has no NaN).
The file is written through `safe_write`: to a temporary name in the same folder,
flushed to disk and renamed over the target (a reader never sees a half-written
file), never through a symbolic link, with the user's umask.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from circ.runtime.results.safe_write import write_inside


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(results: dict) -> str:
    return json.dumps(_clean(results), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_atomic(path: Path, text: str, root: Path | None = None) -> Path:
    """Replace `path` with `text` in one rename; never leaves a partial file. `path`
    stays inside `root` (default: its own folder) without passing through a link."""
    path = Path(path)
    root = path.parent if root is None else Path(root)
    return write_inside(root, path.relative_to(root), text)


def write_results(path: Path, results: dict) -> Path:
    return write_atomic(path, dumps(results))

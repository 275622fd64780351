"""Write results.json atomically and deterministically.

Keys are sorted and floats are written as Python's shortest round-trip repr, so the
same numbers give the same bytes. Non-finite floats become null (JSON has no NaN).
The file is written to a temporary name in the same folder, flushed to disk, and
renamed over the target, so a reader never sees a half-written file.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


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


def write_atomic(path: Path, text: str) -> Path:
    """Replace `path` with `text` in one rename; never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_results(path: Path, results: dict) -> Path:
    return write_atomic(path, dumps(results))

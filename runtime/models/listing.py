"""`circ models`: what can be loaded here without a download — the embedded demo
model, Hugging Face folders under the current directory, and the local Hugging
Face cache. Reads config.json files only; loads no weights and no torch."""
from __future__ import annotations

import json
import os
from pathlib import Path

from circ.compiler.check.model_shape import shape_from_config


def _hub_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def _describe(config_path: Path) -> str:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        shape = shape_from_config(config)
    except Exception as error:  # noqa: BLE001 - a broken config is listed, not fatal
        return f"unreadable config ({type(error).__name__})"
    arch = ",".join(config.get("architectures") or [config.get("model_type", "?")])
    return f"{arch}: {shape.n_layers} layers x {shape.n_heads} heads, d_model {shape.d_model}"


def _local_dirs(root: Path, depth: int = 2) -> list[Path]:
    found = []
    for config in sorted(root.glob("*/config.json")) + (sorted(root.glob("*/*/config.json")) if depth > 1 else []):
        if ".venv" not in config.parts and "node_modules" not in config.parts:
            found.append(config.parent)
    return found


def _cached() -> list[tuple[str, Path]]:
    hub = _hub_dir()
    entries = []
    for folder in sorted(hub.glob("models--*")):
        configs = sorted(folder.glob("snapshots/*/config.json"))
        if configs:
            entries.append((folder.name[len("models--"):].replace("--", "/"), configs[-1]))
    return entries


def list_models(root: Path | None = None) -> str:
    from circ.runtime.models.demo_model import demo_model_dir

    lines = ["demo (embedded)"]
    demo = demo_model_dir() / "config.json"
    lines[0] += f"  {_describe(demo)}" if demo.is_file() else "  (weights missing)"
    for folder in _local_dirs(root or Path.cwd()):
        lines.append(f'hf("{folder}")  {_describe(folder / "config.json")}')
    for name, config in _cached():
        lines.append(f'cache("{name}")  {_describe(config)}')
    if len(lines) == 1:
        lines.append(f"(no local Hugging Face folders here and nothing in {_hub_dir()})")
    return "\n".join(lines) + "\n"

"""The embedded demo model: a small transformer trained on multiple-choice prompts.

Its Hugging Face files (config, safetensors weights, word-level tokenizer) live in
`weights/` and load through the same path as a user's local model:
`TransformerBridge.boot_transformers(str(demo_model_dir()), device="cpu")`.
"""
from __future__ import annotations

from pathlib import Path


def demo_model_dir() -> Path:
    """The folder holding the demo model's Hugging Face files."""
    return Path(__file__).resolve().parent / "weights"

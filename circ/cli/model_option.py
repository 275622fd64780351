"""`--model M`, shared by `circ run` and `circ check` so that both mean the same
model: `demo`, a local Hugging Face directory, a .gguf file, or a name in the local
Hugging Face cache. No torch is imported."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from circ.compiler import ir


def model_from_option(text: str, base: ir.Model) -> ir.Model:
    """The model `--model text` names; the spec's dtype, device and numerics are kept."""
    if text == "demo":
        return replace(base, source="demo", location=None)
    path = Path(text)
    if path.suffix == ".gguf":
        return replace(base, source="gguf", location=str(path.resolve()))
    if path.is_dir():
        return replace(base, source="hf", location=str(path.resolve()))
    return replace(base, source="cache", location=text)


def spec_model(path: str) -> ir.Model:
    """The model a spec names (the demo model, at line 1, when the spec has errors:
    they are reported when it is compiled with the override)."""
    from circ.compiler.api import compile_file
    from circ.compiler.diagnostics import CircError

    try:
        return compile_file(path).model
    except CircError:
        return ir.Model(span=ir.Span(str(path), 1, 1, 1, 1))

"""Turning DOT text into files and inline SVG with Graphviz's `dot` binary.

The format follows the output file's suffix (.svg, .png, .pdf or .dot). When `dot` is not
installed, the DOT text is written next to the requested file and `GraphvizMissing`
says how to install Graphviz, so that the command line can print it as one message.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from circ.runtime.render.diagram import RenderError

FORMATS = (".svg", ".png", ".pdf", ".dot")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: `apt-get install graphviz`; "
                "macOS: `brew install graphviz`) and run again")
TIMEOUT_S = 60


class GraphvizMissing(RenderError):
    """Graphviz's `dot` binary is not on PATH."""


class GraphvizFailed(RenderError):
    """`dot` ran but could not lay the graph out."""


def render(dot_text: str, out_path: Path) -> Path:
    """Write the graph to `out_path` in the format of its suffix; return the path."""
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(f"cannot draw '{out_path}': the file must end in "
                          f"{', '.join(FORMATS)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".dot":
        out_path.write_text(dot_text, encoding="utf-8")
        return out_path
    dot = shutil.which("dot")
    if dot is None:
        fallback = out_path.with_suffix(".dot")
        fallback.write_text(dot_text, encoding="utf-8")
        raise GraphvizMissing(
            f"cannot draw '{out_path}': Graphviz's `dot` program was not found. "
            f"The graph was written to '{fallback}' instead; {INSTALL_HINT}, or convert "
            f"it yourself with `dot -T{suffix[1:]} {fallback} -o {out_path}`.")
    out_path.write_bytes(_run_dot(dot, dot_text, suffix[1:]))
    return out_path


def inline_svg(dot_text: str) -> str:
    """The graph as an `<svg>` element to embed in HTML (no XML prolog or doctype)."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(f"Graphviz's `dot` program was not found; {INSTALL_HINT}")
    svg = _run_dot(dot, dot_text, "svg").decode("utf-8")
    return svg[svg.index("<svg"):]


def _run_dot(dot: str, dot_text: str, fmt: str) -> bytes:
    try:
        done = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise GraphvizFailed(f"`dot` took longer than {TIMEOUT_S} s to lay out the graph") \
            from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise GraphvizFailed(f"`dot` could not draw the graph: {message}")
    return done.stdout

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
from circ.runtime.results.safe_write import write_inside

FORMATS = (".svg", ".png", ".pdf", ".dot")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: `apt-get install graphviz`; "
                "macOS: `brew install graphviz`) and run again")
TIMEOUT_S = 60


class GraphvizMissing(RenderError):
    """Graphviz's `dot` binary is not on PATH."""


class GraphvizFailed(RenderError):
    """`dot` ran but could not lay the graph out."""


def render(dot_text: str, out_path: Path, root: Path | None = None) -> Path:
    """Write the graph to `out_path` in the format of its suffix; return the path.
    The file stays inside `root` (default: its own folder) and is written through
    `safe_write` (atomically, never through a link)."""
    out_path = Path(out_path)
    root = out_path.parent if root is None else Path(root)
    suffix = out_path.suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(f"cannot draw '{out_path}': the file must end in "
                          f"{', '.join(FORMATS)}")
    relative = out_path.relative_to(root)
    if suffix == ".dot":
        return _write(root, relative, dot_text)
    dot = shutil.which("dot")
    if dot is None:
        fallback = _write(root, relative.with_suffix(".dot"), dot_text)
        raise GraphvizMissing(
            f"cannot draw '{out_path}': Graphviz's `dot` program was not found. "
            f"The graph was written to '{fallback}' instead; {INSTALL_HINT}, or convert "
            f"it yourself with `dot -T{suffix[1:]} {fallback} -o {out_path}`.")
    return _write(root, relative, _run_dot(dot, dot_text, suffix[1:]))


def _write(root: Path, relative: Path, data: str | bytes) -> Path:
    try:
        return write_inside(root, relative, data)
    except OSError as error:
        raise RenderError(f"cannot write '{root / relative}': {error.strerror or error}") from None


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

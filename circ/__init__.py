"""circ: circuit hypotheses as checked, compiled, runnable specs.

The Python API (docs/api.md) is loaded on first use, so that `import circ` and the
compiler stay fast: `circ.compile`, `circ.plan`, `circ.run`, `circ.load_results`,
`circ.diff`, `circ.Results`, `circ.CircError`."""

from circ.version import __version__

_API = ("CheckedSpec", "CircError", "Results", "compile", "diff", "load_results", "plan", "run")


def __getattr__(name: str):
    if name in _API:
        from circ import api

        return getattr(api, name)
    raise AttributeError(f"module 'circ' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])

"""circ: circuit hypotheses as checked, compiled, runnable specs."""

__version__ = "0.1.0"

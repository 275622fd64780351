"""The version of circ, in one place: results, caches and the package read it here."""

__version__ = "0.1.0"

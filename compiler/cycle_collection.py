"""Python's cycle collector paused while the compiler builds its trees.

Parsing and checking build millions of small objects and no reference cycles worth
collecting; the collector would walk every live object again and again (time grew
faster than the spec). Reference counting still frees them.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def without_cycle_collection():
    """The cycle collector off inside the block, back as it was after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

"""Numbers read off a faithfulness curve: the sizes it is measured at, the areas of
MIB's circuit-localisation track, and the smallest size reaching a target. Pure Python,
shared by the curve kernel and the expectations that read its results.

Areas are over the fraction x = size / N of the ranked nodes kept, x from 0 to 1, by
the trapezoid rule between measured sizes:

    CPR = integral of f(x) dx          (higher is better; 1 for a circuit at full
                                        faithfulness from the first node on)
    CMD = integral of |1 - f(x)| dx    (lower is better; 0 only when every prefix
                                        already behaves like the full model)
"""
from __future__ import annotations


def curve_sizes(total: int, points: int) -> list[int]:
    """0, then `points` sizes evenly spaced up to `total` (rounded, each once); more
    points than `total` measure every size."""
    points = max(min(points, total), 1)
    return sorted({round(i * total / points) for i in range(points + 1)})


def listed_sizes(total: int, sizes) -> list[int]:
    """0, the listed sizes (one above `total` counts as `total`) and `total`, each once."""
    return sorted({0, total} | {min(k, total) for k in sizes})


def areas(sizes: list[int], faithfulness: list[float | None]) -> tuple[float | None, float | None]:
    """(CPR, CMD) of one curve; None when a point is missing or the curve has one size."""
    total = sizes[-1] if sizes else 0
    if total == 0 or any(f is None for f in faithfulness):
        return None, None
    cpr = cmd = 0.0
    for (k0, f0), (k1, f1) in zip(zip(sizes, faithfulness), zip(sizes[1:], faithfulness[1:])):
        width = (k1 - k0) / total
        cpr += width * (f0 + f1) / 2
        cmd += width * (abs(1 - f0) + abs(1 - f1)) / 2
    return cpr, cmd


def size_at(sizes: list[int], faithfulness: list[float | None], target: float) -> int | None:
    """The smallest measured size whose faithfulness reaches `target`; None when none does."""
    return next((k for k, f in zip(sizes, faithfulness) if f is not None and f >= target), None)

"""Checking the parameters of a generator or derivation: clear ValueErrors, no asserts.

Parameter values arrive either from Python (plain ints and strings) or from a
checked spec, where a bare word such as `random_letters` is a `Word`.
"""
from __future__ import annotations

from circ.compiler.ir import Word


def check_names(kind: str, params: dict, known: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Reject unknown and missing parameter names."""
    if not isinstance(params, dict):
        raise ValueError(f"{kind}: parameters must be a dict, got {type(params).__name__}")
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"{kind}: unknown parameter {', '.join(repr(u) for u in unknown)} "
            f"(known: {', '.join(known)})"
        )
    missing = [name for name in required if name not in params]
    if missing:
        raise ValueError(f"{kind}: missing parameter {', '.join(repr(m) for m in missing)}")


def int_param(kind: str, params: dict, name: str, default: int | None = None,
              minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer parameter within [minimum, maximum]."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{kind}: {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{kind}: {name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{kind}: {name} must be at most {maximum}, got {value}")
    return value


def option_value(value):
    """A bare word's name, or the value itself."""
    return value.name if isinstance(value, Word) else value

"""Argument checks shared by the core's configuration objects (ValueError on nonsense).

One module so that the breaker, the retry policy, the spool and the drainer refuse bad
settings with the same words.
"""

from __future__ import annotations

import math

__all__ = ["check_int", "check_positive", "check_seconds"]


def check_int(name: str, value: object, minimum: int) -> None:
    """``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_positive(name: str, value: object) -> None:
    """``value`` is a finite number > 0 (not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_seconds(name: str, value: float, *, positive: bool = False) -> None:
    """``value`` is a finite duration, >= 0 (or > 0 with ``positive``)."""
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        relation = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {relation}, got {value!r}")

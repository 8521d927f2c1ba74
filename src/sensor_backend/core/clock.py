"""Injectable clocks.

Resilience code measures intervals with :meth:`Clock.monotonic` (never goes backwards, not
affected by NTP steps) and reports human-facing timestamps (for example "time of the last
breaker trip") with :meth:`Clock.time` (wall-clock epoch seconds).

:class:`ManualClock` lives here rather than in a test helper so every service's tests can
drive breakers, budgets and caches without real sleeping.
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Source of monotonic seconds (for intervals) and wall-clock epoch seconds."""

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin; only differences are meaningful."""
        ...

    def time(self) -> float:
        """Return wall-clock seconds since the Unix epoch."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`time.time`."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def time(self) -> float:
        """Return :func:`time.time`."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that only moves when told to (tests, simulations).

    Both readings advance together, so "time since X" measured on either agrees.
    """

    __slots__ = ("_monotonic", "_time")

    def __init__(self, start_monotonic: float = 0.0, start_time: float = 1_700_000_000.0) -> None:
        if not (math.isfinite(start_monotonic) and math.isfinite(start_time)):
            raise ValueError("clock start values must be finite")
        self._monotonic = float(start_monotonic)
        self._time = float(start_time)

    def monotonic(self) -> float:
        """Return the current manual monotonic reading."""
        return self._monotonic

    def time(self) -> float:
        """Return the current manual wall-clock reading (epoch seconds)."""
        return self._time

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds`` (must be finite and >= 0)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a clock only moves forward by a finite amount, got {seconds!r}")
        self._monotonic += seconds
        self._time += seconds

    def __repr__(self) -> str:
        return f"ManualClock(monotonic={self._monotonic!r}, time={self._time!r})"

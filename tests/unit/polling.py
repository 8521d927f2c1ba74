"""Waiting for a condition in async unit tests: a deadline and a predicate, never a bare sleep.

Twins for the integration tests: ``wait_for`` and ``eventually`` in ``integration/harness.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


async def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    """Yield to the loop until ``predicate()`` is truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)

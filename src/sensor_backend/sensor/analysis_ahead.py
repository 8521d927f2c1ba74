"""Analyses begun while their tests are being stored, for the worker that claims them.

Issue 14: a test's analysis (~30-60 ms a million readings) overlaps the upload's INSERT and
COMMIT instead of following them. Only while every worker is idle, so no queued test waits
behind it for a thread, and one at a time. The outcome is used only by a worker of this
process that claims the test through its row and lease, and only if the row holds the same
spec, source and params; otherwise, or if the test never commits, it is dropped
(exactly-once is the lease's, as before).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from sensor_backend.sensor.jobs import Readings
from sensor_backend.sensor.reading_blocks import HANDOFF, unpack
from sensor_backend.sensor.runner import run_analysis

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable
    from concurrent.futures import Executor

    from sensor_backend.sensor.jobs import Job, Outcome
    from sensor_backend.sensor.repository import NewTest

TTL_S = 10.0  # an analysis begun ahead and not claimed by then: the test went elsewhere


@dataclass(frozen=True, slots=True)
class _Begun:
    spec: dict[str, Any]
    source: str
    params: dict[str, Any]
    outcome: asyncio.Future[Outcome]
    at: float

    def fits(self, job: Job) -> bool:
        """Begun on what the claimed row holds (else the row wins and it runs again)."""
        return (self.spec, self.source, self.params) == (job.spec, job.source, job.params)


class AnalysisAhead:
    """At most one analysis begun ahead, handed to the worker that claims its test."""

    def __init__(self, executor: Executor, *, max_indices: int, busy: Callable[[], bool]) -> None:
        self._executor = executor
        self._max_indices = max_indices
        self._busy = busy
        self._begun: dict[uuid.UUID, _Begun] = {}

    def offer(self, test: NewTest) -> None:
        """Begin analysing readings this process is storing (HANDOFF's listener)."""
        now = time.monotonic()
        for test_id in [k for k, b in self._begun.items() if now - b.at > TTL_S]:
            del self._begun[test_id]
        if test.values is None or self._busy() or self._begun:
            return
        values = unpack(test.values)
        assert values is not None  # noqa: S101 - checked above
        readings = Readings(values, unpack(test.timestamps), unpack(test.reference))
        work = partial(
            run_analysis,
            test.spec,
            test.source,
            test.params,
            readings,
            max_indices=self._max_indices,
        )
        outcome = asyncio.get_running_loop().run_in_executor(self._executor, work)
        outcome.add_done_callback(_retrieved)  # one dropped unclaimed must not log its error
        self._begun[test.id] = _Begun(test.spec, test.source, test.params, outcome, now)

    def take(self, job: Job) -> asyncio.Future[Outcome] | None:
        """The outcome begun for the claimed ``job``, if it was begun on what its row holds."""
        begun = self._begun.pop(job.id, None)
        if begun is None or not begun.fits(job):
            return None
        HANDOFF.discard(job.id)  # the readings are not needed any more
        return begun.outcome

    def clear(self) -> None:
        self._begun.clear()


def _retrieved(future: asyncio.Future[Outcome]) -> None:
    if not future.cancelled():
        future.exception()  # a claim that awaits it still gets the exception raised

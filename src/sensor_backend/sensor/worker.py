"""Background processing: workers that drain the durable queue, and the housekeeping loop.

Each process runs ``workers`` asyncio tasks. A task claims one test (:class:`.JobQueue`),
renews its lease while working, runs the NumPy work in a thread pool of the same size (so
requests are never blocked by an analysis) and records the outcome. Nothing is held only in
memory: a process that dies leaves leased rows that :meth:`.JobQueue.reap`, run by the
housekeeping loop of every replica, hands back to the queue once the lease runs out.

A database outage never kills a loop: :class:`~sensor_backend.core.db.DatabaseUnavailable`
is caught, the loop backs off for the breaker's ``Retry-After`` (capped) and carries on, so
the workers resume by themselves when the database returns. A result computed while the
database is away is kept and written as soon as it answers, for as long as the lease would
still be ours; after that the test is simply analysed again elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sensor_backend.core import tracing
from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.log import get_logger
from sensor_backend.sensor.analysis_ahead import AnalysisAhead
from sensor_backend.sensor.reading_blocks import HANDOFF, ReadingsMissingError
from sensor_backend.sensor.runner import InvalidJob, run_job

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sensor_backend.sensor.jobs import Job, JobQueue, Outcome
    from sensor_backend.sensor.metrics import SensorMetrics
    from sensor_backend.sensor.outbox import Outbox
    from sensor_backend.sensor.settings import SensorSettings

log = get_logger("sensor.worker")
MAX_DB_BACKOFF_S = 5.0
PURGE_EVERY_S = 600.0
T = TypeVar("T")


class WorkerPool:
    def __init__(
        self,
        settings: SensorSettings,
        queue: JobQueue,
        outbox: Outbox,
        metrics: SensorMetrics,
        *,
        on_finished: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.outbox = outbox
        self.metrics = metrics
        self.on_finished = on_finished
        self.prefix = f"{settings.instance_id}/{os.getpid()}"
        self._executor: ThreadPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.state = "stopped"
        self._normal_state = "running"
        self.busy = 0
        self.counts = {"completed": 0, "failed": 0, "retried": 0, "lease_lost": 0, "reaped": 0}
        self.last_error: str | None = None
        self.depths: dict[str, Any] = {}
        self._last_purge = 0.0
        self._ahead: AnalysisAhead | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        n = self.settings.workers
        if n:
            self._executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix="analysis")
        self._tasks = [
            asyncio.create_task(self._work(i), name=f"sensor-worker-{i}") for i in range(n)
        ]
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="sensor-housekeeping"))
        self._normal_state = "running" if n else "no workers (SENSOR_WORKERS=0): serving only"
        self.state = self._normal_state
        HANDOFF.enabled = bool(n)  # a serving-only replica keeps no readings for workers
        if self._executor is not None and not self.settings.work_delay_s:
            self._ahead = AnalysisAhead(
                self._executor,
                max_indices=self.settings.result_max_indices,
                busy=lambda: self.busy > 0,
            )
            HANDOFF.listener = self._ahead.offer

    async def stop(self) -> None:
        self.state = "stopping"
        if self._ahead is not None:
            if HANDOFF.listener == self._ahead.offer:
                HANDOFF.listener = None
            self._ahead.clear()
            self._ahead = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.state = "stopped"

    def wake(self) -> None:
        """A test was submitted (or re-queued): look now instead of at the next poll."""
        self._wake.set()

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "configured": self.settings.workers,
            "busy": self.busy,
            **self.counts,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ workers

    async def _work(self, index: int) -> None:
        name = f"{self.prefix}/w{index}"
        while True:
            try:
                job = await self._guard(self.queue.claim(name))
                if job is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
                    self._wake.clear()
                    continue
                with tracing.span(
                    "sensor test job",
                    traceparent=job.traceparent,
                    kind="consumer",
                    attributes=_span_attributes(job),
                ):
                    await self._process(job)
            except Exception as exc:
                log.exception("worker iteration failed")
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                await asyncio.sleep(self.settings.poll_interval_s)

    async def _guard(self, call: Awaitable[T]) -> T | None:
        """Await a database call; on an outage or an SQL surprise, back off and return None."""
        try:
            result = await call
        except DatabaseUnavailable as exc:
            self.state = "waiting for database"
            self.last_error = exc.message
            await asyncio.sleep(min(exc.retry_after_s, MAX_DB_BACKOFF_S))
            return None
        except Exception as exc:
            log.exception("queue call failed")
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            await asyncio.sleep(self.settings.poll_interval_s)
            return None
        if self.state == "waiting for database":
            self.state = self._normal_state
            self.last_error = None
        return result

    async def _process(self, job: Job) -> None:
        self.busy += 1
        deadline = [time.monotonic() + self.settings.lease_s]
        beat = asyncio.create_task(self._heartbeat(job, deadline))
        try:
            outcome, error, kind = await self._run(job)
            await self._record(job, outcome, error, kind=kind, deadline=deadline)
        except asyncio.CancelledError:
            # Shutting down: hand the test back now rather than after the lease.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.queue.release(job)), 2.0)
            raise
        finally:
            beat.cancel()
            self.busy -= 1

    async def _run(self, job: Job) -> tuple[Outcome | None, str, str]:
        """(outcome, error, kind): kind is ok, permanent, transient or database."""
        try:
            if self.settings.work_delay_s:
                await asyncio.sleep(self.settings.work_delay_s)
            future = self._ahead.take(job) if self._ahead is not None else None
            if future is None:
                readings = await self.queue.readings(job) if job.source == "readings" else None
                work = partial(run_job, job, readings, max_indices=self.settings.result_max_indices)
                future = asyncio.get_running_loop().run_in_executor(self._executor, work)
            outcome = await asyncio.wait_for(future, self.settings.max_job_s)
        except (InvalidJob, ReadingsMissingError) as exc:  # the same on every attempt
            return None, str(exc), "permanent"
        except TimeoutError:
            return None, f"analysis took longer than {self.settings.max_job_s:g} s", "transient"
        except DatabaseUnavailable as exc:
            return None, exc.message, "database"
        except Exception as exc:  # noqa: BLE001 - any other failure is worth a retry
            log.warning("analysis failed", test_id=str(job.id), error=repr(exc))
            return None, f"{type(exc).__name__}: {exc}", "transient"
        self.metrics.processing.observe(outcome.processing_ms / 1000)
        return outcome, "", "ok"

    async def _record(
        self, job: Job, outcome: Outcome | None, error: str, *, kind: str, deadline: list[float]
    ) -> None:
        """Write the outcome, retrying through a database outage while the lease holds.

        A test whose readings could not be loaded (database away) is handed back without
        using up an attempt; the test itself did nothing wrong.
        """
        while True:
            try:
                if kind == "database":
                    await self.queue.release(job)
                    return
                if outcome is not None:
                    done = await self.queue.complete(job, outcome)
                    status: str | None = "completed" if done else None
                else:
                    permanent = kind == "permanent"
                    status = await self.queue.fail_attempt(job, error, permanent=permanent)
            except DatabaseUnavailable as exc:
                if time.monotonic() > deadline[0]:
                    log.warning("result dropped: lease expired", test_id=str(job.id))
                    return
                await asyncio.sleep(min(exc.retry_after_s, 1.0))
                continue
            break
        self._count(job, outcome, status)

    def _count(self, job: Job, outcome: Outcome | None, status: str | None) -> None:
        verdict = None if outcome is None else outcome.verdict
        tracing.annotate({"job.status": status or "lease_lost", "sensor.verdict": verdict})
        if status is None:
            self.counts["lease_lost"] += 1
            self.metrics.lease_lost.inc()
            log.warning("lease lost; result dropped", test_id=str(job.id))
            return
        if status == "queued":
            self.counts["retried"] += 1
            self.metrics.retries.inc()
            return
        if status == "failed":
            self.counts["failed"] += 1
            self.metrics.failed.inc()
        elif outcome is not None:
            self.counts["completed"] += 1
            self.metrics.verdicts.labels(outcome.verdict).inc()
            self.metrics.completed.labels(job.sensor_type, outcome.verdict).inc()
            since_accepted = max(time.time() - job.created_at.timestamp(), 0.0)
            waited = since_accepted - outcome.processing_ms / 1000
            self.metrics.queue_wait.observe(max(waited, 0.0))
            self.metrics.completion.observe(since_accepted)
        self.on_finished()

    async def _heartbeat(self, job: Job, deadline: list[float]) -> None:
        every = self.settings.lease_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                if not await self.queue.heartbeat(job):
                    log.warning("lease lost while working", test_id=str(job.id))
                    return
                deadline[0] = time.monotonic() + self.settings.lease_s
            except DatabaseUnavailable:
                continue
            except Exception:
                log.warning("heartbeat failed", test_id=str(job.id), exc_info=True)

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping(self) -> None:
        interval = min(self.settings.health_probe_interval_s, self.settings.lease_s / 3)
        while True:
            try:
                await self._housekeep()
            except Exception as exc:
                log.exception("housekeeping failed")
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            await asyncio.sleep(interval)

    async def _housekeep(self) -> None:
        """Reap expired leases, refresh the depth counts, now and then purge sent events."""
        reaped = await self._guard(self.queue.reap())
        if reaped and any(reaped.values()):
            self.counts["reaped"] += sum(reaped.values())
            log.warning("expired leases reaped", **reaped)
            self.wake()
            if reaped["failed"]:
                self.on_finished()
        depths = await self._guard(self.queue.depths())
        if depths is not None:
            self.depths = {**depths, "as_of": time.time()}
        if time.monotonic() - self._last_purge > PURGE_EVERY_S:
            purged = await self._guard(self.outbox.purge_sent(self.settings.outbox_retention_s))
            if purged is not None:
                self._last_purge = time.monotonic()


def _span_attributes(job: Job) -> tracing.Attributes:
    """The job span's attributes (README "Traces")."""
    return {
        "test.id": str(job.id),
        "sensor.type": job.sensor_type,
        "sensor.device_id": job.device_id,
        "job.attempt": job.attempts,
        "job.max_attempts": job.max_attempts,
    }

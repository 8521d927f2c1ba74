"""The durable job queue over ``sensor.tests``: claim, lease, complete, retry, reap.

Why PostgreSQL and not a queue library: the test row already is the job, and completing it
must write the result and the outbox event in one transaction (:mod:`.outbox`); pgqueuer and
procrastinate keep their own job tables and would make that a two-table dance. The pattern
is the one they use underneath:

* **claim**: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks the oldest due ``queued`` row that
  no other worker is looking at, and the same statement sets ``running``, ``claimed_by``,
  a fresh ``lease_token``, ``lease_until = now() + lease`` and ``attempts + 1``;
* **lease**: the worker renews ``lease_until`` (:meth:`JobQueue.heartbeat`) while it works;
  a worker that dies stops renewing, and :meth:`JobQueue.reap` (run by every replica) puts
  rows whose lease ran out back to ``queued``, or ends them ``failed`` once ``attempts``
  reached ``max_attempts``: a job that kills its worker every time is not retried forever;
* **completion** updates the row only ``WHERE lease_token = <ours> AND status = 'running'``:
  a worker that lost its lease (it stalled, the row was reaped and claimed by another) finds
  zero rows and drops its result, so no test is completed twice, and its event is written
  once;
* a failed attempt goes back to ``queued`` with an exponential ``run_after`` delay, or ends
  ``failed`` with the reason (immediately for invalid input, which retrying cannot fix).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sensor_backend.core import tracing
from sensor_backend.core.retry import RetryPolicy, backoff_s
from sensor_backend.sensor.notifications import completed_event, enqueue_failed
from sensor_backend.sensor.outbox import enqueue
from sensor_backend.sensor.reading_blocks import HANDOFF, ReadingsMissingError, read_arrays, unpack

if TYPE_CHECKING:
    from datetime import datetime

    import numpy as np
    from numpy.typing import NDArray

    from sensor_backend.core.db import Connection, Database

RETRY_CAP_S = 60.0
REAP_BATCH = 100
# The oldest due queued row nobody else has locked, leased in the same statement.
_CLAIM_SQL = (
    "UPDATE tests SET status = 'running', attempts = attempts + 1,"
    " claimed_by = $1, lease_token = $2,"
    " lease_until = now() + make_interval(secs => $3),"
    " started_at = coalesce(started_at, now())"
    " WHERE id = (SELECT id FROM tests WHERE status = 'queued'"
    " AND run_after <= now() ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, sensor_type, device_id, source, spec, params, attempts, max_attempts,"
    " event_id, traceparent, lease_token, created_at"
)
_RNG = random.Random()  # noqa: S311 - retry jitter, not cryptography


@dataclass(frozen=True, slots=True)
class Job:
    id: uuid.UUID
    sensor_type: str
    device_id: str
    source: str
    spec: dict[str, Any]
    params: dict[str, Any]
    attempts: int
    max_attempts: int
    event_id: uuid.UUID
    traceparent: str | None
    lease_token: uuid.UUID
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Job:  # noqa: ANN401 - an asyncpg Record
        values = dict(row)
        values["spec"] = json.loads(values["spec"])
        values["params"] = json.loads(values["params"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Readings:
    values: NDArray[np.float64]
    timestamps: NDArray[np.float64] | None
    reference: NDArray[np.float64] | None


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: str
    reasons: list[str]
    result: dict[str, Any]
    metrics: dict[str, Any]
    processing_ms: float
    flags: bytes | None = None  # aggregate QARTOD flag per reading, one uint8 each


class JobQueue:
    def __init__(self, db: Database, *, lease_s: float, retry_base_s: float) -> None:
        self.db = db
        self.lease_s = lease_s
        self.retry_base_s = retry_base_s
        # Equal jitter: a failed job waits at least half its ceiling before the next try.
        self.retry_policy = RetryPolicy(
            max_attempts=None, base_s=retry_base_s, cap_s=RETRY_CAP_S, jitter="equal"
        )

    async def claim(self, worker: str) -> Job | None:
        """The oldest due queued test, now ``running`` and leased to ``worker``."""

        async def write(conn: Connection) -> Any:  # noqa: ANN401 - an asyncpg Record
            return await conn.fetchrow(
                _CLAIM_SQL,
                worker,
                uuid.uuid4(),
                self.lease_s,
            )

        row = await self.db.run(write)
        return None if row is None else Job.from_row(row)

    async def readings(self, job: Job) -> Readings:
        handed = HANDOFF.take(job.id)  # stored by this process: no need to read it back
        if handed is not None:
            values, timestamps, reference = (unpack(raw) for raw in handed)
            assert values is not None  # noqa: S101 - values are always stored
            return Readings(values, timestamps, reference)

        async def read(conn: Connection) -> tuple[NDArray[np.float64] | None, ...] | None:
            return await read_arrays(conn, job.id)

        stored = await self.db.run(read)
        if stored is None:
            raise ReadingsMissingError(f"test {job.id} has no stored readings")
        values, timestamps, reference = stored
        assert values is not None  # noqa: S101 - values are always stored
        return Readings(values, timestamps, reference)

    async def heartbeat(self, job: Job) -> bool:
        """Extend the lease; False when it is no longer ours (reaped, or taken over)."""

        async def write(conn: Connection) -> bool:
            status: str = await conn.execute(
                "UPDATE tests SET lease_until = now() + make_interval(secs => $3)"
                " WHERE id = $1 AND lease_token = $2 AND status = 'running'",
                job.id,
                job.lease_token,
                self.lease_s,
            )
            return status.endswith(" 1")

        return await self.db.run(write)

    async def complete(self, job: Job, outcome: Outcome) -> bool:
        """Store the result and its event in one transaction; False if the lease was lost."""

        async def write(conn: Connection) -> bool:
            finished = await conn.fetchval(
                "UPDATE tests SET status = 'completed', verdict = $3, result = $4::jsonb,"
                " processing_ms = $5, finished_at = now(), lease_token = NULL,"
                " lease_until = NULL, error = NULL"
                " WHERE id = $1 AND lease_token = $2 AND status = 'running'"
                " RETURNING finished_at",
                job.id,
                job.lease_token,
                outcome.verdict,
                json.dumps(outcome.result, allow_nan=False),
                outcome.processing_ms,
            )
            if finished is None:
                return False
            if outcome.flags is not None:
                await conn.execute(
                    "INSERT INTO test_reading_flags (test_id, flags_u8) VALUES ($1, $2)"
                    " ON CONFLICT (test_id) DO UPDATE SET flags_u8 = EXCLUDED.flags_u8",
                    job.id,
                    outcome.flags,
                )
            event = completed_event(
                event_id=job.event_id,
                test_id=job.id,
                sensor_type=job.sensor_type,
                device_id=job.device_id,
                source=job.source,
                verdict=outcome.verdict,
                reasons=outcome.reasons,
                metrics=outcome.metrics,
                time=finished,
                # The job's span (tracing on) is the parent of the event's next hops.
                traceparent=tracing.current_traceparent(job.traceparent),
            )
            await enqueue(conn, test_id=job.id, event=event)
            return True

        return await self.db.run(write, transaction=True)

    async def release(self, job: Job) -> None:
        """Hand a claimed test back untouched (graceful shutdown): no attempt is used up."""

        async def write(conn: Connection) -> None:
            await conn.execute(
                "UPDATE tests SET status = 'queued', attempts = greatest(attempts - 1, 0),"
                " lease_token = NULL, lease_until = NULL, run_after = now()"
                " WHERE id = $1 AND lease_token = $2 AND status = 'running'",
                job.id,
                job.lease_token,
            )

        await self.db.run(write)

    async def fail_attempt(self, job: Job, error: str, *, permanent: bool) -> str | None:
        """Record a failed attempt: back to ``queued`` later, or ``failed`` for good.

        Returns the new status, or None when the lease was no longer ours.
        """
        final = permanent or job.attempts >= job.max_attempts
        if permanent:
            reason = f"invalid input: {error}"
        else:
            reason = f"gave up after {job.attempts} attempts: {error}"
        delay = backoff_s(max(job.attempts - 1, 0), self.retry_policy, _RNG)

        async def write(conn: Connection) -> str | None:
            finished = await conn.fetchval(
                "UPDATE tests SET status = CASE WHEN $3 THEN 'failed' ELSE 'queued' END,"
                " error = CASE WHEN $3 THEN $4::text END, last_error = $5,"
                " finished_at = CASE WHEN $3 THEN now() END,"
                " run_after = now() + make_interval(secs => $6),"
                " lease_token = NULL, lease_until = NULL"
                " WHERE id = $1 AND lease_token = $2 AND status = 'running'"
                " RETURNING coalesce(finished_at, now())",
                job.id,
                job.lease_token,
                final,
                reason[:2000],
                error[:2000],
                0.0 if final else delay,
            )
            if finished is None:
                return None
            if final:
                await enqueue_failed(conn, _job_row(job), reason, finished)
                return "failed"
            return "queued"

        return await self.db.run(write, transaction=True)

    async def reap(self) -> dict[str, int]:
        """Expired leases: back to ``queued``, or ``failed`` after the last attempt."""

        async def write(conn: Connection) -> dict[str, int]:
            rows = await conn.fetch(
                "WITH expired AS (SELECT id FROM tests WHERE status = 'running'"
                " AND lease_until < now() ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " UPDATE tests t SET"
                " status = CASE WHEN t.attempts >= t.max_attempts THEN 'failed' ELSE 'queued' END,"
                " error = CASE WHEN t.attempts >= t.max_attempts THEN 'gave up after '"
                " || t.attempts || ' attempts: the lease of ' || coalesce(t.claimed_by, '?')"
                " || ' expired (worker lost)' END,"
                " finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END,"
                " last_error = 'lease of ' || coalesce(t.claimed_by, '?') || ' expired',"
                " lease_token = NULL, lease_until = NULL, run_after = now()"
                " FROM expired WHERE t.id = expired.id"
                " RETURNING t.id, t.status, t.sensor_type, t.device_id, t.event_id,"
                " t.attempts, t.traceparent, t.error, t.finished_at",
                REAP_BATCH,
            )
            counts = {"queued": 0, "failed": 0}
            for row in rows:
                counts[row["status"]] += 1
                if row["status"] == "failed":
                    await enqueue_failed(conn, dict(row), row["error"], row["finished_at"])
            return counts

        return await self.db.run(write, transaction=True)

    async def depths(self) -> dict[str, Any]:
        """Queue and outbox depths (partial indexes keep these counts cheap)."""

        async def read(conn: Connection) -> Any:  # noqa: ANN401 - an asyncpg Record
            return await conn.fetchrow(
                "SELECT (SELECT count(*) FROM tests WHERE status = 'queued') AS queued,"
                " (SELECT count(*) FROM tests WHERE status = 'running') AS running,"
                " (SELECT extract(epoch FROM now() - min(created_at)) FROM tests"
                "  WHERE status = 'queued') AS oldest_queued_s,"
                " (SELECT count(*) FROM outbox WHERE status = 'pending') AS outbox_pending,"
                " (SELECT count(*) FROM outbox WHERE status = 'dead') AS outbox_dead,"
                " (SELECT extract(epoch FROM now() - min(dead_at)) FROM outbox"
                "  WHERE status = 'dead') AS outbox_oldest_dead_s"
            )

        row = await self.db.run(read)
        doc = dict(row)
        for key in ("oldest_queued_s", "outbox_oldest_dead_s"):
            oldest = doc[key]
            doc[key] = None if oldest is None else round(float(oldest), 3)
        return doc


def _job_row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "sensor_type": job.sensor_type,
        "device_id": job.device_id,
        "event_id": job.event_id,
        "attempts": job.attempts,
        "traceparent": tracing.current_traceparent(job.traceparent),
    }

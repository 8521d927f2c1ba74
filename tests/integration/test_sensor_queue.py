"""The durable queue and the outbox against the real embedded PostgreSQL (no HTTP).

Claims are exclusive under concurrency, leases expire and are taken over, a stale lease
cannot complete, failures end ``failed`` after max_attempts, and outbox claims are disjoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from importlib.resources import files

import numpy as np
import pytest

from sensor_backend.core.db import Database
from sensor_backend.sensor.jobs import JobQueue, Outcome
from sensor_backend.sensor.outbox import Outbox
from sensor_backend.sensor.reading_blocks import HANDOFF, pack
from sensor_backend.sensor.repository import IdempotencyKeyReusedError, NewTest, TestRepository
from sensor_backend.sensor.specs import get_spec

pytestmark = pytest.mark.integration
SPEC = get_spec("temperature").model_dump(mode="json")


@pytest.fixture
async def db(fresh_db_dsn):
    database = Database(
        dsn=fresh_db_dsn,
        schema="sensor",
        migrations=files("sensor_backend.sensor").joinpath("migrations"),
        max_size=12,
    )
    await database.start()
    await database.wait_until_up(30)
    yield database
    await database.stop()


def new_test(*, key=None, fingerprint=b"f", max_attempts=3, values=None, device="dev-1"):
    return NewTest(
        sensor_type="pt100_class_a",
        device_id=device,
        source="simulate" if values is None else "readings",
        spec=SPEC,
        params={"simulate": {"n": 50, "seed": 1, "faults": []}},
        n_readings=50,
        submitted_by="alice",
        idempotency_key=key,
        fingerprint=fingerprint,
        traceparent=None,
        max_attempts=max_attempts,
        values=pack(values),
    )


async def submit_many(db, count, **kw):
    repo = TestRepository(db)
    return [(await repo.submit(new_test(**kw))).test_id for _ in range(count)]


OUTCOME = Outcome("pass", [], {"verdict": "pass"}, {"count": 50}, 1.0)
LONG_S = 30.0  # a lease or backoff no test waits out: the tests move the clock columns


async def _set_past(db, column, test_id):
    """Put ``column`` of one test a second in PostgreSQL's past (the queue compares to now())."""
    assert column in {"lease_until", "run_after"}

    async def write(conn):
        return await conn.execute(
            f"UPDATE tests SET {column} = now() - interval '1 second' WHERE id = $1",  # noqa: S608
            test_id,
        )

    assert await db.run(write) == "UPDATE 1"


async def expire_lease(db, test_id):
    """The lease runs out now, as when its worker stopped renewing it (no sleeping)."""
    await _set_past(db, "lease_until", test_id)


async def make_due(db, test_id):
    """A retry's backoff is over now."""
    await _set_past(db, "run_after", test_id)


async def lease_left_s(db, test_id):
    async def read(conn):
        return await conn.fetchval(
            "SELECT extract(epoch FROM lease_until - now()) FROM tests WHERE id = $1", test_id
        )

    return float(await db.run(read))


async def outbox_rows(db, test_id):
    async def read(conn):
        return await conn.fetch("SELECT event_type, event FROM outbox WHERE test_id = $1", test_id)

    return await db.run(read)


async def test_concurrent_claims_never_share_a_job(db):
    """Six workers claiming at once get every queued test exactly once, oldest first."""
    ids = await submit_many(db, 30)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    claimed = []

    async def worker(name):
        while (job := await queue.claim(name)) is not None:
            claimed.append(job.id)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(f"w{i}") for i in range(6)))
    assert sorted(claimed) == sorted(ids)
    assert len(set(claimed)) == len(ids)


async def test_claims_follow_submission_order(db):
    """One worker claims tests in the order they were submitted."""
    ids = await submit_many(db, 5)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    assert [(await queue.claim("w")).id for _ in ids] == ids
    assert await queue.claim("w") is None


async def test_completion_writes_result_and_one_event(db):
    """Completing stores the verdict and exactly one outbox event with the test's event id."""
    [test_id] = await submit_many(db, 1)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    job = await queue.claim("w")
    assert await queue.complete(job, OUTCOME)
    assert not await queue.complete(job, OUTCOME)  # already completed: the lease is gone
    detail = await TestRepository(db).get(test_id)
    assert (detail["status"], detail["verdict"], detail["attempts"]) == ("completed", "pass", 1)
    rows = await outbox_rows(db, test_id)
    assert len(rows) == 1
    event = json.loads(rows[0]["event"])
    assert event["id"] == detail["event"]["id"]
    assert (event["type"], event["subject"]) == ("sensor.test.completed", "dev-1")
    assert event["data"]["verdict"] == "pass"


async def test_expired_lease_is_taken_over_and_the_old_worker_cannot_finish(db):
    """After the lease runs out the reaper re-queues the test; its first worker is locked out."""
    [test_id] = await submit_many(db, 1)
    queue = JobQueue(db, lease_s=LONG_S, retry_base_s=0.01)
    first = await queue.claim("A")
    assert await queue.reap() == {"queued": 0, "failed": 0}  # lease still valid
    await expire_lease(db, test_id)
    assert await queue.reap() == {"queued": 1, "failed": 0}
    second = await queue.claim("B")
    assert (second.id, second.attempts) == (test_id, 2)
    assert not await queue.heartbeat(first)
    assert not await queue.complete(first, OUTCOME)
    assert await queue.complete(second, OUTCOME)
    assert len(await outbox_rows(db, test_id)) == 1


async def test_heartbeat_keeps_the_lease(db):
    """A worker that renews its lease keeps the test past the original lease time."""
    [test_id] = await submit_many(db, 1)
    queue = JobQueue(db, lease_s=LONG_S, retry_base_s=0.01)
    job = await queue.claim("A")
    for _ in range(3):
        await expire_lease(db, test_id)  # the lease time it had is over...
        assert await queue.heartbeat(job)  # ...but the worker renews it before the reaper runs
        assert await lease_left_s(db, test_id) > LONG_S - 5
        assert await queue.reap() == {"queued": 0, "failed": 0}
    assert await queue.complete(job, OUTCOME)


async def test_a_test_that_keeps_failing_ends_failed_with_the_reason(db):
    """Three failed attempts: queued twice with backoff, then failed, with a failed event."""
    [test_id] = await submit_many(db, 1, max_attempts=3)
    queue = JobQueue(db, lease_s=30, retry_base_s=LONG_S)
    statuses = []
    for attempt in range(3):
        if attempt:
            assert await queue.claim("w") is None  # the retry waits out its backoff...
            await make_due(db, test_id)  # ...which ends here, not after a sleep
        job = await queue.claim("w")
        statuses.append(await queue.fail_attempt(job, "boom", permanent=False))
    assert statuses == ["queued", "queued", "failed"]
    detail = await TestRepository(db).get(test_id)
    assert detail["status"] == "failed"
    assert detail["error"] == "gave up after 3 attempts: boom"
    [row] = await outbox_rows(db, test_id)
    assert row["event_type"] == "sensor.test.failed"
    assert await queue.claim("w") is None


async def test_invalid_input_fails_at_once(db):
    """A permanent error (input that can never be analysed) is not retried."""
    [test_id] = await submit_many(db, 1, max_attempts=3)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    job = await queue.claim("w")
    assert await queue.fail_attempt(job, "too short", permanent=True) == "failed"
    detail = await TestRepository(db).get(test_id)
    assert (detail["error"], detail["attempts"]) == ("invalid input: too short", 1)


async def test_a_test_whose_worker_always_dies_ends_failed(db):
    """A poison test whose lease expires on every attempt ends failed, not in a loop."""
    [test_id] = await submit_many(db, 1, max_attempts=2)
    queue = JobQueue(db, lease_s=LONG_S, retry_base_s=0.01)
    outcomes = []
    for worker in ("A", "B"):
        assert (await queue.claim(worker)).id == test_id
        await expire_lease(db, test_id)  # the worker died: nobody renews the lease
        outcomes.append(await queue.reap())
    assert outcomes == [{"queued": 1, "failed": 0}, {"queued": 0, "failed": 1}]
    detail = await TestRepository(db).get(test_id)
    assert detail["status"] == "failed"
    assert "lease of B expired (worker lost)" in detail["error"]


async def test_release_hands_a_test_back_without_using_an_attempt(db):
    """A graceful shutdown returns its test to the queue with its attempt count restored."""
    [test_id] = await submit_many(db, 1)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    await queue.release(await queue.claim("A"))
    job = await queue.claim("B")
    assert (job.id, job.attempts) == (test_id, 1)


@pytest.mark.parametrize("handed_off", [True, False], ids=["same-process", "from-database"])
@pytest.mark.parametrize("count", [1, 1000, 2501])
async def test_readings_round_trip_as_float64(db, handed_off, count):
    """Stored readings come back bit for bit, handed over in-process or read back in blocks."""
    rng = np.random.default_rng(count)
    values, reference = rng.normal(20, 0.1, count), rng.normal(20, 0.01, count)
    new = dataclasses.replace(new_test(values=values), reference=pack(reference))
    await TestRepository(db).submit(new)
    if not handed_off:
        HANDOFF.discard(new.id)  # as when another replica claims it
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    readings = await queue.readings(await queue.claim("w"))
    assert np.array_equal(readings.values, values)
    assert readings.timestamps is None
    assert np.array_equal(readings.reference, reference)
    assert HANDOFF.take(new.id) is None  # taken once, or never kept


async def test_a_claimed_job_holds_the_spec_and_params_as_submitted(db):
    """What a worker analyses ahead from the submission equals what the claimed row holds."""
    new = new_test(values=np.arange(10.0))
    new = dataclasses.replace(new, params={"readings": {"reference": False}, "x": 0.1})
    await TestRepository(db).submit(new)
    job = await JobQueue(db, lease_s=30, retry_base_s=0.01).claim("w")
    assert (job.spec, job.source, job.params) == (new.spec, new.source, new.params)


async def test_readings_with_a_missing_block_are_an_error_not_zeros(db):
    """A series whose stored blocks leave a gap is refused, never filled in."""
    new = new_test(values=np.arange(2500.0))
    await TestRepository(db).submit(new)
    HANDOFF.discard(new.id)

    async def drop_block(conn):
        await conn.execute(
            "DELETE FROM test_reading_blocks WHERE test_id = $1 AND block = 1", new.id
        )

    await db.run(drop_block)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    with pytest.raises(LookupError, match="do not fit"):
        await queue.readings(await queue.claim("w"))


async def test_idempotency_key_replays_and_refuses_other_bodies(db):
    """Concurrent submissions with one key create one test; another body is refused."""
    repo = TestRepository(db)
    results = await asyncio.gather(*(repo.submit(new_test(key="k1")) for _ in range(5)))
    assert sum(r.created for r in results) == 1
    assert len({r.test_id for r in results}) == 1
    with pytest.raises(IdempotencyKeyReusedError):
        await repo.submit(new_test(key="k1", fingerprint=b"other"))
    assert (await repo.submit(new_test(key="k2"))).created


async def test_outbox_claims_are_disjoint_and_leased(db):
    """Two relays claim disjoint batches; leased, sent and dead rows are not claimed again."""
    ids = await submit_many(db, 10)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    for _ in ids:
        assert await queue.complete(await queue.claim("w"), OUTCOME)
    outbox = Outbox(db, lease_s=30)
    first, second = await asyncio.gather(outbox.claim("r1", 6), outbox.claim("r2", 6))
    seqs = [r.seq for r in first + second]
    assert len(seqs) == len(set(seqs)) == 10
    assert await outbox.claim("r3", 10) == []  # all leased
    await outbox.release([first[0].seq], "later", delay_s=0.0)
    await outbox.mark_sent([r.seq for r in first[1:]])
    await outbox.mark_dead(second[0].seq, "422 refused")
    again = await outbox.claim("r3", 10)
    assert [r.seq for r in again] == [first[0].seq]
    assert again[0].attempts == 2


async def _completed_outbox(db, count):
    ids = await submit_many(db, count)
    queue = JobQueue(db, lease_s=30, retry_base_s=0.01)
    for _ in ids:
        assert await queue.complete(await queue.claim("w"), OUTCOME)

    async def sizes(conn):
        return await conn.fetch("SELECT octet_length(event::text) AS n FROM outbox ORDER BY seq")

    return [row["n"] for row in await db.run(sizes)]


async def test_outbox_claims_are_bounded_by_bytes_and_always_take_the_oldest(db):
    """Outbox claims fit the batch byte limit, but always take the oldest row.

    The limit is on the JSON array of the events; a bound smaller than one event still
    claims that one, so an oversized event cannot block the outbox.
    """
    sizes = await _completed_outbox(db, 8)
    outbox = Outbox(db, lease_s=30)
    # Room for exactly three events framed as an array: "[" e1 "," e2 "," e3 "]".
    bound = sum(sizes[:3]) + 4
    first = await outbox.claim("r1", 10, max_bytes=bound)
    assert len(first) == 3
    assert [r.seq for r in first] == sorted(r.seq for r in first)
    # The compact encoding the relay sends is never larger than the bound measured.
    sent = 2 + sum(len(json.dumps(r.event, separators=(",", ":")).encode()) + 1 for r in first)
    assert sent - 1 <= bound
    alone = await outbox.claim("r2", 10, max_bytes=10)
    assert len(alone) == 1
    assert alone[0].seq == first[-1].seq + 1
    rest = await outbox.claim("r3", 2, max_bytes=10_000_000)
    assert len(rest) == 2  # the count bound


async def test_outbox_dead_letters_replay_and_discard(db):
    """Outbox dead letters: listed, inspected, replayed (record continued), discarded.

    A dead row keeps its reason and status; replay makes it claimable again and a second
    death continues its record; discard keeps the row as discarded, no longer listed.
    """
    await _completed_outbox(db, 2)
    outbox = Outbox(db, lease_s=30)
    [row, other] = await outbox.claim("r", 10)
    await outbox.mark_dead(row.seq, "refused by the event service: 413 too large", status=413)
    await outbox.mark_dead(other.seq, "refused by the event service: 422", status=422)
    listed = await outbox.dead_letters(limit=1, before=None)
    assert [d["id"] for d in listed] == [other.event_id]
    older = await outbox.dead_letters(limit=5, before=listed[0]["cursor"])
    assert [d["id"] for d in older] == [row.event_id]
    assert (older[0]["status"], older[0]["times_dead"]) == (413, 1)
    detail = await outbox.dead_letter(uuid.UUID(row.event_id))
    assert detail is not None
    assert detail["event"]["id"] == row.event_id
    assert detail["where"] == "sensor-outbox"

    assert await outbox.replay(uuid.UUID(row.event_id))
    assert not await outbox.replay(uuid.UUID(row.event_id))  # pending now, not dead
    [again] = await outbox.claim("r", 10)
    assert again.seq == row.seq
    await outbox.mark_dead(again.seq, "refused again: 413", status=413)
    second = await outbox.dead_letter(uuid.UUID(row.event_id))
    assert second is not None
    assert (second["times_dead"], second["reason"]) == (2, "refused again: 413")

    assert await outbox.discard(uuid.UUID(other.event_id), by="admin")
    assert not await outbox.discard(uuid.UUID(other.event_id), by="admin")
    assert [d["id"] for d in await outbox.dead_letters(limit=10, before=None)] == [row.event_id]
    assert await outbox.dead_letter(uuid.UUID(other.event_id)) is None

    async def discarded(conn):
        return await conn.fetchrow(
            "SELECT status, discarded_by FROM outbox WHERE seq = $1", other.seq
        )

    assert tuple(await db.run(discarded)) == ("discarded", "admin")
    assert await outbox.dead_letter(uuid.UUID("00000000-0000-4000-8000-000000000000")) is None


async def test_outbox_replay_oldest_makes_dead_rows_pending_in_order(db):
    await _completed_outbox(db, 3)
    outbox = Outbox(db, lease_s=30)
    rows = await outbox.claim("r", 10)
    for row in rows:
        await outbox.mark_dead(row.seq, "refused", status=422)
    assert await outbox.replay_oldest(2) == [r.event_id for r in rows[:2]]
    assert [r.seq for r in await outbox.claim("r", 10)] == [r.seq for r in rows[:2]]
    assert [d["id"] for d in await outbox.dead_letters(limit=10, before=None)] == [rows[2].event_id]

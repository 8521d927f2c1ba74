"""The durable spool and its drainer against a real SQLite file in tmp_path (no mocks)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from polling import wait_until

from sensor_backend.core.clock import ManualClock
from sensor_backend.core.drainer import Drainer
from sensor_backend.core.spool import (
    Spool,
    SpooledItem,
    SpoolFullError,
    SpoolInUseError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def _items(keys: range | list[int], size: int = 4) -> list[tuple[str, bytes]]:
    return [(f"k{i}", str(i).encode().ljust(size, b".")) for i in keys]


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    """An open spool in tmp_path, closed after the test."""
    s = Spool(tmp_path / "spool", name="events")
    await s.open()
    yield s
    await s.close()


class Recorder:
    """A fake downstream: records what it received and delivers per a script."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.calls = 0
        self.fail_first = 0
        self.deliver_at_most: int | None = None
        self.seen_attempts: list[int] = []
        self.backoffs: list[object] = []
        self.drainer: Drainer | None = None

    async def __call__(self, batch: list[SpooledItem]) -> list[int]:
        self.calls += 1
        self.seen_attempts.append(batch[0].attempts)
        if self.drainer is not None:
            self.backoffs.append(self.drainer.snapshot()["last_backoff_s"])
        if self.calls <= self.fail_first:
            raise ConnectionError(f"broker down (call {self.calls})")
        delivered = batch if self.deliver_at_most is None else batch[: self.deliver_at_most]
        self.received.extend(item.key for item in delivered)
        return [item.seq for item in delivered]


# -- spool ---------------------------------------------------------------------------------


async def test_append_peek_ack_in_order(spool: Spool) -> None:
    """Items come back oldest first with increasing seqs; ack removes exactly those."""
    assert await spool.append(_items(range(3))) == [True, True, True]
    assert await spool.append(_items(range(3, 5))) == [True, True]
    items = await spool.peek(10)
    assert [i.key for i in items] == ["k0", "k1", "k2", "k3", "k4"]
    assert [i.seq for i in items] == sorted(i.seq for i in items)
    assert items[0].payload == b"0..."
    assert items[0].attempts == 0
    assert [i.key for i in await spool.peek(2)] == ["k0", "k1"]
    await spool.ack([items[0].seq, items[1].seq])
    assert [i.key for i in await spool.peek(10)] == ["k2", "k3", "k4"]
    assert (spool.depth, spool.bytes_used) == (3, 12)


async def test_empty_inputs_are_no_ops(spool: Spool) -> None:
    """Empty batches, empty ack lists and a zero peek limit do nothing."""
    assert await spool.append([]) == []
    await spool.ack([])
    await spool.record_attempt([])
    assert await spool.peek(0) == []
    assert spool.depth == 0


async def test_ack_ignores_unknown_and_repeated_seqs(spool: Spool) -> None:
    """Acking a seq twice or one that never existed leaves the totals exact."""
    await spool.append(_items(range(2)))
    first = (await spool.peek(1))[0]
    await spool.ack([first.seq, first.seq, 999_999])
    await spool.ack([first.seq])
    assert (spool.depth, spool.bytes_used) == (1, 4)


async def test_duplicate_keys_are_reported_and_not_stored_twice(spool: Spool) -> None:
    """A key already spooled, or repeated within one batch, is False and stored once."""
    assert await spool.append([("a", b"1"), ("b", b"2")]) == [True, True]
    assert await spool.append([("b", b"X"), ("c", b"3"), ("c", b"Y"), ("a", b"Z")]) == [
        False,
        True,
        False,
        False,
    ]
    items = await spool.peek(10)
    assert [(i.key, i.payload) for i in items] == [("a", b"1"), ("b", b"2"), ("c", b"3")]
    assert (spool.depth, spool.bytes_used) == (3, 3)
    assert await spool.contains("c")
    assert not await spool.contains("d")


async def test_acked_key_can_be_spooled_again(spool: Spool) -> None:
    """Dedup covers what is in the spool, not what was already delivered."""
    await spool.append([("a", b"1")])
    await spool.ack([(await spool.peek(1))[0].seq])
    assert not await spool.contains("a")
    assert await spool.append([("a", b"1")]) == [True]


async def test_full_by_count_stores_nothing_of_the_batch(tmp_path: Path) -> None:
    """A batch that would exceed max_items raises SpoolFullError and stores none of it."""
    async with Spool(tmp_path, max_items=5, full_retry_after_s=7.0) as spool:
        await spool.append(_items(range(3)))
        with pytest.raises(SpoolFullError) as info:
            await spool.append(_items(range(3, 6)))
        assert (info.value.depth, info.value.bytes, info.value.retry_after_s) == (3, 12, 7.0)
        assert [i.key for i in await spool.peek(10)] == ["k0", "k1", "k2"]
        assert not await spool.contains("k3")
        assert await spool.append(_items(range(3, 5))) == [True, True]
        assert spool.depth == 5


async def test_full_by_bytes_stores_nothing_of_the_batch(tmp_path: Path) -> None:
    """A batch that would exceed max_bytes raises SpoolFullError and stores none of it."""
    async with Spool(tmp_path, max_bytes=10) as spool:
        await spool.append([("a", b"12345")])
        with pytest.raises(SpoolFullError) as info:
            await spool.append([("b", b"123"), ("c", b"123")])
        assert (info.value.depth, info.value.bytes) == (1, 5)
        assert [i.key for i in await spool.peek(10)] == ["a"]
        assert spool.bytes_used == 5
        assert await spool.append([("b", b"12345")]) == [True]
        assert spool.bytes_used == 10


async def test_duplicates_do_not_count_against_the_bounds(tmp_path: Path) -> None:
    """A full spool still answers a batch of duplicates (nothing new to store)."""
    async with Spool(tmp_path, max_items=2) as spool:
        await spool.append(_items(range(2)))
        assert await spool.append(_items([0, 1, 1])) == [False, False, False]
        with pytest.raises(SpoolFullError):
            await spool.append(_items([1, 2]))


async def test_totals_order_and_attempts_survive_reopen(tmp_path: Path) -> None:
    """Reopening loads depth, bytes, oldest time, order and attempts from the file."""
    clock = ManualClock(start_time=1_000.0)
    async with Spool(tmp_path, clock=clock) as spool:
        await spool.append(_items(range(4), size=10))
        clock.advance(5)
        await spool.append(_items(range(4, 6), size=3))
        first = await spool.peek(2)
        await spool.ack([first[0].seq])
        await spool.record_attempt([first[1].seq])
        await spool.record_attempt([first[1].seq])
        before = await spool.peek(10)
    async with Spool(tmp_path, clock=clock) as again:
        assert (again.depth, again.bytes_used) == (5, 3 * 10 + 2 * 3)
        assert await again.peek(10) == before
        assert before[0].attempts == 2
        assert again.oldest_created_at == 1_000.0


async def test_seqs_are_never_reused(tmp_path: Path) -> None:
    """After the spool was emptied (and reopened) new items get higher seqs."""
    async with Spool(tmp_path) as spool:
        await spool.append(_items(range(3)))
        last = (await spool.peek(10))[-1].seq
        await spool.ack([i.seq for i in await spool.peek(10)])
    async with Spool(tmp_path) as spool:
        assert spool.depth == 0
        await spool.append(_items([9]))
        assert (await spool.peek(1))[0].seq > last


async def test_record_attempt_increments(spool: Spool) -> None:
    """record_attempt adds one per call to exactly the given items."""
    await spool.append(_items(range(3)))
    seqs = [i.seq for i in await spool.peek(3)]
    await spool.record_attempt(seqs[:2])
    await spool.record_attempt(seqs[:1])
    assert [i.attempts for i in await spool.peek(3)] == [2, 1, 0]


async def test_oldest_age_and_snapshot(tmp_path: Path) -> None:
    """The oldest item's age follows the clock and moves on when it is acked."""
    clock = ManualClock(start_time=100.0)
    async with Spool(tmp_path, max_items=10, max_bytes=1000, clock=clock) as spool:
        assert spool.oldest_age_s() is None
        await spool.append([("a", b"xx")])
        clock.advance(3)
        await spool.append([("b", b"y")])
        clock.advance(2)
        assert spool.oldest_age_s() == 5.0
        assert spool.oldest_age_s(now=101.0) == 1.0
        await spool.ack([(await spool.peek(1))[0].seq])
        assert spool.oldest_age_s() == 2.0
        snap = spool.snapshot()
        assert snap["depth"] == 1
        assert snap["bytes"] == 1
        assert (snap["max_items"], snap["max_bytes"]) == (10, 1000)
        assert snap["path"] == str(tmp_path / "spool.sqlite3")
        assert snap["oldest_age_s"] == 2.0


async def test_pragmas_wal_and_synchronous_full(spool: Spool) -> None:
    """The connection runs in WAL mode with synchronous=FULL and an exclusive lock."""

    def read() -> tuple[str, int, str]:
        conn = spool._require_conn()
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
            conn.execute("PRAGMA locking_mode").fetchone()[0],
        )

    assert await spool._run(read) == ("wal", 2, "exclusive")
    assert spool.file.name == "events.sqlite3"


async def test_second_open_of_same_file_is_refused(spool: Spool) -> None:
    """Another Spool on the same file gets SpoolInUseError (totals would go wrong)."""
    other = Spool(spool.path, name="events", lock_timeout_s=0.05)
    with pytest.raises(SpoolInUseError):
        await other.open()
    assert not other.is_open


async def test_closed_spool_refuses_work_and_close_is_idempotent(tmp_path: Path) -> None:
    """Operations before open or after close raise; closing twice is fine."""
    spool = Spool(tmp_path)
    with pytest.raises(RuntimeError, match="not open"):
        await spool.append(_items(range(1)))
    await spool.open()
    with pytest.raises(RuntimeError, match="already open"):
        await spool.open()
    await spool.close()
    await spool.close()
    with pytest.raises(RuntimeError, match="not open"):
        await spool.peek(1)


async def test_concurrent_appends_keep_submission_order(spool: Spool) -> None:
    """Appends started concurrently are stored in the order they were made."""
    await asyncio.gather(*(spool.append(_items([i])) for i in range(50)))
    assert [i.key for i in await spool.peek(100)] == [f"k{i}" for i in range(50)]


async def test_large_batches_beyond_parameter_chunks(spool: Spool) -> None:
    """Batches and acks larger than one statement's parameter chunk work."""
    assert all(await spool.append(_items(range(1200), size=1)))
    assert (await spool.append(_items(range(1199, 1201), size=1))) == [False, True]
    seqs = [i.seq for i in await spool.peek(1201)]
    await spool.record_attempt(seqs)
    await spool.ack(seqs[:1100])
    assert spool.depth == 101
    assert (await spool.peek(1))[0].attempts == 1


async def test_cancelled_append_keeps_totals_exact(spool: Spool) -> None:
    """Cancelling the awaiting task does not desynchronise the totals from the file."""
    task = asyncio.create_task(spool.append(_items(range(5))))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    items = await spool.peek(10)
    assert spool.depth == len(items)
    assert spool.bytes_used == 4 * len(items)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_items": 0}, "max_items"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"name": "../evil"}, "name"),
        ({"full_retry_after_s": float("nan")}, "full_retry_after_s"),
    ],
)
def test_constructor_rejects_bad_settings(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    """Nonsensical bounds or a path-like name fail at construction."""
    with pytest.raises(ValueError, match=message):
        Spool(tmp_path, **kwargs)  # type: ignore[arg-type]


async def test_non_str_key_is_rejected(spool: Spool) -> None:
    """Keys must be str; nothing of the batch is stored."""
    with pytest.raises(TypeError):
        await spool.append([("a", b"1"), (2, b"2")])  # type: ignore[list-item]
    assert spool.depth == 0


# -- drainer -------------------------------------------------------------------------------


def _drainer(spool: Spool, send: Recorder, **kwargs: object) -> Drainer:
    options: dict[str, object] = {
        "batch": 4,
        "idle_s": 0.01,
        "base_backoff_s": 0.001,
        "max_backoff_s": 0.004,
        "rng": random.Random(1),  # noqa: S311 (jitter, seeded for the test)
    }
    options.update(kwargs)
    drainer = Drainer(spool, send, **options)  # type: ignore[arg-type]
    send.drainer = drainer
    return drainer


async def test_drainer_delivers_everything_in_order(spool: Spool) -> None:
    """All items arrive oldest first over several batches and the spool empties."""
    await spool.append(_items(range(10)))
    send = Recorder()
    drainer = _drainer(spool, send)
    await drainer.start()
    await wait_until(lambda: spool.depth == 0)
    await drainer.stop()
    assert send.received == [f"k{i}" for i in range(10)]
    assert drainer.snapshot()["delivered"] == 10
    assert drainer.snapshot()["failures"] == 0
    assert not drainer.running


async def test_drainer_partial_delivery_keeps_the_rest_in_order(spool: Spool) -> None:
    """When send delivers only a prefix, the rest is sent next round, order intact."""
    await spool.append(_items(range(10)))
    send = Recorder()
    send.deliver_at_most = 3
    drainer = _drainer(spool, send, batch=10)
    await drainer.start()
    await wait_until(lambda: spool.depth == 0)
    await drainer.stop()
    assert send.received == [f"k{i}" for i in range(10)]
    assert send.calls == 4
    assert drainer.failures == 0


async def test_drainer_retries_after_exceptions_with_backoff(spool: Spool) -> None:
    """A failing send is retried with growing, capped, jittered delays; attempts count up."""
    await spool.append(_items(range(3)))
    send = Recorder()
    send.fail_first = 5
    drainer = _drainer(spool, send)
    await drainer.start()
    await wait_until(lambda: spool.depth == 0)
    await drainer.stop()
    assert send.received == ["k0", "k1", "k2"]
    assert send.seen_attempts == [0, 1, 2, 3, 4, 5]
    snap = drainer.snapshot()
    assert snap["failures"] == 5
    assert snap["consecutive_failures"] == 0
    assert "broker down (call 5)" in str(snap["last_error"])
    assert snap["last_error_at"] is not None
    delays = [float(d) for d in send.backoffs[1:]]  # type: ignore[arg-type]
    ceilings = [0.001, 0.002, 0.004, 0.004, 0.004]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


async def test_retry_now_cuts_a_long_backoff_short(spool: Spool) -> None:
    """After a failure with a 30 s backoff, retry_now() (the service is back) sends at once."""
    await spool.append(_items(range(2)))
    send = Recorder()
    send.fail_first = 1
    drainer = _drainer(spool, send, base_backoff_s=30.0, max_backoff_s=30.0)
    await drainer.start()
    await wait_until(lambda: send.calls == 1)
    await asyncio.sleep(0.05)
    assert spool.depth == 2  # backing off
    drainer.retry_now()
    await wait_until(lambda: spool.depth == 0, timeout_s=2.0)
    await drainer.stop()
    assert send.received == ["k0", "k1"]


def test_backoff_grows_exponentially_and_is_capped() -> None:
    """The n-th consecutive failure waits within [0.5, 1] x min(cap, base * 2**(n-1))."""
    drainer = Drainer(
        Spool(Path("unused")),
        Recorder(),
        base_backoff_s=0.1,
        max_backoff_s=10.0,
        rng=random.Random(3),  # noqa: S311 (jitter, seeded for the test)
    )
    for failures, ceiling in [(1, 0.1), (2, 0.2), (5, 1.6), (8, 10.0), (10_000, 10.0)]:
        drainer.consecutive_failures = failures
        for _ in range(20):
            assert ceiling / 2 <= drainer._backoff_s() <= ceiling


async def test_drainer_counts_delivering_nothing_as_failure(spool: Spool) -> None:
    """A send that returns no seqs (or only foreign ones) backs off like an exception."""
    await spool.append(_items(range(2)))
    calls: list[int] = []

    async def send(batch: list[SpooledItem]) -> list[int]:
        calls.append(len(batch))
        return [] if len(calls) == 1 else [10_000] if len(calls) == 2 else [i.seq for i in batch]

    drainer = Drainer(spool, send, idle_s=0.01, base_backoff_s=0.001, max_backoff_s=0.002)
    await drainer.start()
    await wait_until(lambda: spool.depth == 0)
    await drainer.stop()
    assert drainer.failures == 2
    assert drainer.delivered == 2
    assert "delivered none of 2 items" in str(drainer.last_error)


async def test_drainer_acks_exactly_the_returned_seqs(spool: Spool) -> None:
    """A non-prefix answer acks exactly those seqs; the skipped one is sent again."""
    await spool.append(_items(range(3)))
    batches: list[list[str]] = []

    async def send(batch: list[SpooledItem]) -> list[int]:
        batches.append([i.key for i in batch])
        return [i.seq for i in batch if i.key != "k1" or len(batches) > 1]

    drainer = Drainer(spool, send, idle_s=0.01)
    await drainer.start()
    await wait_until(lambda: spool.depth == 0)
    await drainer.stop()
    assert batches == [["k0", "k1", "k2"], ["k1"]]
    assert drainer.delivered == 3


async def test_drainer_stops_promptly_during_backoff(spool: Spool) -> None:
    """stop() interrupts a long backoff instead of waiting it out."""
    await spool.append(_items(range(1)))
    send = Recorder()
    send.fail_first = 1_000
    drainer = _drainer(spool, send, base_backoff_s=60.0, max_backoff_s=60.0)
    await drainer.start()
    await wait_until(lambda: drainer.failures == 1)
    started = time.monotonic()
    await drainer.stop()
    assert time.monotonic() - started < 1.0
    assert not drainer.running
    assert spool.depth == 1


async def test_drainer_stop_cancels_a_hung_send_and_keeps_the_items(spool: Spool) -> None:
    """A send that never returns is cancelled after the stop timeout; nothing is acked."""
    await spool.append(_items(range(2)))
    entered = asyncio.Event()

    async def hang(batch: list[SpooledItem]) -> list[int]:
        entered.set()
        await asyncio.sleep(3600)
        return [i.seq for i in batch]

    drainer = Drainer(spool, hang, idle_s=0.01)
    await drainer.start()
    await entered.wait()
    await drainer.stop(timeout_s=0.05)
    assert not drainer.running
    assert spool.depth == 2
    await drainer.stop()


async def test_wake_triggers_a_prompt_drain(spool: Spool) -> None:
    """With a long idle sleep, wake() after an append delivers at once."""
    send = Recorder()
    drainer = _drainer(spool, send, idle_s=30.0)
    await drainer.start()
    await wait_until(lambda: drainer.rounds >= 1)
    await asyncio.sleep(0.02)
    await spool.append(_items(range(2)))
    assert spool.depth == 2  # no wake yet: still idle
    started = time.monotonic()
    drainer.wake()
    await wait_until(lambda: spool.depth == 0, timeout_s=2.0)
    assert time.monotonic() - started < 1.0
    await drainer.stop()
    assert send.received == ["k0", "k1"]


async def test_drainer_polls_after_idle_without_wake(spool: Spool) -> None:
    """Items appended without wake() are still picked up after idle_s."""
    send = Recorder()
    drainer = _drainer(spool, send, idle_s=0.02)
    await drainer.start()
    await spool.append(_items(range(1)))
    await wait_until(lambda: spool.depth == 0)
    await drainer.stop()
    assert send.received == ["k0"]


async def test_drainer_survives_spool_errors(tmp_path: Path) -> None:
    """A spool failure (here: closed under it) is a failed round, not a dead task."""
    spool = Spool(tmp_path)
    await spool.open()
    send = Recorder()
    drainer = _drainer(spool, send)
    await drainer.start()
    await spool.close()
    await wait_until(lambda: drainer.failures >= 2)
    assert drainer.running
    assert "peek failed" in str(drainer.last_error)
    await drainer.stop()


async def test_drainer_start_and_stop_are_idempotent(spool: Spool) -> None:
    """Starting twice runs one task; stopping twice (or before start) is fine."""
    drainer = _drainer(spool, Recorder())
    await drainer.stop()
    await drainer.start()
    task = drainer._task
    await drainer.start()
    assert drainer._task is task
    await drainer.stop()
    await drainer.stop()
    assert drainer.snapshot()["running"] is False

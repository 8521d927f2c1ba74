"""The event journal: kept until confirmed, resent when the broker lost it (real SQLite file)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from polling import wait_until

from sensor_backend.core.clock import ManualClock
from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.drainer import Drainer
from sensor_backend.core.journal import Journal, RowState
from sensor_backend.core.spool import Spool, SpooledItem, SpoolFullError
from sensor_backend.events.confirmer import Confirmer
from sensor_backend.events.publisher import Publisher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


def _items(keys: range | list[int]) -> list[tuple[str, bytes]]:
    return [(f"k{i}", f"payload-{i}".encode()) for i in keys]


@pytest.fixture
def manual() -> ManualClock:
    return ManualClock(start_monotonic=100.0, start_time=1_000.0)


@pytest.fixture
async def journal(tmp_path: Path, manual: ManualClock) -> AsyncIterator[Journal]:
    j = Journal(tmp_path, name="events", resend_after_s=10.0, max_resend_after_s=40.0, clock=manual)
    await j.open()
    yield j
    await j.close()


async def _produce_all(journal: Journal) -> list[SpooledItem]:
    """What the drainer does: peek the pending rows and ack them as produced."""
    items = await journal.peek(1000)
    await journal.ack([i.seq for i in items])
    return items


async def test_produced_rows_stay_until_confirmed(journal: Journal) -> None:
    """An acked (produced) row is kept; only confirm removes it, also from the file."""
    await journal.append(_items(range(3)))
    assert journal.backlog == 3
    items = await _produce_all(journal)
    assert [i.key for i in items] == ["k0", "k1", "k2"]
    assert (journal.backlog, journal.unconfirmed, journal.depth) == (0, 3, 3)
    assert await journal.peek(10) == []
    assert journal.confirm(["k1", "unknown", "k1"]) == 1
    assert journal.unconfirmed == 2
    await journal.close()
    await journal.open()
    # After a restart every unconfirmed row is produced again, in order.
    assert [i.key for i in await journal.peek(10)] == ["k0", "k2"]
    assert journal.recovered_at_open == 2


async def test_claimed_rows_are_left_to_their_producer(journal: Journal) -> None:
    """claim=True rows are not handed to the drainer; release puts them back in seq order."""
    await journal.append(_items([0]))
    await journal.append(_items([1, 2]), claim=True)
    await journal.append(_items([3]))
    assert [i.key for i in await journal.peek(10)] == ["k0", "k3"]
    assert journal.count(RowState.INFLIGHT) == 2
    assert journal.mark_sent(["k1"], journal.epoch) == 1
    assert journal.release(["k2"]) == 1
    assert [i.key for i in await journal.peek(10)] == ["k0", "k2", "k3"]
    assert journal.state_of("k1") is RowState.PRODUCED


async def test_an_ack_from_a_broker_that_lost_its_data_does_not_count(journal: Journal) -> None:
    """A send that started before resend_all is not trusted: the rows stay PENDING."""
    await journal.append(_items([0]), claim=True)
    epoch = journal.epoch
    await journal.append(_items([1]))
    peeked = await journal.peek(10)
    journal.resend_all()  # the broker restarted empty while both sends were in flight
    assert journal.mark_sent(["k0"], epoch) == 0
    await journal.ack([i.seq for i in peeked])
    assert journal.state_of("k0") is RowState.PENDING
    assert [i.key for i in await journal.peek(10)] == ["k0", "k1"]


async def test_resend_all_requeues_every_produced_row_in_order(journal: Journal) -> None:
    """After the broker lost its data everything unconfirmed is produced again, in order."""
    await journal.append(_items(range(5)))
    await _produce_all(journal)
    journal.confirm(["k1"])
    await journal.append(_items([5]))  # pending already: queued behind the resends
    assert journal.resend_all() == 4
    assert [i.key for i in await journal.peek(10)] == ["k0", "k2", "k3", "k4", "k5"]
    await _produce_all(journal)
    assert journal.reproduced == 4
    assert (journal.requeued, journal.resend_rounds) == (4, 1)


async def test_overdue_rows_are_resent_with_a_growing_bound(
    journal: Journal, manual: ManualClock
) -> None:
    """Unconfirmed past resend_after_s: PENDING again; the next bound doubles (capped)."""
    await journal.append(_items([0]))
    await _produce_all(journal)
    manual.advance(9.9)
    assert journal.requeue_overdue() == 0
    manual.advance(0.1)
    assert journal.requeue_overdue() == 1
    await _produce_all(journal)
    manual.advance(19)
    assert journal.requeue_overdue() == 0
    manual.advance(1)
    assert journal.requeue_overdue() == 1
    await _produce_all(journal)
    await _produce_all(journal)
    manual.advance(39)
    assert journal.requeue_overdue() == 0
    manual.advance(1)
    assert journal.requeue_overdue() == 1  # 10, 20, 40, then capped at 40


async def test_unconfirmed_keys_by_age(journal: Journal, manual: ManualClock) -> None:
    """Pending rows always, produced ones after min_age, claimed ones never; oldest first."""
    await journal.append(_items([0, 1]))
    await _produce_all(journal)
    manual.advance(5)
    await journal.append(_items([2]))
    await _produce_all(journal)
    await journal.append(_items([3]), claim=True)
    await journal.append(_items([4]))
    assert journal.unconfirmed_keys(min_age_s=2, limit=10) == ["k0", "k1", "k4"]
    assert journal.unconfirmed_keys(min_age_s=0, limit=10) == ["k0", "k1", "k2", "k4"]
    assert journal.unconfirmed_keys(min_age_s=0, limit=2) == ["k0", "k1"]


async def test_oldest_unconfirmed_age(journal: Journal, manual: ManualClock) -> None:
    """The age follows the oldest unconfirmed row, whatever its state."""
    assert journal.oldest_unconfirmed_age_s() is None
    await journal.append(_items([0]))
    manual.advance(3)
    await journal.append(_items([1]))
    await _produce_all(journal)
    manual.advance(2)
    assert journal.oldest_unconfirmed_age_s() == 5.0
    journal.confirm(["k0"])
    assert journal.oldest_unconfirmed_age_s() == 2.0
    snap = journal.snapshot()
    assert (snap["unconfirmed"], snap["awaiting_confirmation"], snap["backlog"]) == (1, 1, 0)


async def test_full_journal_refuses_and_confirmation_frees_room(tmp_path: Path) -> None:
    """Bounded: a batch that does not fit stores nothing; confirming makes room."""
    async with Journal(tmp_path, max_items=3) as journal:
        await journal.append(_items(range(3)), claim=True)
        with pytest.raises(SpoolFullError):
            await journal.append(_items([3]))
        assert journal.unconfirmed == 3
        journal.confirm(["k0"])
        await asyncio.sleep(0.05)  # the deletion is written in the background
        assert await journal.append(_items([3])) == [True]


async def test_duplicate_of_an_unconfirmed_key(journal: Journal) -> None:
    """A key still in the journal is answered False and not stored twice."""
    await journal.append(_items([0]), claim=True)
    journal.mark_sent(["k0"], journal.epoch)
    assert await journal.append([("k0", b"again"), ("k1", b"new")]) == [False, True]
    assert journal.unconfirmed == 2


async def test_peek_within_bytes(journal: Journal) -> None:
    """Byte-bounded peeks stop before the limit, but always return the oldest row."""
    await journal.append([("a", b"x" * 10), ("b", b"y" * 10), ("c", b"z" * 10)])
    assert [i.key for i in await journal.peek_within(10, 25)] == ["a", "b"]
    assert [i.key for i in await journal.peek_within(10, 5)] == ["a"]


async def test_concurrent_appends_share_a_commit(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: 200 concurrent appends take far fewer transactions, order kept."""
    transactions = 0
    real = Spool._insert_sync

    def counting(self: Spool, *args: object) -> list[int]:
        nonlocal transactions
        transactions += 1
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Spool, "_insert_sync", counting)
    results = await asyncio.gather(*(journal.append(_items([i])) for i in range(200)))
    assert results == [[True]] * 200
    assert transactions < 20
    assert [i.key for i in await journal.peek(300)] == [f"k{i}" for i in range(200)]


async def test_group_commit_judges_each_batch_alone(tmp_path: Path) -> None:
    """In one group a batch that does not fit fails alone; a later one may still fit."""
    async with Spool(tmp_path, max_items=3) as spool:
        outcomes = await asyncio.gather(
            spool.append(_items([0, 1])),
            spool.append(_items([2, 3])),
            spool.append(_items([0, 4])),
            return_exceptions=True,
        )
        assert outcomes[0] == [True, True]
        assert isinstance(outcomes[1], SpoolFullError)
        assert outcomes[2] == [False, True]
        assert [i.key for i in await spool.peek(10)] == ["k0", "k1", "k4"]


async def test_drainer_over_a_journal_keeps_rows_until_confirmed(journal: Journal) -> None:
    """The ordinary Drainer produces journal rows; they stay until confirmed."""
    sent: list[str] = []

    async def send(items: list[SpooledItem]) -> list[int]:
        sent.extend(i.key for i in items)
        return [i.seq for i in items]

    drainer = Drainer(journal, send, batch=2, idle_s=0.01, name="test")
    await journal.append(_items(range(5)))
    await drainer.start()
    try:
        await wait_until(lambda: journal.backlog == 0)
        assert sent == [f"k{i}" for i in range(5)]
        assert journal.unconfirmed == 5
        journal.resend_all()
        drainer.wake()
        await wait_until(lambda: journal.backlog == 0)
        assert sent == [f"k{i}" for i in range(5)] * 2
    finally:
        await drainer.stop()


class FakeStore:
    def __init__(self) -> None:
        self.stored: set[str] = set()
        self.down = False
        self.queries: list[int] = []

    async def stored_ids(self, ids: list[str]) -> set[str]:
        if self.down:
            raise DatabaseUnavailable(1.0, "down")
        self.queries.append(len(ids))
        return self.stored & set(ids)


async def test_confirmer_asks_the_database_and_resends_only_when_it_answered(
    journal: Journal, manual: ManualClock
) -> None:
    """Rows another replica stored are confirmed in bulk; overdue ones resent if PG is up."""
    store = FakeStore()
    woken: list[bool] = []
    confirmer = Confirmer(journal, store, min_age_s=1.0, on_requeued=lambda: woken.append(True))  # type: ignore[arg-type]
    await journal.append(_items(range(4)))
    await _produce_all(journal)
    store.stored = {"k0", "k2"}
    assert await confirmer.run_once() == 0  # too young to ask about
    manual.advance(1)
    assert await confirmer.run_once() == 2
    assert store.queries == [4]
    assert journal.unconfirmed == 2
    confirmer.stored(["k1"])  # the local consumer's fast path
    assert journal.unconfirmed == 1
    manual.advance(10)
    store.down = True
    await confirmer.run_once()
    assert journal.state_of("k3") is RowState.PRODUCED  # PG down: nothing to learn, no resend
    assert confirmer.database_ok is False
    store.down = False
    await confirmer.run_once()
    assert journal.state_of("k3") is RowState.PENDING
    assert woken == [True]


def _meta(partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(partition=partition, offset=offset)


def test_publisher_notices_offsets_going_backwards() -> None:
    """A later send acknowledged at a lower offset of a partition: the broker lost data."""
    publisher = Publisher.__new__(Publisher)
    publisher._high = {}
    publisher.stats = SimpleNamespace(offset_regressions=0)  # type: ignore[assignment]
    lost: list[bool] = []
    publisher.on_broker_lost_data = [lambda: lost.append(True)]
    publisher._watch([0, 1, 2], [_meta(0, 10), _meta(1, 4), _meta(0, 11)])
    publisher._watch([4, 3], [_meta(0, 13), _meta(0, 12)])  # acks out of send order
    publisher._watch([5], [ConnectionError("down")])
    assert lost == []
    publisher._watch([6, 7], [_meta(1, 0), _meta(0, 14)])
    assert lost == [True]
    assert publisher.stats.offset_regressions == 1


async def test_journal_metrics(journal: Journal, manual: ManualClock) -> None:
    """/metrics shows the journal's rows by state, depth, oldest age and resends."""
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415

    from sensor_backend.events.metrics import JournalCollector  # noqa: PLC0415

    await journal.append(_items(range(3)))
    await _produce_all(journal)
    journal.resend_all()
    await journal.append(_items([3]), claim=True)
    manual.advance(4)
    confirmer = Confirmer(journal, FakeStore())  # type: ignore[arg-type]
    confirmer.stored(["k0"])
    registry = CollectorRegistry()
    registry.register(JournalCollector(SimpleNamespace(journal=journal, confirmer=confirmer)))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    for line in (
        'events_journal_rows{state="pending"} 2.0',
        'events_journal_rows{state="inflight"} 1.0',
        "events_journal_depth 3.0",
        "events_journal_oldest_unconfirmed_age_seconds 4.0",
        "events_journal_resend_rounds_total 1.0",
        'events_journal_confirmed_total{path="consumer"} 1.0',
    ):
        assert line in text, text


async def test_claimed_rows_never_reported_are_requeued(
    journal: Journal, manual: ManualClock
) -> None:
    """A claimed row whose producer never reported back (cancelled request) is not stuck."""
    await journal.append(_items([0]), claim=True)
    manual.advance(9)
    assert journal.requeue_overdue() == 0
    manual.advance(1)
    assert journal.requeue_overdue() == 1
    assert journal.state_of("k0") is RowState.PENDING
    assert journal.mark_sent(["k0"], journal.epoch) == 0  # too late: it is resent instead


async def test_check_room_counts_appends_not_yet_written(tmp_path: Path) -> None:
    """check_room refuses before any I/O, counting appends still in the group queue."""
    async with Journal(tmp_path, max_items=4, max_bytes=1000) as journal:
        journal.check_room(_items(range(4)))
        pending = asyncio.ensure_future(journal.append(_items(range(3))))
        await asyncio.sleep(0)
        with pytest.raises(SpoolFullError):
            journal.check_room(_items([3, 4]))
        await pending
        journal.check_room(_items([3]))
        with pytest.raises(SpoolFullError):
            journal.check_room([("big", b"x" * 1001)])


async def test_confirmations_ride_on_appends_and_the_file_agrees(tmp_path: Path) -> None:
    """Deletes written with concurrent appends (or alone when idle) leave exactly the rest."""

    async def one(i: int) -> None:
        key = f"k{i}"
        await journal.append([(key, b"x" * 10)], claim=True)
        journal.mark_sent([key], journal.epoch)
        if i % 3:
            journal.confirm([key])

    async with Journal(tmp_path) as journal:
        await asyncio.gather(*(one(i) for i in range(300)))
        await asyncio.sleep(0.05)  # the last deletions, written when appends went idle
        assert journal.depth == journal.unconfirmed == 100
        assert journal.bytes_used == 1000
    async with Journal(tmp_path) as journal:
        assert [i.key for i in await journal.peek(1000)] == [f"k{i}" for i in range(0, 300, 3)]

"""A durable dead-letter store: events a downstream refused for good, kept for an operator.

DESIGN.md §7: what cannot be delivered for a reason retrying will not fix (a 413 for a
single event, a 422) goes to a dead-letter store that is visible and replayable, never
dropped. The gateway keeps one beside its event spool (same directory, same durability:
SQLite in WAL mode with ``synchronous=FULL`` and an exclusive lock, see
:mod:`sensor_backend.core.spool` for why); its drainer records a refused event here
*before* acking it in the spool, so a crash in between leaves the event in both places
(it is then resent, refused again and recorded once more: the key is unique), never in
neither.

An entry keeps the payload as it was spooled, the refusal (HTTP status and the answer's
start), how many delivery attempts preceded it, when it was first accepted and when it was
dead-lettered, and how often (a replayed event that is refused again comes back with
``times_dead`` incremented). Operators list, inspect, replay (the caller re-enqueues the
payload, then :meth:`DeadLetterStore.remove`) and discard entries through the gateway's
admin endpoints.

All SQLite work runs on one worker thread owned by the store, as in the spool.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.sqlite_files import open_durable, rollback

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from prometheus_client.metrics_core import Metric

__all__ = ["DeadLetter", "DeadLetterCollector", "DeadLetterStore", "NewDeadLetter"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
_SYSTEM_CLOCK = SystemClock()
_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dead_letter (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    key            TEXT    NOT NULL UNIQUE,
    payload        BLOB    NOT NULL,
    size           INTEGER NOT NULL,
    origin         TEXT    NOT NULL,
    status         INTEGER,
    reason         TEXT    NOT NULL,
    attempts       INTEGER NOT NULL,
    first_seen_at  REAL    NOT NULL,
    dead_at        REAL    NOT NULL,
    times_dead     INTEGER NOT NULL DEFAULT 1
)
"""
_COLUMNS: Final = (
    "seq, key, size, origin, status, reason, attempts, first_seen_at, dead_at, times_dead"
)
MAX_REASON_CHARS: Final = 1000


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    """What a sender records about an event refused for good."""

    key: str
    payload: bytes
    origin: str  # where it was refused, e.g. "gateway-spool"
    status: int | None  # the downstream's HTTP status, None if not an HTTP refusal
    reason: str
    attempts: int
    first_seen_at: float
    # A replayed event refused again: how often it was dead before (its history).
    times_dead_before: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stored entry; ``payload`` is None in listings (see :meth:`DeadLetterStore.get`)."""

    seq: int
    key: str
    size: int
    origin: str
    status: int | None
    reason: str
    attempts: int
    first_seen_at: float
    dead_at: float
    times_dead: int
    payload: bytes | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.key,
            "size": self.size,
            "origin": self.origin,
            "status": self.status,
            "reason": self.reason,
            "attempts": self.attempts,
            "first_seen_at": self.first_seen_at,
            "dead_at": self.dead_at,
            "times_dead": self.times_dead,
        }


class DeadLetterStore:
    """Dead letters in ``<path>/<name>.sqlite3``, keyed by event id (unique)."""

    def __init__(
        self,
        path: Path,
        *,
        name: str = "dead-letters",
        lock_timeout_s: float = 5.0,
        clock: Clock = _SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.file = self.path / f"{name}.sqlite3"
        self._lock_timeout_s = lock_timeout_s
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        # Refreshed on the worker thread after every write; read from the loop thread.
        self._count = 0
        self._bytes = 0
        self._oldest_dead_at: float | None = None
        # Since this process started: entries recorded, replayed and discarded.
        self.recorded = 0
        self.replayed = 0
        self.discarded = 0

    def __repr__(self) -> str:
        return f"DeadLetterStore({str(self.file)!r}, count={self._count})"

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._executor is not None

    async def open(self) -> None:
        if self._executor is not None:
            raise RuntimeError(f"dead-letter store {self.name!r} is already open")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dlq-{self.name}")
        self._executor = executor
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open_sync)
        except BaseException:
            self._executor = None
            executor.shutdown(wait=True)
            raise
        if self._count:
            _log.warning(
                "dead-letter store %s holds %d events awaiting an operator (%s)",
                self.name,
                self._count,
                self.file,
            )

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        finally:
            executor.shutdown(wait=True)

    # -- operations --------------------------------------------------------------------

    async def add(self, entries: Sequence[NewDeadLetter]) -> None:
        """Record entries in one fsynced transaction (an existing key is updated)."""
        if entries:
            await self._run(functools.partial(self._add_sync, list(entries)))
            self.recorded += len(entries)

    async def page(self, *, limit: int = 50, before: int | None = None) -> list[DeadLetter]:
        """Entries newest first (by ``seq``), without payloads; ``before`` is a cursor."""
        return await self._run(functools.partial(self._list_sync, limit, before))

    async def oldest(self, limit: int) -> list[DeadLetter]:
        """The ``limit`` oldest entries (first dead-lettered first), without payloads."""
        return await self._run(functools.partial(self._oldest_sync, limit))

    async def get(self, key: str) -> DeadLetter | None:
        """One entry with its payload, or None."""
        return await self._run(functools.partial(self._get_sync, key))

    async def remove(self, key: str, *, times_dead: int | None = None) -> bool:
        """Delete one entry (after a replay or a discard); False if there was none.

        With ``times_dead``, only if the entry was not dead-lettered again meanwhile: a
        replayed event can be sent, refused and recorded again before its replay removes
        the old record, and that new record must stay.
        """
        return await self._run(functools.partial(self._remove_sync, key, times_dead))

    # -- cheap state (no I/O) ----------------------------------------------------------

    @property
    def count(self) -> int:
        return self._count

    @property
    def oldest_dead_at(self) -> float | None:
        return self._oldest_dead_at

    def snapshot(self) -> dict[str, object]:
        oldest = self._oldest_dead_at
        return {
            "path": str(self.file),
            "open": self.is_open,
            "count": self._count,
            "bytes": self._bytes,
            "oldest_dead_at": oldest,
            "oldest_age_s": None if oldest is None else max(0.0, self._clock.time() - oldest),
            "recorded": self.recorded,
            "replayed": self.replayed,
            "discarded": self.discarded,
        }

    # -- worker-thread side ------------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise RuntimeError(f"dead-letter store {self.name!r} is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"dead-letter store {self.name!r} is not open")
        return self._conn

    def _open_sync(self) -> None:
        conn = open_durable(
            self.file,
            schema=_SCHEMA,
            schema_version=_SCHEMA_VERSION,
            lock_timeout_s=self._lock_timeout_s,
            what="dead-letter store",
        )
        try:
            self._refresh(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _refresh(self, conn: sqlite3.Connection) -> None:
        count, total, oldest = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(dead_at) FROM dead_letter"
        ).fetchone()
        self._count = int(count)
        self._bytes = int(total)
        self._oldest_dead_at = None if oldest is None else float(oldest)

    def _add_sync(self, entries: list[NewDeadLetter]) -> None:
        conn = self._require_conn()
        now = self._clock.time()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO dead_letter (key, payload, size, origin, status, reason, attempts,"
                " first_seen_at, dead_at, times_dead) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET payload = excluded.payload,"
                " size = excluded.size, origin = excluded.origin, status = excluded.status,"
                " reason = excluded.reason, attempts = MAX(attempts, excluded.attempts),"
                " dead_at = excluded.dead_at, times_dead = times_dead + 1",
                [
                    (
                        e.key,
                        e.payload,
                        len(e.payload),
                        e.origin,
                        e.status,
                        e.reason[:MAX_REASON_CHARS],
                        e.attempts,
                        e.first_seen_at,
                        now,
                        e.times_dead_before + 1,
                    )
                    for e in entries
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self._refresh(conn)

    def _list_sync(self, limit: int, before: int | None) -> list[DeadLetter]:
        rows = self._require_conn().execute(
            f"SELECT {_COLUMNS} FROM dead_letter WHERE seq < ? ORDER BY seq DESC LIMIT ?",  # noqa: S608 (a constant column list)
            (before if before is not None else 2**62, limit),
        )
        return [DeadLetter(*row) for row in rows]

    def _oldest_sync(self, limit: int) -> list[DeadLetter]:
        rows = self._require_conn().execute(
            f"SELECT {_COLUMNS} FROM dead_letter ORDER BY seq LIMIT ?",  # noqa: S608 (a constant column list)
            (limit,),
        )
        return [DeadLetter(*row) for row in rows]

    def _get_sync(self, key: str) -> DeadLetter | None:
        row = (
            self._require_conn()
            .execute(f"SELECT {_COLUMNS}, payload FROM dead_letter WHERE key = ?", (key,))  # noqa: S608 (a constant column list)
            .fetchone()
        )
        if row is None:
            return None
        seq, key, size, origin, status, reason, attempts, first_seen, dead_at, times, payload = row
        return DeadLetter(
            seq,
            key,
            size,
            origin,
            status,
            reason,
            attempts,
            first_seen,
            dead_at,
            times,
            bytes(payload),
        )

    def _remove_sync(self, key: str, times_dead: int | None) -> bool:
        conn = self._require_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            removed = conn.execute(
                "DELETE FROM dead_letter WHERE key = ? AND (? IS NULL OR times_dead = ?)",
                (key, times_dead, times_dead),
            ).rowcount
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self._refresh(conn)
        return bool(removed)


class DeadLetterCollector(Collector):
    """``events_dead_letters`` (now), its oldest age and ``events_dead_lettered`` (total).

    Labelled ``where`` (``gateway``, ``sensor_outbox``), read from ``facts`` at scrape time:
    a mapping with ``count``, ``oldest_age_s`` and ``recorded`` (None when unknown, e.g. the
    sensor service's database is down).
    """

    def __init__(self, where: str, facts: Callable[[], Mapping[str, object]]) -> None:
        self._where = where
        self._facts = facts

    def describe(self) -> Iterable[Metric]:
        return self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "events_dead_letters",
                "Events refused for good and kept for an operator (replay or discard)",
                labels=["where"],
            ),
            GaugeMetricFamily(
                "events_dead_letter_oldest_age_seconds",
                "How long the oldest dead letter has waited for an operator",
                labels=["where"],
            ),
            CounterMetricFamily(
                "events_dead_lettered",
                "Events written to the dead-letter store by this process",
                labels=["where"],
            ),
        )

    def collect(self) -> Iterable[Metric]:
        facts = self._facts()
        count, oldest, recorded = self._families()
        for family, key in ((count, "count"), (oldest, "oldest_age_s"), (recorded, "recorded")):
            value = facts.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                family.add_metric([self._where], float(value))
            elif key == "oldest_age_s" and facts.get("count") == 0:
                family.add_metric([self._where], 0.0)
        yield count
        yield oldest
        yield recorded

"""A durable, bounded, ordered local spool: "queue events for later", made durable.

Used where a downstream is down but the caller must not lose what it accepted (DESIGN.md
§5): the event service spools events while the Kafka broker is unreachable and the gateway
spools events while the event service is. Both answer 202 "queued" once :meth:`Spool.append`
has returned, so *accepted means durable*: the items are on disk and survive SIGKILL of the
process, and a power cut as far as SQLite's ``synchronous=FULL`` guarantees. A
:class:`~sensor_backend.core.drainer.Drainer` later sends them oldest first and removes
each only after the downstream acknowledged it.

Why SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``:

* A commit is atomic: a batch is either entirely in the file or not at all, even when the
  process is killed or the power fails mid-write; no torn records to detect and skip, as an
  own append-only log would have to.
* In WAL mode a commit appends the transaction's pages to the write-ahead log; with
  ``synchronous=FULL`` SQLite fsyncs the log before the commit returns, so a returned
  :meth:`Spool.append` means the data is on stable storage. (``NORMAL`` would only sync at
  checkpoints: a power cut could lose the most recent commits.) WAL also keeps the
  database file consistent without a rollback journal, and recovery after a crash is just
  replaying the log on the next open.
* One fsync per *transaction*, not per row: appending a batch of 100 items in ONE
  transaction costs about as much as appending one item. That is what makes batching
  cheap, and why :meth:`Spool.append` takes a batch.
* ``seq INTEGER PRIMARY KEY AUTOINCREMENT`` gives a total order that survives restarts,
  and never reuses a number, even after the spool was emptied, so a late ack of an old
  ``seq`` can never delete a newer item. ``key`` is ``UNIQUE``, so a retried request with
  the same event id is reported as a duplicate instead of being stored twice.

All SQLite work runs on ONE dedicated worker thread owned by the spool (a single-thread
``ThreadPoolExecutor``; the connection is created, used and closed in that thread), so the
event loop never blocks on an fsync and the connection is never used concurrently. The
executor runs submissions in order, so concurrent ``append`` calls are stored in the order
they were made. The connection uses ``locking_mode=EXCLUSIVE``: a second process (or a
second :class:`Spool`) opening the same file gets :class:`SpoolInUseError` instead of
silently making the in-memory totals wrong.

Appends are group-committed: while one append transaction (and its fsync) runs, appends
made meanwhile wait in an in-memory queue and are then written together in ONE transaction,
each batch still all-or-nothing and answered separately. Many concurrent requests thus pay
for one fsync, which is what lets a service write every accepted event to its journal on
the hot path (:mod:`sensor_backend.core.journal`) without collapsing its throughput.

Running totals (count, bytes) live in memory, are initialised from the file at open and
are updated on the worker thread right after each commit, so they stay exact even when the
awaiting coroutine is cancelled. ``bytes`` counts payload bytes only (not keys or SQLite's
overhead); the file itself is somewhat larger.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self, TypeVar

from sensor_backend.core.checks import check_int, check_seconds
from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.sqlite_files import (
    CHUNK,
    FileInUseError,
    chunks,
    open_durable,
    placeholders,
    rollback,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Spool", "SpoolFullError", "SpoolInUseError", "SpooledItem"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

_SYSTEM_CLOCK = SystemClock()
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spool (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT    NOT NULL UNIQUE,
    payload    BLOB    NOT NULL,
    size       INTEGER NOT NULL,
    created_at REAL    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
)
"""


class SpoolFullError(Exception):
    """The batch does not fit (item or byte bound, or the disk is full); nothing was stored.

    Callers answer 503 with ``Retry-After: retry_after_s``.
    """

    def __init__(self, message: str, *, depth: int, bytes: int, retry_after_s: float) -> None:  # noqa: A002 (the documented attribute name)
        super().__init__(message)
        self.depth = depth
        self.bytes = bytes
        self.retry_after_s = retry_after_s


# Another connection (process) holds the spool file's lock (the name callers know).
SpoolInUseError = FileInUseError


@dataclass(frozen=True, slots=True)
class SpooledItem:
    """One stored item; ``seq`` orders items and is what :meth:`Spool.ack` takes."""

    seq: int
    key: str
    payload: bytes
    created_at: float
    attempts: int


@dataclass(slots=True, eq=False)
class _PendingAppend:
    """One ``append`` call waiting for (or in) a group commit.

    ``tag`` is the caller's opaque marker, handed to :meth:`Spool._after_append`. The worker
    thread fills in ``stored`` (the per-item answer) and ``seqs`` (of the stored items, in
    order), or ``error``.
    """

    batch: list[tuple[str, bytes]]
    waiter: asyncio.Future[list[bool]]
    tag: object = None
    stored: list[bool] | None = None
    seqs: list[int] = field(default_factory=list)
    created_at: float = 0.0
    error: BaseException | None = None


class Spool:
    """A durable FIFO of ``(key, payload)`` items in ``<path>/<name>.sqlite3``.

    ``path`` is the spool *directory* (the services' ``SPOOL_DIR``); it is created on
    :meth:`open`. Bounded by ``max_items`` and ``max_bytes`` (payload bytes):
    :meth:`append` raises :class:`SpoolFullError` rather than exceed either.
    ``full_retry_after_s`` is the ``retry_after_s`` hint that error carries.

    Must be used from one event loop; every method except the properties and
    :meth:`snapshot` runs its SQLite work on the spool's own worker thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_items: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        name: str = "spool",
        full_retry_after_s: float = 5.0,
        lock_timeout_s: float = 5.0,
        clock: Clock = _SYSTEM_CLOCK,
    ) -> None:
        check_int("max_items", max_items, 1)
        check_int("max_bytes", max_bytes, 1)
        check_seconds("full_retry_after_s", full_retry_after_s)
        check_seconds("lock_timeout_s", lock_timeout_s)
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"spool name must match {_NAME_RE.pattern}, got {name!r}")
        self.path = Path(path)
        self.name = name
        self.file = self.path / f"{name}.sqlite3"
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.full_retry_after_s = full_retry_after_s
        self._lock_timeout_s = lock_timeout_s
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        # Touched only on the worker thread; the totals are read from the loop thread
        # (a single int/float read is atomic under the GIL).
        self._conn: sqlite3.Connection | None = None
        # Group commit (loop thread): appends waiting for the transaction in flight.
        self._append_queue: list[_PendingAppend] = []
        self._append_flush: asyncio.Future[None] | None = None
        # Items and bytes of appends queued or being written (loop thread): check_room
        # counts them, as they may all be stored by the time a new batch gets its turn.
        self._queued_items = 0
        self._queued_bytes = 0
        self._count = 0
        self._bytes = 0
        self._oldest_created_at: float | None = None
        self._last_seq = 0  # worker thread only

    def __repr__(self) -> str:
        return f"Spool({str(self.file)!r}, depth={self._count}, bytes={self._bytes})"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True between a successful :meth:`open` and :meth:`close`."""
        return self._executor is not None and not self._closing

    async def open(self) -> None:
        """Create the directory and file if needed, set the pragmas, load the totals.

        Raises :class:`SpoolInUseError` if another connection holds the file.
        """
        if self._executor is not None:
            raise RuntimeError(f"spool {self.name!r} is already open")
        self._closing = False
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spool-{self.name}")
        self._executor = executor
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open_sync)
        except BaseException:
            self._executor = None
            executor.shutdown(wait=True)
            raise
        _log.info(
            "spool %s opened: %d items, %d bytes (%s)",
            self.name,
            self._count,
            self._bytes,
            self.file,
        )

    async def close(self) -> None:
        """Finish queued work, close the connection and stop the worker thread.

        Idempotent. SQLite checkpoints the WAL into the main file on close.
        """
        executor = self._executor
        if executor is None or self._closing:
            return
        self._closing = True
        # Appends already accepted into the group-commit queue are written first.
        while (flush := self._append_flush) is not None:
            await asyncio.wait({flush})
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        finally:
            self._executor = None
            executor.shutdown(wait=True)

    # -- operations --------------------------------------------------------------------

    async def append(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Append a batch atomically (one transaction, one fsync); oldest stays first.

        Returns, per item, True if it was stored and False if its key was already in the
        spool or earlier in the same batch (a duplicate is never stored twice). Raises
        :class:`SpoolFullError`, storing nothing of the batch, if its new items would
        exceed ``max_items`` or ``max_bytes`` or the disk is full. When this returns,
        the stored items are fsynced.

        If the awaiting task is cancelled, the append still completes (or fails) on the
        worker thread and the totals stay exact; the caller cannot tell which, so it
        should not answer "queued" and may retry with the same keys (deduplicated).
        """
        batch: list[tuple[str, bytes]] = []
        for key, payload in items:
            if not isinstance(key, str):
                raise TypeError(f"spool keys must be str, got {type(key).__name__}")
            batch.append((key, bytes(payload)))
        if not batch:
            return []
        return await self._enqueue_append(batch, None)

    def check_room(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Raise :class:`SpoolFullError` now if this batch might not fit; no I/O.

        Counts appends still queued or being written and every item as new, so it errs on
        the side of refusing. A caller that does something irreversible before its append
        returns (the event service produces while the journal commits) checks here first.
        """
        count = self._count + self._queued_items + len(items)
        if count > self.max_items:
            raise self._full_error(f"is full: {count} items > max_items {self.max_items}")
        size = self._bytes + self._queued_bytes + sum(len(payload) for _, payload in items)
        if size > self.max_bytes:
            raise self._full_error(f"is full: {size} bytes > max_bytes {self.max_bytes}")

    async def peek(self, limit: int) -> list[SpooledItem]:
        """Up to ``limit`` items, oldest (lowest ``seq``) first; removes nothing."""
        if limit <= 0:
            return []
        return await self._run(functools.partial(self._peek_sync, limit))

    async def peek_within(self, limit: int, max_bytes: int) -> list[SpooledItem]:
        """:meth:`peek`, but only as many as fit in ``max_bytes`` of payload.

        Always the oldest item, though: an oversized one reaches its sender, which can
        dead-letter it, instead of blocking the spool.
        """
        if limit <= 0:
            return []
        return await self._run(functools.partial(self._peek_within_sync, limit, max_bytes))

    async def ack(self, seqs: Sequence[int]) -> None:
        """Delete the given items in one transaction; unknown seqs are ignored."""
        unique = list(dict.fromkeys(seqs))
        if unique:
            await self._run(functools.partial(self._ack_sync, unique))

    async def record_attempt(self, seqs: Sequence[int]) -> None:
        """Increment ``attempts`` of the given items (one transaction)."""
        unique = list(dict.fromkeys(seqs))
        if unique:
            await self._run(functools.partial(self._record_attempt_sync, unique))

    async def contains(self, key: str) -> bool:
        """Whether an item with this key is currently spooled."""
        return await self._run(functools.partial(self._contains_sync, key))

    # -- cheap state (no I/O) ----------------------------------------------------------

    @property
    def depth(self) -> int:
        """Number of items currently spooled."""
        return self._count

    @property
    def bytes_used(self) -> int:
        """Sum of the spooled payloads' sizes in bytes."""
        return self._bytes

    @property
    def oldest_created_at(self) -> float | None:
        """Wall-clock epoch seconds at which the oldest item was appended, or None."""
        return self._oldest_created_at

    def oldest_age_s(self, now: float | None = None) -> float | None:
        """Seconds the oldest item has waited (``now`` is epoch seconds), or None if empty."""
        oldest = self._oldest_created_at
        if oldest is None:
            return None
        current = self._clock.time() if now is None else now
        return max(0.0, current - oldest)

    def snapshot(self) -> dict[str, object]:
        """State for ``/health`` and metrics."""
        return {
            "name": self.name,
            "path": str(self.file),
            "open": self.is_open,
            "depth": self._count,
            "bytes": self._bytes,
            "max_items": self.max_items,
            "max_bytes": self.max_bytes,
            "oldest_age_s": self.oldest_age_s(),
        }

    # -- worker-thread side ------------------------------------------------------------

    async def _enqueue_append(self, batch: list[tuple[str, bytes]], tag: object) -> list[bool]:
        """Queue a batch for the next group commit and wait for its answer."""
        if self._executor is None or self._closing:
            raise RuntimeError(f"spool {self.name!r} is not open")
        waiter: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._append_queue.append(_PendingAppend(batch, waiter, tag))
        self._queued_items += len(batch)
        self._queued_bytes += sum(len(payload) for _, payload in batch)
        if self._append_flush is None:
            # Submitted now, not from a task: a peek or ack submitted after this call
            # returns runs after this append on the worker thread.
            self._flush_appends()
        return await waiter

    def _flush_appends(self) -> None:
        executor = self._executor
        if executor is None:  # close() waits for the queue, so this cannot happen
            raise RuntimeError(f"spool {self.name!r} is not open")
        group, self._append_queue = self._append_queue, []
        flush = asyncio.get_running_loop().run_in_executor(
            executor, functools.partial(self._append_group_sync, group, self._take_deletes())
        )
        self._append_flush = flush
        flush.add_done_callback(functools.partial(self._appends_flushed, group))

    def _appends_flushed(self, group: list[_PendingAppend], flush: asyncio.Future[None]) -> None:
        """Loop thread, after a group commit: answer every waiter, start the next group."""
        self._append_flush = None
        for item in group:
            self._queued_items -= len(item.batch)
            self._queued_bytes -= sum(len(payload) for _, payload in item.batch)
        failure = asyncio.CancelledError() if flush.cancelled() else flush.exception()
        try:
            if failure is not None:
                for item in group:
                    item.stored, item.error = None, failure
            self._after_append(group)
        finally:
            for item in group:
                if item.waiter.done():  # the caller was cancelled; the outcome stands
                    continue
                if item.error is not None:
                    item.waiter.set_exception(item.error)
                else:
                    item.waiter.set_result(item.stored or [])
            if self._append_queue:
                self._flush_appends()
            else:
                self._appends_idle()

    def _after_append(self, group: list[_PendingAppend]) -> None:
        """Hook for subclasses, on the loop thread after each group commit."""

    def _take_deletes(self) -> list[int]:
        """Hook for subclasses: seqs to delete in the next group's transaction (loop thread)."""
        return []

    def _appends_idle(self) -> None:
        """Hook for subclasses: a group commit ended and no append is waiting."""

    async def _run(self, fn: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None or self._closing:
            raise RuntimeError(f"spool {self.name!r} is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"spool {self.name!r} is not open")
        return self._conn

    def _open_sync(self) -> None:
        conn = open_durable(
            self.file,
            schema=_SCHEMA,
            schema_version=_SCHEMA_VERSION,
            lock_timeout_s=self._lock_timeout_s,
            what="spool",
        )
        try:
            count, total, oldest = self._totals_sync(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._count = count
        self._bytes = total
        self._oldest_created_at = oldest

    def _totals_sync(self, conn: sqlite3.Connection) -> tuple[int, int, float | None]:
        """(count, bytes, oldest created_at) of the stored items; the last seq used."""
        count, total = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
        oldest = conn.execute("SELECT created_at FROM spool ORDER BY seq LIMIT 1").fetchone()
        # The highest seq ever used (AUTOINCREMENT remembers it after deletions): appends
        # number their rows from here, so seqs are never reused.
        (last,) = conn.execute(
            "SELECT MAX(n) FROM (SELECT MAX(seq) AS n FROM spool"
            " UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'spool')"
        ).fetchone()
        self._last_seq = int(last or 0)
        return int(count), int(total), None if oldest is None else float(oldest[0])

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _full_error(self, message: str) -> SpoolFullError:
        return SpoolFullError(
            f"spool {self.name!r} {message}",
            depth=self._count,
            bytes=self._bytes,
            retry_after_s=self.full_retry_after_s,
        )

    def _present_keys(self, conn: sqlite3.Connection, keys: list[str]) -> set[str]:
        present: set[str] = set()
        for chunk in chunks(keys):
            rows = conn.execute(
                f"SELECT key FROM spool WHERE key IN ({placeholders(len(chunk))})",  # noqa: S608 (only "?" placeholders are formatted in)
                chunk,
            )
            present.update(row[0] for row in rows)
        return present

    def _plan(
        self, item: _PendingAppend, present: set[str], count: int, total: int
    ) -> list[tuple[str, bytes]] | None:
        """The batch's new items (not stored yet, first of their key), or None if full."""
        stored = [False] * len(item.batch)
        fresh: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for index, (key, payload) in enumerate(item.batch):
            if key in seen or key in present:
                continue
            seen.add(key)
            stored[index] = True
            fresh.append((key, payload))
        added = sum(len(payload) for _, payload in fresh)
        if count + len(fresh) > self.max_items:
            item.error = self._full_error(
                f"is full: {count} + {len(fresh)} items > max_items {self.max_items}"
            )
            return None
        if total + added > self.max_bytes:
            item.error = self._full_error(
                f"is full: {total} + {added} bytes > max_bytes {self.max_bytes}"
            )
            return None
        item.stored = stored
        return fresh

    def _append_group_sync(self, group: list[_PendingAppend], deletes: list[int]) -> None:
        """Write a group of batches in ONE transaction; each batch is all-or-nothing.

        Batches are judged in order, as if appended one after the other: a key stored by
        an earlier batch of the group is a duplicate for a later one, and a batch that
        does not fit gets :class:`SpoolFullError` without affecting the others. ``deletes``
        (seqs) are removed in the same transaction: a subclass's deletions ride along
        instead of costing a transaction and a thread hand-off of their own.
        """
        conn = self._require_conn()
        # One thread, one exclusive connection: nothing can insert between this read and
        # the transaction below.
        present = self._present_keys(
            conn, list(dict.fromkeys(key for item in group for key, _ in item.batch))
        )
        count, total = self._count, self._bytes
        planned: list[tuple[_PendingAppend, list[tuple[str, bytes]]]] = []
        for item in group:
            fresh = self._plan(item, present, count, total)
            if fresh is None:
                continue
            present.update(key for key, _ in fresh)
            count += len(fresh)
            total += sum(len(payload) for _, payload in fresh)
            planned.append((item, fresh))
        rows = [row for _, fresh in planned for row in fresh]
        if not rows and not deletes:
            return
        now = self._clock.time()
        try:
            seqs, removed, freed, oldest = self._insert_sync(conn, rows, now, deletes)
        except Exception as exc:  # noqa: BLE001 (handed to every waiting append, not lost)
            error: Exception = exc
            if isinstance(exc, sqlite3.OperationalError) and (
                exc.sqlite_errorcode == sqlite3.SQLITE_FULL
            ):
                error = self._full_error(f"cannot grow: disk full ({exc})")
                error.__cause__ = exc
            for item, _ in planned:
                item.stored, item.error = None, error
            return
        position = 0
        for item, fresh in planned:
            item.seqs = seqs[position : position + len(fresh)]
            item.created_at = now
            position += len(fresh)
        self._count = count - removed
        self._bytes = total - freed
        self._oldest_created_at = oldest

    def _insert_sync(
        self,
        conn: sqlite3.Connection,
        rows: list[tuple[str, bytes]],
        now: float,
        deletes: list[int],
    ) -> tuple[list[int], int, int, float | None]:
        """Insert (and delete) in one transaction, rolled back on any error.

        Returns the new rows' seqs, how many rows were deleted and their payload bytes, and
        the oldest remaining row's time.

        Few statements on purpose: each SQLite call releases the GIL and must take it back
        from a busy event loop, which costs up to the interpreter's switch interval. So the
        rows go in as multi-row INSERTs with the seqs given (the next after the highest
        ever used, as AUTOINCREMENT would pick them), not one statement per row.
        """
        first = self._last_seq + 1
        values = [
            (first + index, key, payload, len(payload), now)
            for index, (key, payload) in enumerate(rows)
        ]
        oldest: float | None = (
            self._oldest_created_at if self._oldest_created_at is not None else now
        )
        try:
            conn.execute("BEGIN IMMEDIATE")
            for chunk in chunks(values, CHUNK // 5):
                conn.execute(
                    "INSERT INTO spool (seq, key, payload, size, created_at) VALUES "  # noqa: S608 (only "?" placeholders are formatted in)
                    + ",".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
                    [field for row in chunk for field in row],
                )
            removed, freed = self._delete_rows(conn, deletes)
            if removed:
                row = conn.execute("SELECT created_at FROM spool ORDER BY seq LIMIT 1").fetchone()
                oldest = None if row is None else float(row[0])
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self._last_seq = first + len(rows) - 1
        return list(range(first, first + len(rows))), removed, freed, oldest

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, seqs: Sequence[int]) -> tuple[int, int]:
        """Delete inside the caller's transaction; (rows removed, their payload bytes).

        Two statements per chunk whatever the number of rows (``RETURNING`` would step,
        and take the GIL back, once per row).
        """
        removed = freed = 0
        for chunk in chunks(seqs):
            where = f"WHERE seq IN ({placeholders(len(chunk))})"
            count, size = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool {where}",  # noqa: S608 (only "?" placeholders are formatted in)
                chunk,
            ).fetchone()
            conn.execute(f"DELETE FROM spool {where}", chunk)  # noqa: S608 (as above)
            removed += count
            freed += size
        return removed, freed

    def _peek_sync(self, limit: int) -> list[SpooledItem]:
        rows = self._require_conn().execute(
            "SELECT seq, key, payload, created_at, attempts FROM spool ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [
            SpooledItem(seq=seq, key=key, payload=bytes(payload), created_at=ts, attempts=n)
            for seq, key, payload, ts, n in rows
        ]

    def _peek_within_sync(self, limit: int, max_bytes: int) -> list[SpooledItem]:
        # The running total reads only the small "size" column of the first ``limit`` rows;
        # payloads are read for the rows that fit.
        rows = self._require_conn().execute(
            "SELECT seq, key, payload, created_at, attempts FROM spool WHERE seq IN"
            " (SELECT seq FROM (SELECT seq, SUM(size) OVER (ORDER BY seq) AS running,"
            " ROW_NUMBER() OVER (ORDER BY seq) AS n FROM (SELECT seq, size FROM spool"
            " ORDER BY seq LIMIT ?)) WHERE n = 1 OR running <= ?) ORDER BY seq",
            (limit, max_bytes),
        )
        return [
            SpooledItem(seq=seq, key=key, payload=bytes(payload), created_at=ts, attempts=n)
            for seq, key, payload, ts, n in rows
        ]

    def _ack_sync(self, seqs: list[int]) -> None:
        conn = self._require_conn()
        removed = 0
        freed = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for chunk in chunks(seqs):
                sizes = conn.execute(
                    f"DELETE FROM spool WHERE seq IN ({placeholders(len(chunk))}) RETURNING size",  # noqa: S608 (only "?" placeholders are formatted in)
                    chunk,
                ).fetchall()
                removed += len(sizes)
                freed += sum(size for (size,) in sizes)
            oldest = conn.execute("SELECT created_at FROM spool ORDER BY seq LIMIT 1").fetchone()
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self._count -= removed
        self._bytes -= freed
        self._oldest_created_at = None if oldest is None else float(oldest[0])

    def _record_attempt_sync(self, seqs: list[int]) -> None:
        conn = self._require_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for chunk in chunks(seqs):
                conn.execute(
                    f"UPDATE spool SET attempts = attempts + 1 WHERE seq IN ({placeholders(len(chunk))})",  # noqa: E501, S608 (only "?" placeholders are formatted in)
                    chunk,
                )
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise

    def _contains_sync(self, key: str) -> bool:
        row = self._require_conn().execute("SELECT 1 FROM spool WHERE key = ?", (key,))
        return row.fetchone() is not None

"""A spool that keeps each item after delivery until the far end confirms it stored it.

DESIGN.md §7: whoever answered 2xx for an event keeps it until the next *durable* owner has
it. For the event service the next hop, the broker, is not necessarily durable (the
embedded broker keeps data in memory), so an event stays in this journal after the broker
acknowledged it, until the consumer side reports it stored in PostgreSQL. Should the broker
lose it (crash, empty restart) it is produced again; the event id makes that harmless.

Every row of the file is an accepted, unconfirmed item; what happened to it since is kept
in memory only, because after a restart of the process every row is produced again anyway:

``PENDING``
    to be produced, in ``seq`` order; :meth:`peek` hands these to the drainer.
``INFLIGHT``
    claimed by a request that is producing it directly (``append(..., claim=True)``);
    ended by :meth:`mark_sent` or :meth:`release`.
``PRODUCED``
    the broker acknowledged it; waiting for :meth:`confirm`. :meth:`resend_all` (the broker
    lost its data) and :meth:`requeue_overdue` (no confirmation within a bound) make it
    ``PENDING`` again.

Confirmed rows are deleted in batched transactions that do not wait for an fsync: a
deletion lost in a crash only means one harmless resend, while an append keeps its full
fsync (and a later fsynced commit makes the earlier deletions durable too, WAL being a
log). A broker *epoch* guards against acknowledgements from a broker that has since lost
its data: a send that started before :meth:`resend_all` does not count as produced.

Must be used from one event loop; the in-memory state is only touched on the loop thread.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import functools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sensor_backend.core.retry import RetryPolicy
from sensor_backend.core.spool import Spool, SpooledItem
from sensor_backend.core.sqlite_files import chunks, placeholders, rollback

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from sensor_backend.core.spool import _PendingAppend

__all__ = ["Journal", "RowState"]

_log = logging.getLogger(__name__)


class RowState(enum.IntEnum):
    PENDING = 0
    INFLIGHT = 1
    PRODUCED = 2


# Rows hold these plain ints and the counts are a list indexed by them: an Enum member's
# hash runs Python code, too slow for per-event bookkeeping on the hot path.
_PENDING: Final = 0
_INFLIGHT: Final = 1
_PRODUCED: Final = 2


@dataclass(slots=True)
class _Row:
    key: str
    created_at: float  # wall clock, from the file
    state: int  # a RowState value
    sent_at: float = 0.0  # monotonic: when last acknowledged by the broker, or claimed
    resends: int = 0  # times it was made PENDING again after it had been produced


class Journal(Spool):
    """A durable, bounded, ordered journal of items awaiting end-to-end confirmation.

    Same file format, bounds and durability as :class:`Spool` (so an existing spool file
    opens as a journal); see the module docstring for the states. ``resend_after_s`` is
    how long a produced row may wait for its confirmation before :meth:`requeue_overdue`
    produces it again (doubling per resend of the same row, capped at
    ``max_resend_after_s``).
    """

    def __init__(
        self,
        path: Path,
        *,
        resend_after_s: float = 30.0,
        max_resend_after_s: float = 600.0,
        **spool_options: Any,  # noqa: ANN401 - Spool's keyword arguments, passed through
    ) -> None:
        super().__init__(path, **spool_options)
        if not math.isfinite(resend_after_s) or resend_after_s <= 0:
            raise ValueError(f"resend_after_s must be a finite number > 0, got {resend_after_s}")
        if not math.isfinite(max_resend_after_s) or max_resend_after_s < resend_after_s:
            raise ValueError("max_resend_after_s must be finite and >= resend_after_s")
        self.resend_after_s = resend_after_s
        # A resend that is itself not confirmed waits twice as long before the next (capped),
        # so a consumer that is merely slow is not flooded with copies it has not read yet.
        self._resend_policy = RetryPolicy(
            max_attempts=None, base_s=resend_after_s, cap_s=max_resend_after_s, jitter="none"
        )
        self.max_resend_after_s = max_resend_after_s
        self._rows: dict[int, _Row] = {}  # seq -> row, in seq order (seqs only grow)
        self._seq_of: dict[str, int] = {}
        # Seqs that may be PENDING, ascending; entries whose row moved on are skipped and
        # compacted lazily (a drain removes a prefix, which is cheap).
        self._pending: list[int] = []
        self._counts = [0, 0, 0]  # per RowState
        self._epoch = 0
        self._peek_epoch = 0
        self._to_delete: list[int] = []
        self._delete_flush: asyncio.Future[None] | None = None
        self.confirmed = 0
        self.requeued = 0
        self.reproduced = 0
        self.resend_rounds = 0
        self.recovered_at_open = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file and load every row as PENDING: after a restart all are resent."""
        await super().open()
        rows = await self._run(self._load_sync)
        self._rows = {seq: _Row(key, created_at, _PENDING) for seq, key, created_at in rows}
        self._seq_of = {row.key: seq for seq, row in self._rows.items()}
        self._pending = list(self._rows)
        self._counts = [len(self._rows), 0, 0]
        self.recovered_at_open = len(self._rows)

    async def close(self) -> None:
        """Write the confirmations still queued (best effort), then close."""
        while (flush := self._delete_flush) is not None:
            await asyncio.wait({flush})
        if self._to_delete and self.is_open:
            self._flush_deletes()
            while (flush := self._delete_flush) is not None:
                await asyncio.wait({flush})
        await super().close()

    # -- producing ---------------------------------------------------------------------

    async def append(
        self, items: Sequence[tuple[str, bytes]], *, claim: bool = False
    ) -> list[bool]:
        """Append durably (group-committed, see :class:`Spool`); True per stored item.

        ``claim=True``: the caller produces the stored items itself, so the drainer leaves
        them alone until :meth:`mark_sent` or :meth:`release`. Otherwise they are PENDING.
        """
        batch: list[tuple[str, bytes]] = []
        for key, payload in items:
            if not isinstance(key, str):
                raise TypeError(f"journal keys must be str, got {type(key).__name__}")
            batch.append((key, bytes(payload)))
        if not batch:
            return []
        return await self._enqueue_append(batch, _INFLIGHT if claim else _PENDING)

    def _after_append(self, group: list[_PendingAppend]) -> None:
        now = self._clock.monotonic()
        for item in group:
            if item.error is not None or item.stored is None:
                continue
            state = _INFLIGHT if item.tag == _INFLIGHT else _PENDING
            keys = (key for (key, _), stored in zip(item.batch, item.stored, strict=True) if stored)
            for seq, key in zip(item.seqs, keys, strict=True):
                # A claimed row's clock starts now: should its producer never report back
                # (an unexpected error, a cancelled request), requeue_overdue takes it.
                self._rows[seq] = _Row(key, item.created_at, state, sent_at=now)
                self._seq_of[key] = seq
                self._counts[state] += 1
                if state == _PENDING:
                    self._pending.append(seq)  # the newest seq: the list stays sorted

    @property
    def epoch(self) -> int:
        """Changes whenever the broker lost what it held; capture it before a send."""
        return self._epoch

    def mark_sent(self, keys: Iterable[str], epoch: int) -> int:
        """Claimed rows the broker acknowledged; returns how many count as produced.

        If the epoch moved since the send started, the broker that acknowledged them may be
        the one that lost its data: they become PENDING and are produced again.
        """
        now = self._clock.monotonic()
        produced = 0
        for key in keys:
            row = self._row(key)
            if row is None or row.state != _INFLIGHT:
                continue
            if epoch == self._epoch:
                self._move(row, _PRODUCED)
                row.sent_at = now
                produced += 1
            else:
                self._make_pending(self._seq_of[key], row)
        return produced

    def release(self, keys: Iterable[str]) -> int:
        """Claimed rows that could not be produced: the drainer takes them, in seq order."""
        released = 0
        for key in keys:
            row = self._row(key)
            if row is not None and row.state == _INFLIGHT:
                self._make_pending(self._seq_of[key], row)
                released += 1
        return released

    async def peek(self, limit: int, max_bytes: int | None = None) -> list[SpooledItem]:
        """Up to ``limit`` PENDING rows, oldest first (the drainer's view).

        With ``max_bytes``, only as many as fit in that many payload bytes, but always the
        oldest one, as :meth:`Spool.peek_within`.
        """
        self._peek_epoch = self._epoch
        seqs = self._first_pending(limit)
        if not seqs:
            return []
        items = await self._run(functools.partial(self._fetch_sync, seqs))
        if max_bytes is not None:
            total = 0
            for index, item in enumerate(items):
                total += len(item.payload)
                if total > max_bytes and index > 0:
                    return items[:index]
        return items

    async def peek_within(self, limit: int, max_bytes: int) -> list[SpooledItem]:
        """:meth:`peek` bounded by payload bytes (the drainer's byte-bounded batches)."""
        return await self.peek(limit, max_bytes)

    async def ack(self, seqs: Sequence[int]) -> None:
        """The drainer produced these: PRODUCED (not deleted) until confirmed."""
        now = self._clock.monotonic()
        same_broker = self._peek_epoch == self._epoch
        done = 0
        for seq in seqs:
            row = self._rows.get(seq)
            if row is None or row.state != _PENDING or not same_broker:
                continue
            self._move(row, _PRODUCED)
            row.sent_at = now
            done += 1
            if row.resends:
                self.reproduced += 1
        if done:
            self._compact_pending()
        await asyncio.sleep(0)  # keep the awaitable contract of Spool.ack

    # -- confirming --------------------------------------------------------------------

    def confirm(self, keys: Iterable[str]) -> int:
        """The far end stored these: forget them (deleted from the file in the background).

        Unknown keys (confirmed already, or another instance's events) are ignored.
        Returns how many rows were confirmed.
        """
        confirmed = 0
        for key in keys:
            seq = self._seq_of.pop(key, None)
            if seq is None:
                continue
            row = self._rows.pop(seq)
            self._counts[row.state] -= 1
            self._to_delete.append(seq)
            confirmed += 1
        if confirmed:
            self.confirmed += confirmed
            # Under load the deletions ride on the next append's transaction; only when
            # nothing is being appended do they get one of their own.
            if self._append_flush is None and self._delete_flush is None and self.is_open:
                self._flush_deletes()
        return confirmed

    def unconfirmed_keys(self, *, min_age_s: float, limit: int) -> list[str]:
        """Oldest first, up to ``limit``: keys worth asking the far end about.

        PENDING rows are included (another instance's consumer may have stored them before
        the broker lost its copy); PRODUCED ones only once ``min_age_s`` has passed since
        the broker acknowledged them (the local consumer usually confirms them before).
        """
        cutoff = self._clock.monotonic() - min_age_s
        keys: list[str] = []
        for row in self._rows.values():
            if row.state == _PENDING or (row.state == _PRODUCED and row.sent_at <= cutoff):
                keys.append(row.key)
                if len(keys) >= limit:
                    break
        return keys

    def resend_all(self) -> int:
        """The broker lost its data: every produced, unconfirmed row is produced again."""
        self._epoch += 1
        self.resend_rounds += 1
        moved = 0
        for row in self._rows.values():
            if row.state == _PRODUCED:
                self._move(row, _PENDING)
                row.resends += 1
                moved += 1
        self.requeued += moved
        self._rebuild_pending()
        return moved

    def requeue_overdue(self) -> int:
        """Rows produced (or claimed) longer than their bound ago become PENDING again."""
        now = self._clock.monotonic()
        moved = 0
        for row in self._rows.values():
            if row.state != _PENDING and now - row.sent_at >= self._bound_s(row):
                self._move(row, _PENDING)
                row.resends += 1
                moved += 1
        if moved:
            self.requeued += moved
            self._rebuild_pending()
        return moved

    # -- cheap state (no I/O) ----------------------------------------------------------

    def state_of(self, key: str) -> RowState | None:
        row = self._row(key)
        return None if row is None else RowState(row.state)

    @property
    def unconfirmed(self) -> int:
        """Rows accepted and not yet confirmed, whatever their state."""
        return len(self._rows)

    @property
    def backlog(self) -> int:
        """Rows waiting to be produced (new events queue behind them, keeping order)."""
        return self._counts[_PENDING]

    def count(self, state: RowState) -> int:
        return self._counts[state]

    def oldest_unconfirmed_age_s(self) -> float | None:
        """Seconds since the oldest unconfirmed row was accepted, or None."""
        oldest = next(iter(self._rows.values()), None)
        if oldest is None:
            return None
        return max(0.0, self._clock.time() - oldest.created_at)

    def snapshot(self) -> dict[str, object]:
        return {
            **super().snapshot(),
            "unconfirmed": len(self._rows),
            "backlog": self._counts[_PENDING],
            "inflight": self._counts[_INFLIGHT],
            "awaiting_confirmation": self._counts[_PRODUCED],
            "oldest_unconfirmed_age_s": self.oldest_unconfirmed_age_s(),
            "confirmed": self.confirmed,
            "requeued": self.requeued,
            "reproduced": self.reproduced,
            "resend_rounds": self.resend_rounds,
            "recovered_at_open": self.recovered_at_open,
            "epoch": self._epoch,
            "resend_after_s": self.resend_after_s,
        }

    # -- internals ---------------------------------------------------------------------

    def _row(self, key: str) -> _Row | None:
        seq = self._seq_of.get(key)
        return None if seq is None else self._rows.get(seq)

    def _move(self, row: _Row, state: int) -> None:
        self._counts[row.state] -= 1
        self._counts[state] += 1
        row.state = state

    def _make_pending(self, seq: int, row: _Row) -> None:
        self._move(row, _PENDING)
        bisect.insort(self._pending, seq)

    def _bound_s(self, row: _Row) -> float:
        return self._resend_policy.ceiling_s(row.resends)

    def _is_pending(self, seq: int) -> bool:
        row = self._rows.get(seq)
        return row is not None and row.state == _PENDING

    def _first_pending(self, limit: int) -> list[int]:
        self._compact_pending()
        seqs: list[int] = []
        for seq in self._pending:
            if self._is_pending(seq):
                seqs.append(seq)
                if len(seqs) >= limit:
                    break
        return seqs

    def _compact_pending(self) -> None:
        """Drop the stale prefix; rebuild when stale entries dominate the list."""
        stale = 0
        for seq in self._pending:
            if self._is_pending(seq):
                break
            stale += 1
        if stale:
            del self._pending[:stale]
        if len(self._pending) > 2 * self._counts[_PENDING] + 1024:
            self._rebuild_pending()

    def _rebuild_pending(self) -> None:
        self._pending = [seq for seq, row in self._rows.items() if row.state == _PENDING]

    def _flush_deletes(self) -> None:
        executor = self._executor
        if executor is None:
            return
        seqs, self._to_delete = self._to_delete, []
        flush = asyncio.get_running_loop().run_in_executor(
            executor, functools.partial(self._delete_sync, seqs)
        )
        self._delete_flush = flush
        flush.add_done_callback(self._deletes_flushed)

    def _deletes_flushed(self, flush: asyncio.Future[None]) -> None:
        self._delete_flush = None
        if not flush.cancelled() and flush.exception() is not None:
            # Not deleted: after a restart they are resent once; the consumer dedups.
            _log.warning("journal %s: deleting confirmed rows: %r", self.name, flush.exception())
        self._appends_idle()

    def _take_deletes(self) -> list[int]:
        seqs, self._to_delete = self._to_delete, []
        return seqs

    def _appends_idle(self) -> None:
        if (
            self._to_delete
            and self._append_flush is None
            and self._delete_flush is None
            and self.is_open
        ):
            self._flush_deletes()

    # -- worker-thread side ------------------------------------------------------------

    def _load_sync(self) -> list[tuple[int, str, float]]:
        rows = self._require_conn().execute("SELECT seq, key, created_at FROM spool ORDER BY seq")
        return [(int(seq), str(key), float(created_at)) for seq, key, created_at in rows]

    def _fetch_sync(self, seqs: list[int]) -> list[SpooledItem]:
        conn = self._require_conn()
        items: list[SpooledItem] = []
        for chunk in chunks(seqs):
            rows = conn.execute(  # only "?" placeholders are formatted in
                "SELECT seq, key, payload, created_at, attempts FROM spool"  # noqa: S608
                f" WHERE seq IN ({placeholders(len(chunk))}) ORDER BY seq",
                chunk,
            )
            items.extend(
                SpooledItem(seq=seq, key=key, payload=bytes(payload), created_at=ts, attempts=n)
                for seq, key, payload, ts, n in rows
            )
        return items

    def _delete_sync(self, seqs: list[int]) -> None:
        """Delete confirmed rows in a transaction of their own (no append was under way)."""
        conn = self._require_conn()
        # No fsync for a deletion: losing it in a power cut costs one harmless resend.
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            removed, freed = self._delete_rows(conn, seqs)
            oldest = conn.execute("SELECT created_at FROM spool ORDER BY seq LIMIT 1").fetchone()
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        finally:
            conn.execute("PRAGMA synchronous=FULL")
        self._count -= removed
        self._bytes -= freed
        self._oldest_created_at = None if oldest is None else float(oldest[0])

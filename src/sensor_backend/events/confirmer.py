"""End-to-end confirmation: the journal forgets an event once PostgreSQL has it.

Two paths confirm journal rows (DESIGN.md §7):

- fast: this process's consumer reports the ids of every batch it stored
  (``EventConsumer.on_stored``), usually within a poll interval of the produce;
- durable truth: several replicas share one consumer group, so the consumer that stored an
  event may be another process. Every ``interval_s`` this task asks PostgreSQL, in bulk,
  which of the journal's older unconfirmed ids are in the events table, and confirms those.

The same round re-queues produced rows that stayed unconfirmed beyond their bound
(:meth:`Journal.requeue_overdue`), but only when PostgreSQL answered: with the database
down nothing can be confirmed, and resending would only pile copies onto the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensor_backend.core.journal import Journal
    from sensor_backend.events.store import EventStore

log = get_logger("events.confirmer")
# Ids per PostgreSQL query, and per round (the oldest first; the rest wait a round).
QUERY_IDS = 5_000
ROUND_IDS = 50_000


class Confirmer:
    def __init__(
        self,
        journal: Journal,
        store: EventStore,
        *,
        interval_s: float = 1.0,
        min_age_s: float = 2.0,
        on_requeued: Callable[[], object] | None = None,
    ) -> None:
        self.journal = journal
        self.store = store
        self.interval_s = interval_s
        self.min_age_s = min_age_s
        self.on_requeued = on_requeued
        self.rounds = 0
        self.confirmed_from_database = 0
        self.confirmed_by_consumer = 0
        self.database_ok: bool | None = None
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def stored(self, ids: list[str]) -> None:
        """The local consumer's fast path: these ids are committed in PostgreSQL."""
        self.confirmed_by_consumer += self.journal.confirm(ids)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="events-confirmer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the confirmer must outlive any failure
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("confirmation round failed", error=self.last_error)

    async def run_once(self) -> int:
        """One round: confirm what PostgreSQL has, re-queue what is overdue; confirmed count."""
        self.rounds += 1
        keys = self.journal.unconfirmed_keys(min_age_s=self.min_age_s, limit=ROUND_IDS)
        confirmed = 0
        try:
            for start in range(0, len(keys), QUERY_IDS):
                found = await self.store.stored_ids(keys[start : start + QUERY_IDS])
                confirmed += self.journal.confirm(found)
        except DatabaseUnavailable as exc:
            self.database_ok = False
            self.last_error = f"database unavailable: {exc.message}"
            return confirmed
        self.database_ok = True
        self.confirmed_from_database += confirmed
        requeued = self.journal.requeue_overdue()
        if requeued:
            log.warning(
                "events unconfirmed beyond their bound; producing them again",
                requeued=requeued,
                bound_s=self.journal.resend_after_s,
            )
            if self.on_requeued is not None:
                self.on_requeued()
        return confirmed

    def snapshot(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "confirmed_by_consumer": self.confirmed_by_consumer,
            "confirmed_from_database": self.confirmed_from_database,
            "database_ok": self.database_ok,
            "last_error": self.last_error,
        }

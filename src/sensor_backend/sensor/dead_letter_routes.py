"""Admin routes for the outbox's dead letters: list, inspect, replay, discard.

A dead letter here is an outbox row the event service refused for good (or one over the
event contract's per-event limit, :mod:`sensor_backend.sensor.relay`). Replay makes it
``pending`` again, due now: the relay delivers it, or it is dead again with
``times_dead`` incremented and the new reason. Discard marks it ``discarded``, kept with
who and when until the outbox retention purges it. The routes themselves are the shared
ones of :mod:`sensor_backend.core.dead_letter_routes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor_backend.core.dead_letter_routes import DeadLetterDocs, build_dead_letter_router
from sensor_backend.core.errors import NotFound
from sensor_backend.core.log import get_logger

if TYPE_CHECKING:
    import uuid

    from fastapi import Request

    from sensor_backend.sensor.service import SensorService

log = get_logger("sensor.dead_letters")


class OutboxDeadLetters:
    """The outbox's dead rows as a `DeadLetterSource`; a replay wakes the relay."""

    def __init__(self, sensor: SensorService) -> None:
        self.sensor = sensor

    def _dead(self) -> int | None:
        dead = self.sensor.workers.depths.get("outbox_dead")
        return dead if isinstance(dead, int) else None

    async def page(self, *, limit: int, before: int | None) -> dict[str, Any]:
        items = await self.sensor.outbox.dead_letters(limit=limit, before=before)
        return {
            "items": items,
            "count": len(items),
            "total": self._dead(),
            "next": items[-1]["cursor"] if len(items) == limit else None,
        }

    async def detail(self, event_id: uuid.UUID) -> dict[str, Any]:
        doc = await self.sensor.outbox.dead_letter(event_id)
        if doc is None:
            raise NotFound(f"no dead-lettered outbox event {event_id}")
        return doc

    async def replay_oldest(self, limit: int, *, by: str) -> dict[str, Any]:
        ids = await self.sensor.outbox.replay_oldest(limit)
        self.sensor.relay.wake()
        log.info("outbox dead letters replayed", count=len(ids), by=by)
        dead = self._dead()
        remaining = max(dead - len(ids), 0) if dead is not None else None
        return {"replayed": ids, "count": len(ids), "remaining": remaining}

    async def replay(self, event_id: uuid.UUID, *, by: str) -> dict[str, Any]:
        if not await self.sensor.outbox.replay(event_id):
            raise NotFound(f"no dead-lettered outbox event {event_id}")
        self.sensor.relay.wake()
        log.info("outbox dead letter replayed", event_id=str(event_id), by=by)
        return {"id": str(event_id), "status": "pending"}

    async def discard(self, event_id: uuid.UUID, *, by: str) -> dict[str, Any]:
        if not await self.sensor.outbox.discard(event_id, by=by):
            raise NotFound(f"no dead-lettered outbox event {event_id}")
        log.warning("outbox dead letter discarded", event_id=str(event_id), by=by)
        return {"id": str(event_id), "status": "discarded"}


def _source(request: Request) -> OutboxDeadLetters:
    return OutboxDeadLetters(request.app.state.sensor)


dead_letter_router = build_dead_letter_router(
    _source,
    DeadLetterDocs(
        prefix="/outbox",
        names=(
            "list_outbox_dead_letters",
            "get_outbox_dead_letter",
            "replay_outbox_dead_letters",
            "replay_outbox_dead_letter",
            "discard_outbox_dead_letter",
        ),
        summaries=(
            "Outbox events the event service refused for good (admin)",
            "One outbox dead letter with its event (admin)",
            "Deliver the oldest outbox dead letters again (admin)",
            "Deliver an outbox dead letter again (admin)",
            "Discard an outbox dead letter (admin)",
        ),
        descriptions=(
            "Newest first; ``next`` pages on. The events themselves: ``GET .../{event_id}``.",
            None,
            "After their cause is fixed: back to ``pending``, oldest first.",
            "Back to ``pending``, due now: delivered, or dead again with the new reason.",
            "Marked ``discarded`` with who and when (purged with sent rows after the retention).",
        ),
    ),
)

__all__ = ["OutboxDeadLetters", "dead_letter_router"]

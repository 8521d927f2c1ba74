"""Admin routes for the gateway's dead letters: list, inspect, replay, discard.

A dead letter is an event the gateway accepted (202 queued) that the event service then
refused for good (:mod:`sensor_backend.gateway.event_queue`). Replay puts it back into the
spool, so it is delivered, or dead-lettered again with ``times_dead`` incremented (a fixed
limit or schema on the event service makes a replay succeed); discard deletes it, and the
gateway's log keeps the event and who discarded it. The routes themselves are the shared
ones of :mod:`sensor_backend.core.dead_letter_routes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor_backend.core.dead_letter_api import ADMIN_ERRORS, DeadLetterOut, epoch
from sensor_backend.core.dead_letter_routes import (
    WITH_404,
    DeadLetterDocs,
    build_dead_letter_router,
)
from sensor_backend.core.errors import NotFound
from sensor_backend.gateway.event_queue import ORIGIN, decode_event

if TYPE_CHECKING:
    import uuid

    from fastapi import Request

    from sensor_backend.core.dead_letter import DeadLetter
    from sensor_backend.gateway.event_queue import EventQueue


def _out(entry: DeadLetter) -> dict[str, Any]:
    return {
        "id": entry.key,
        "where": entry.origin or ORIGIN,
        "status": entry.status,
        "reason": entry.reason,
        "attempts": entry.attempts,
        "size": entry.size,
        "first_seen_at": epoch(entry.first_seen_at),
        "dead_at": epoch(entry.dead_at),
        "times_dead": entry.times_dead,
        "cursor": entry.seq,
    }


class SpoolDeadLetters:
    """The gateway's dead-letter store (beside its event spool) as a `DeadLetterSource`."""

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue

    async def page(self, *, limit: int, before: int | None) -> dict[str, Any]:
        store = self.queue.dead_letters
        entries = await store.page(limit=limit, before=before)
        return {
            "items": [_out(e) for e in entries],
            "count": len(entries),
            "total": store.count,
            "next": entries[-1].seq if len(entries) == limit else None,
        }

    async def detail(self, event_id: uuid.UUID) -> dict[str, Any]:
        entry = await self.queue.dead_letters.get(str(event_id))
        if entry is None:
            raise NotFound(f"no dead-lettered event {event_id}")
        return {**_out(entry), "event": decode_event(entry.payload)}

    async def replay_oldest(self, limit: int, *, by: str) -> dict[str, Any]:  # noqa: ARG002
        return await self.queue.replay_oldest(limit)

    async def replay(self, event_id: uuid.UUID, *, by: str) -> dict[str, Any]:  # noqa: ARG002
        return await self.queue.replay(str(event_id))

    async def discard(self, event_id: uuid.UUID, *, by: str) -> dict[str, Any]:
        return await self.queue.discard(str(event_id), by=by)


def _source(request: Request) -> SpoolDeadLetters:
    return SpoolDeadLetters(request.app.state.gateway.events)


_SPOOL_FULL = {
    "model": ADMIN_ERRORS[503]["model"],
    "description": "the event spool is full, or auth cannot check the token (Retry-After)",
}

dead_letter_router = build_dead_letter_router(
    _source,
    DeadLetterDocs(
        prefix="",
        names=(
            "list_dead_letters",
            "get_dead_letter",
            "replay_dead_letters",
            "replay_dead_letter",
            "discard_dead_letter",
        ),
        summaries=(
            "Events the event service refused for good (admin)",
            "One dead letter with its event (admin)",
            "Re-enqueue the oldest dead letters for delivery (admin)",
            "Re-enqueue a dead letter for delivery (admin)",
            "Discard a dead letter for good (admin)",
        ),
        descriptions=(
            "Newest first; ``next`` pages on. The events themselves: ``GET /dead-letters/{id}``.",
            None,
            (
                "After their cause is fixed (a limit raised, a schema relaxed): back to the"
                " spool.\n\nOldest first; ``remaining`` says whether to call again."
            ),
            "Back into the event spool: delivered, or dead-lettered again with the new reason.",
            "Deleted from the store; the gateway's log keeps the event and who discarded it.",
        ),
        replay_errors={**WITH_404, 503: _SPOOL_FULL},
        replay_all_errors={**ADMIN_ERRORS, 503: _SPOOL_FULL},
    ),
)

__all__ = ["DeadLetterOut", "SpoolDeadLetters", "dead_letter_router"]

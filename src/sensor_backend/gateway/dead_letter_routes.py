"""Admin routes for the gateway's dead letters: list, inspect, replay, discard.

A dead letter is an event the gateway accepted (202 queued) that the event service then
refused for good (:mod:`sensor_backend.gateway.event_queue`). Replay puts it back into the
spool, so it is delivered, or dead-lettered again with ``times_dead`` incremented (a fixed
limit or schema on the event service makes a replay succeed); discard deletes it, and the
gateway's log keeps the event and who discarded it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request

from sensor_backend.core.api_types import INT64_MAX
from sensor_backend.core.dead_letter_api import (
    ADMIN_ERRORS,
    NOT_FOUND,
    DeadLetterDetail,
    DeadLetterOut,
    DeadLetterPage,
    DiscardOut,
    ReplayAllOut,
    ReplayOut,
    epoch,
)
from sensor_backend.core.errors import NotFound
from sensor_backend.core.security import AdminToken
from sensor_backend.gateway.event_queue import ORIGIN, decode_event

if TYPE_CHECKING:
    from sensor_backend.core.dead_letter import DeadLetter
    from sensor_backend.gateway.event_queue import EventQueue

dead_letter_router = APIRouter(tags=["dead letters"])
_WITH_404 = {**ADMIN_ERRORS, **NOT_FOUND}
_REPLAY_ERRORS = {
    **_WITH_404,
    503: {
        "model": ADMIN_ERRORS[503]["model"],
        "description": "the event spool is full, or auth cannot check the token (Retry-After)",
    },
}


def _queue(request: Request) -> EventQueue:
    queue: EventQueue = request.app.state.gateway.events
    return queue


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


@dead_letter_router.get(
    "/dead-letters",
    summary="Events the event service refused for good (admin)",
    response_model=DeadLetterPage,
    responses=ADMIN_ERRORS,
)
async def list_dead_letters(
    request: Request,
    _: AdminToken,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="cursor: `next` of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Newest first; ``next`` pages on. The events themselves: ``GET /dead-letters/{id}``."""
    store = _queue(request).dead_letters
    entries = await store.page(limit=limit, before=before)
    return {
        "items": [_out(e) for e in entries],
        "count": len(entries),
        "total": store.count,
        "next": entries[-1].seq if len(entries) == limit else None,
    }


@dead_letter_router.get(
    "/dead-letters/{event_id}",
    summary="One dead letter with its event (admin)",
    response_model=DeadLetterDetail,
    responses=_WITH_404,
)
async def get_dead_letter(request: Request, event_id: uuid.UUID, _: AdminToken) -> dict[str, Any]:
    entry = await _queue(request).dead_letters.get(str(event_id))
    if entry is None:
        raise NotFound(f"no dead-lettered event {event_id}")
    return {**_out(entry), "event": decode_event(entry.payload)}


# Not under /dead-letters/: GET /dead-letters/replay would be an event id, not a 405.
@dead_letter_router.post(
    "/dead-letter-replays",
    summary="Re-enqueue the oldest dead letters for delivery (admin)",
    response_model=ReplayAllOut,
    responses={**ADMIN_ERRORS, 503: _REPLAY_ERRORS[503]},
)
async def replay_dead_letters(
    request: Request,
    _: AdminToken,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
) -> dict[str, Any]:
    """After their cause is fixed (a limit raised, a schema relaxed): back to the spool.

    Oldest first; ``remaining`` says whether to call again.
    """
    return await _queue(request).replay_oldest(limit)


@dead_letter_router.post(
    "/dead-letters/{event_id}/replay",
    summary="Re-enqueue a dead letter for delivery (admin)",
    response_model=ReplayOut,
    responses=_REPLAY_ERRORS,
)
async def replay_dead_letter(
    request: Request, event_id: uuid.UUID, _: AdminToken
) -> dict[str, Any]:
    """Back into the event spool: delivered, or dead-lettered again with the new reason."""
    return await _queue(request).replay(str(event_id))


@dead_letter_router.delete(
    "/dead-letters/{event_id}",
    summary="Discard a dead letter for good (admin)",
    response_model=DiscardOut,
    responses=_WITH_404,
)
async def discard_dead_letter(
    request: Request, event_id: uuid.UUID, auth: AdminToken
) -> dict[str, Any]:
    """Deleted from the store; the gateway's log keeps the event and who discarded it."""
    return await _queue(request).discard(str(event_id), by=auth.claims.sub)


__all__ = ["DeadLetterOut", "dead_letter_router"]

"""Admin routes for the outbox's dead letters: list, inspect, replay, discard.

A dead letter here is an outbox row the event service refused for good (or one over the
event contract's per-event limit, :mod:`sensor_backend.sensor.relay`). Replay makes it
``pending`` again, due now: the relay delivers it, or it is dead again with
``times_dead`` incremented and the new reason. Discard marks it ``discarded``, kept with
who and when until the outbox retention purges it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from sensor_backend.core.api_types import INT64_MAX
from sensor_backend.core.dead_letter_api import (
    ADMIN_ERRORS,
    NOT_FOUND,
    DeadLetterDetail,
    DeadLetterPage,
    DiscardOut,
    ReplayAllOut,
    ReplayOut,
)
from sensor_backend.core.errors import NotFound
from sensor_backend.core.log import get_logger
from sensor_backend.core.security import AdminToken
from sensor_backend.sensor.outbox import Outbox  # noqa: TC001 - used at run time

dead_letter_router = APIRouter(tags=["dead letters"])
log = get_logger("sensor.dead_letters")
_WITH_404 = {**ADMIN_ERRORS, **NOT_FOUND}


def _outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.sensor.outbox
    return outbox


@dead_letter_router.get(
    "/outbox/dead-letters",
    summary="Outbox events the event service refused for good (admin)",
    response_model=DeadLetterPage,
    responses=ADMIN_ERRORS,
)
async def list_outbox_dead_letters(
    request: Request,
    _: AdminToken,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="cursor: `next` of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Newest first; ``next`` pages on. The events themselves: ``GET .../{event_id}``."""
    sensor = request.app.state.sensor
    items = await _outbox(request).dead_letters(limit=limit, before=before)
    total = sensor.workers.depths.get("outbox_dead")
    return {
        "items": items,
        "count": len(items),
        "total": total if isinstance(total, int) else None,
        "next": items[-1]["cursor"] if len(items) == limit else None,
    }


@dead_letter_router.get(
    "/outbox/dead-letters/{event_id}",
    summary="One outbox dead letter with its event (admin)",
    response_model=DeadLetterDetail,
    responses=_WITH_404,
)
async def get_outbox_dead_letter(
    request: Request, event_id: uuid.UUID, _: AdminToken
) -> dict[str, Any]:
    doc = await _outbox(request).dead_letter(event_id)
    if doc is None:
        raise NotFound(f"no dead-lettered outbox event {event_id}")
    return doc


# Not under /dead-letters/: GET /dead-letters/replay would be an event id, not a 405.
@dead_letter_router.post(
    "/outbox/dead-letter-replays",
    summary="Deliver the oldest outbox dead letters again (admin)",
    response_model=ReplayAllOut,
    responses=ADMIN_ERRORS,
)
async def replay_outbox_dead_letters(
    request: Request,
    auth: AdminToken,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
) -> dict[str, Any]:
    """After their cause is fixed: back to ``pending``, oldest first."""
    ids = await _outbox(request).replay_oldest(limit)
    request.app.state.sensor.relay.wake()
    log.info("outbox dead letters replayed", count=len(ids), by=auth.claims.sub)
    dead = request.app.state.sensor.workers.depths.get("outbox_dead")
    remaining = max(dead - len(ids), 0) if isinstance(dead, int) else None
    return {"replayed": ids, "count": len(ids), "remaining": remaining}


@dead_letter_router.post(
    "/outbox/dead-letters/{event_id}/replay",
    summary="Deliver an outbox dead letter again (admin)",
    response_model=ReplayOut,
    responses=_WITH_404,
)
async def replay_outbox_dead_letter(
    request: Request, event_id: uuid.UUID, auth: AdminToken
) -> dict[str, Any]:
    """Back to ``pending``, due now: delivered, or dead again with the new reason."""
    if not await _outbox(request).replay(event_id):
        raise NotFound(f"no dead-lettered outbox event {event_id}")
    request.app.state.sensor.relay.wake()
    log.info("outbox dead letter replayed", event_id=str(event_id), by=auth.claims.sub)
    return {"id": str(event_id), "status": "pending"}


@dead_letter_router.delete(
    "/outbox/dead-letters/{event_id}",
    summary="Discard an outbox dead letter (admin)",
    response_model=DiscardOut,
    responses=_WITH_404,
)
async def discard_outbox_dead_letter(
    request: Request, event_id: uuid.UUID, auth: AdminToken
) -> dict[str, Any]:
    """Marked ``discarded`` with who and when (purged with sent rows after the retention)."""
    if not await _outbox(request).discard(event_id, by=auth.claims.sub):
        raise NotFound(f"no dead-lettered outbox event {event_id}")
    log.warning("outbox dead letter discarded", event_id=str(event_id), by=auth.claims.sub)
    return {"id": str(event_id), "status": "discarded"}

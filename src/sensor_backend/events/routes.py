"""HTTP routes of the event service: send-event, stats, logs."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from sensor_backend.core.api_types import INT64_MAX, Rfc3339
from sensor_backend.core.cloudevents import CloudEvent
from sensor_backend.core.openapi import error_responses
from sensor_backend.core.security import EventsRead, EventsWrite
from sensor_backend.events.service import EventService  # noqa: TC001 - FastAPI resolves it

router = APIRouter()
PARSE_INLINE_BYTES = 256 * 1024


def service(request: Request) -> EventService:
    svc: EventService = request.app.state.events
    return svc


_EVENT_SCHEMA = CloudEvent.model_json_schema()
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {"type": "array", "items": _EVENT_SCHEMA, "minItems": 1},
                    ]
                }
            }
        },
    }
}


@router.post(
    "/send-event",
    tags=["events"],
    openapi_extra=_BODY,
    status_code=201,
    responses={
        200: {"description": "Every event was a duplicate (already accepted before)"},
        202: {"description": "Queued durably: the broker is down, sent when it returns"},
        **error_responses(401, 403, 503),
    },
)
async def send_event(request: Request, response: Response, _: EventsWrite) -> dict[str, Any]:
    """Produce one event or a batch: 201 sent, 202 queued (broker down), 200 duplicate.

    413 for a body over the batch byte limit or an event over the per-event limit, 422 for
    an invalid event or too many: the event contract every hop shares (core/event_limits).
    """
    svc = service(request)
    raw = await request.body()
    limits = svc.settings.event_limits()
    if len(raw) <= PARSE_INLINE_BYTES:
        events, _payloads, is_batch = limits.parse(raw)
    else:  # megabytes of JSON take tens of milliseconds to validate: not on the loop
        events, _payloads, is_batch = await asyncio.to_thread(limits.parse, raw)
    results = await svc.publisher.publish(events)
    statuses = [r["status"] for r in results]
    if "queued" in statuses:
        response.status_code, overall = 202, "queued"
    elif "sent" in statuses:
        response.status_code, overall = 201, "sent"
    else:
        response.status_code, overall = 200, "duplicate"
    if not is_batch:
        return results[0]
    return {
        "status": overall,
        "sent": statuses.count("sent"),
        "queued": statuses.count("queued"),
        "duplicates": statuses.count("duplicate"),
        "queue_depth": svc.journal.backlog,
        "results": results,
    }


@router.get("/stats", tags=["events"], responses=error_responses(401, 403, 503))
async def stats(request: Request, _: EventsRead) -> dict[str, Any]:
    """Produce and consume counters, journal depth, lag, latency percentiles, breaker state."""
    return await service(request).stats()


@router.get("/logs", tags=["events"], responses=error_responses(401, 403, 503))
async def logs(  # noqa: PLR0917 - FastAPI query parameters
    request: Request,
    _: EventsRead,
    type: Annotated[str | None, Query(max_length=256)] = None,  # noqa: A002 - the API's name
    subject: Annotated[str | None, Query(max_length=512)] = None,
    since: Rfc3339 | None = None,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="cursor: seq of the last item seen")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The processing log, newest first, filtered and paginated (``next`` is the cursor)."""
    items = await service(request).store.log(
        type_=type, subject=subject, since=since, before=before, limit=limit
    )
    next_cursor = items[-1]["seq"] if len(items) == limit else None
    return {"items": items, "count": len(items), "next": next_cursor}

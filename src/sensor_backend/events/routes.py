"""HTTP routes of the event service: send-event, stats, logs."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter, ValidationError

from sensor_backend.core.errors import BadRequest, ServiceError
from sensor_backend.core.security import Token
from sensor_backend.events.models import CloudEvent
from sensor_backend.events.service import EventService  # noqa: TC001 - FastAPI resolves it

router = APIRouter()
EVENTS = TypeAdapter(list[CloudEvent])


class InvalidEventError(ServiceError):
    status_code = 422
    code = "validation_error"


def _reject_constant(name: str) -> None:
    raise BadRequest(f"{name} is not valid JSON (non-finite numbers are refused)")


def parse_events(raw: bytes, max_batch: int) -> tuple[list[CloudEvent], bool]:
    """The events of a body that is one event or a list; True when it was a list."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    is_batch = isinstance(doc, list)
    items = doc if is_batch else [doc]
    if not items:
        raise InvalidEventError("an event batch needs at least one event", fields=[])
    if len(items) > max_batch:
        raise InvalidEventError(
            f"at most {max_batch} events per batch",
            fields=[{"field": "body", "message": "too many"}],
        )
    try:
        return EVENTS.validate_python(items), is_batch
    except ValidationError as exc:
        fields = [
            {
                "field": _field(err["loc"], is_batch=is_batch),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        raise InvalidEventError(f"invalid {fields[0]['field']}", fields=fields) from exc


def _field(loc: tuple[Any, ...], *, is_batch: bool) -> str:
    parts = list(loc) if is_batch else list(loc[1:])
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


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


@router.post("/send-event", tags=["events"], openapi_extra=_BODY, status_code=201)
async def send_event(request: Request, response: Response, _: Token) -> dict[str, Any]:
    """Produce one event or a batch: 201 sent, 202 queued (broker down), 200 duplicate."""
    svc = service(request)
    events, is_batch = parse_events(await request.body(), svc.settings.max_batch)
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
        "queue_depth": svc.spool.depth,
        "results": results,
    }


@router.get("/stats", tags=["events"])
async def stats(request: Request, _: Token) -> dict[str, Any]:
    """Produce and consume counters, spool depth, lag, latency percentiles, breaker state."""
    return await service(request).stats()


@router.get("/logs", tags=["events"])
async def logs(  # noqa: PLR0917 - FastAPI query parameters
    request: Request,
    _: Token,
    type: Annotated[str | None, Query(max_length=256)] = None,  # noqa: A002 - the API's name
    subject: Annotated[str | None, Query(max_length=512)] = None,
    since: datetime | None = None,
    before: Annotated[
        int | None, Query(ge=1, description="cursor: seq of the last item seen")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The processing log, newest first, filtered and paginated (``next`` is the cursor)."""
    items = await service(request).store.log(
        type_=type, subject=subject, since=since, before=before, limit=limit
    )
    next_cursor = items[-1]["seq"] if len(items) == limit else None
    return {"items": items, "count": len(items), "next": next_cursor}

"""The admin API shape for dead letters, shared by the gateway and the sensor service.

Both stores (the gateway's beside its spool, the sensor outbox's dead rows) answer in these
models, so an operator (and the console) reads one format. Every route is admin-only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    """The JSON error body every service answers (core/errors.py)."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(examples=["not_found"])
    message: str


class DeadLetterOut(BaseModel):
    id: str = Field(description="the event id (the dedup key)")
    where: str = Field(description="the store: gateway-spool or sensor-outbox")
    status: int | None = Field(description="the HTTP status of the refusal")
    reason: str
    attempts: int = Field(description="delivery attempts, all tries together")
    size: int | None = Field(description="bytes of the stored event")
    first_seen_at: datetime = Field(description="when the event was accepted")
    dead_at: datetime = Field(description="when it was (last) dead-lettered")
    times_dead: int = Field(description="1, plus one per replay that was refused again")
    cursor: int = Field(description="pass as `before` to page on")


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    count: int
    total: int | None = Field(description="dead letters in the store (last count)")
    next: int | None = Field(description="cursor for the next (older) page")


class DeadLetterDetail(DeadLetterOut):
    event: Any = Field(description="the event as stored (CloudEvents JSON)")


class ReplayOut(BaseModel):
    id: str
    status: Literal["queued", "already_queued", "pending"]
    queue_depth: int | None = None


class ReplayAllOut(BaseModel):
    replayed: list[str] = Field(description="ids put back for delivery, oldest first")
    count: int
    remaining: int | None = Field(description="dead letters left in the store (last count)")


class DiscardOut(BaseModel):
    id: str
    status: Literal["discarded"]


def epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# The statuses every admin dead-letter route can answer besides its 200.
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("missing, invalid or expired bearer token"),
    403: _error("the token lacks the admin role"),
    422: _error("a malformed event id or query parameter"),
    503: _error("auth cannot check the token, or the store is unavailable (Retry-After)"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("no dead letter with this event id")}

"""The admin routes of a dead-letter store, for any store: list, inspect, replay, discard.

The gateway (its events refused by the event service, beside its spool) and the sensor
service (its outbox's dead rows) serve the same five routes in the same shapes
(:mod:`.dead_letter_api`); each hands `build_dead_letter_router` a `DeadLetterSource` over its
store and the words of its own documentation (`DeadLetterDocs`). Every route is admin-only.
"""

from __future__ import annotations

import uuid  # noqa: TC003 - FastAPI resolves the routes' annotations at run time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol

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
from sensor_backend.core.security import AdminToken  # noqa: TC001 - FastAPI reads it

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DeadLetterDocs", "DeadLetterSource", "build_dead_letter_router"]

WITH_404: dict[int | str, dict[str, Any]] = {**ADMIN_ERRORS, **NOT_FOUND}


class DeadLetterSource(Protocol):
    """A dead-letter store as the admin routes see it; a missing letter raises NotFound."""

    async def page(self, *, limit: int, before: int | None) -> dict[str, Any]:
        """A `DeadLetterPage`: newest first, ``next`` the cursor of the next page."""
        ...

    async def detail(self, event_id: uuid.UUID) -> dict[str, Any]:
        """A `DeadLetterDetail`: the letter with its event."""
        ...

    async def replay_oldest(self, limit: int, *, by: str) -> dict[str, Any]:
        """A `ReplayAllOut`: the oldest letters delivered again."""
        ...

    async def replay(self, event_id: uuid.UUID, *, by: str) -> dict[str, Any]:
        """A `ReplayOut`: the letter delivered again."""
        ...

    async def discard(self, event_id: uuid.UUID, *, by: str) -> dict[str, Any]:
        """A `DiscardOut`: the letter given up for good."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetterDocs:
    """Paths, operation names and words of one service's dead-letter routes.

    ``names`` and ``summaries`` are in route order: list, get, replay-all, replay,
    discard; ``descriptions`` likewise (None: no description).
    """

    prefix: str
    names: tuple[str, str, str, str, str]
    summaries: tuple[str, str, str, str, str]
    descriptions: tuple[str | None, str | None, str | None, str | None, str | None]
    replay_errors: dict[int | str, dict[str, Any]] = field(default_factory=lambda: WITH_404)
    replay_all_errors: dict[int | str, dict[str, Any]] = field(
        default_factory=lambda: dict(ADMIN_ERRORS)
    )


def build_dead_letter_router(
    source: Callable[[Request], DeadLetterSource], docs: DeadLetterDocs
) -> APIRouter:
    """The five admin routes under ``docs.prefix`` over the store ``source(request)`` gives."""
    router = APIRouter(tags=["dead letters"])
    base = f"{docs.prefix}/dead-letters"
    names, summaries, descriptions = docs.names, docs.summaries, docs.descriptions

    async def list_letters(
        request: Request,
        _: AdminToken,
        before: Annotated[
            int | None, Query(ge=1, le=INT64_MAX, description="cursor: `next` of a page")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        return await source(request).page(limit=limit, before=before)

    async def get_letter(request: Request, event_id: uuid.UUID, _: AdminToken) -> dict[str, Any]:
        return await source(request).detail(event_id)

    async def replay_letters(
        request: Request,
        auth: AdminToken,
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 100,
    ) -> dict[str, Any]:
        return await source(request).replay_oldest(limit, by=auth.claims.sub)

    async def replay_letter(
        request: Request, event_id: uuid.UUID, auth: AdminToken
    ) -> dict[str, Any]:
        return await source(request).replay(event_id, by=auth.claims.sub)

    async def discard_letter(
        request: Request, event_id: uuid.UUID, auth: AdminToken
    ) -> dict[str, Any]:
        return await source(request).discard(event_id, by=auth.claims.sub)

    routes: tuple[tuple[str, str, Any, type, dict[int | str, dict[str, Any]]], ...] = (
        ("GET", base, list_letters, DeadLetterPage, dict(ADMIN_ERRORS)),
        ("GET", f"{base}/{{event_id}}", get_letter, DeadLetterDetail, WITH_404),
        # Not under /dead-letters/: GET /dead-letters/replay would be an event id, not a 405.
        (
            "POST",
            f"{docs.prefix}/dead-letter-replays",
            replay_letters,
            ReplayAllOut,
            docs.replay_all_errors,
        ),
        ("POST", f"{base}/{{event_id}}/replay", replay_letter, ReplayOut, docs.replay_errors),
        ("DELETE", f"{base}/{{event_id}}", discard_letter, DiscardOut, WITH_404),
    )
    for (method, path, endpoint, model, responses), name, summary, description in zip(
        routes, names, summaries, descriptions, strict=True
    ):
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            name=name,
            summary=summary,
            description=description or "",
            response_model=model,
            responses=responses,
        )
    return router

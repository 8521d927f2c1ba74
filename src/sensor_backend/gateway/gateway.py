"""The gateway's shared state: a client per service, token checks, the event queue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sensor_backend.core.errors import Unauthorized
from sensor_backend.core.security import AUTH_MODE_HEADER

if TYPE_CHECKING:
    from starlette.types import Scope, Send

    from sensor_backend.core.app import ServiceContext
    from sensor_backend.core.security import AuthGuard
    from sensor_backend.core.service_client import ServiceClient
    from sensor_backend.gateway.event_queue import EventQueue
    from sensor_backend.gateway.settings import GatewaySettings

FALLBACK = [(AUTH_MODE_HEADER.lower().encode(), b"fallback")]


class Gateway:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        ctx: ServiceContext,
        upstreams: dict[str, ServiceClient],
        guard: AuthGuard,
        events: EventQueue,
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.upstreams = upstreams
        self.guard = guard
        self.events = events

    async def authenticate(self, scope: Scope) -> list[tuple[bytes, bytes]] | None:
        """Check the bearer token; the response headers to add (fallback mode) or None."""
        authorization: str | None = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        if authorization is None:
            raise Unauthorized("missing bearer token", token_error=False)
        result = await self.guard.authenticate(authorization)
        return FALLBACK if result.mode == "fallback" else None

    @staticmethod
    async def json(
        send: Send, status: int, doc: dict[str, Any], extra: list[tuple[bytes, bytes]] | None
    ) -> None:
        body = json.dumps(doc).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send(
            {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
        )
        await send({"type": "http.response.body", "body": body})

"""Request-scoped fault injection, off unless a service sets ``<PREFIX>FAULT_INJECTION``.

Modelled on Envoy's fault filter and its ``x-envoy-fault-abort-request`` header: a request
carrying ``X-Fault-Abort: <status>`` (500-599) is answered with that status by the service
itself, before routing, as a real server error. It lets drills and resilience tests provoke
a *request-caused* 5xx in a real service process (the gateway must not shut a healthy
service out for it), without a mock in the path. Refused in production (settings.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

HEADER = b"x-fault-abort"
_STATUSES = range(500, 600)


class FaultInjectionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == HEADER and value.isdigit() and int(value) in _STATUSES:
                    await _abort(send, int(value))
                    return
        await self.app(scope, receive, send)


async def _abort(send: Send, status: int) -> None:
    body = json.dumps(
        {"error": "injected_fault", "message": f"fault injected by X-Fault-Abort: {status}"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

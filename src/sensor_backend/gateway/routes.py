"""The gateway's routes: the proxy table and the gateway's own operations.

Proxied routes are Starlette routes whose endpoint is a raw ASGI handler (no FastAPI
dependency machinery on the hot path). Protected routes authenticate the bearer token first
(auth's /verify, or the JWKS fallback with ``X-Auth-Mode: fallback``); the downstream service
verifies it again (no trusted-header shortcut between services).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.routing import Route

from sensor_backend.core.errors import NotFound, Unavailable
from sensor_backend.core.openapi import error_response_object, error_responses
from sensor_backend.core.scopes import EVENTS_WRITE
from sensor_backend.core.security import AdminToken
from sensor_backend.core.token_auth import require_scope
from sensor_backend.gateway.event_queue import read_event_body
from sensor_backend.gateway.health import public_snapshots
from sensor_backend.gateway.proxy import forward
from sensor_backend.gateway.service_openapi import service_operation
from sensor_backend.gateway.settings import internal_name, public_name

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from sensor_backend.gateway.gateway import Gateway


@dataclass(frozen=True, slots=True)
class ProxyRule:
    method: str
    path: str  # the gateway's path template
    service: str  # auth, sensor, events
    target: str  # the service's path template
    summary: str

    @property
    def protected(self) -> bool:
        """Auth's own routes check credentials themselves; everything else needs a token."""
        return self.service != "auth"

    @property
    def honours_idempotency_key(self) -> bool:
        """The service dedups this POST on its Idempotency-Key, so it may be retried."""
        return self.method == "POST" and self.target == "/test/{sensor_type}"

    @property
    def group(self) -> str:
        """The rate-limit group (GATEWAY_RATE_LIMITS): what kind of work the route asks for."""
        if not self.protected:
            return "login" if self.target in {"/token", "/register"} else "public"
        if self.method == "GET":
            return "read"
        return "tests" if self.target.startswith("/test/") else "write"


JWKS = "/.well-known/jwks.json"
RULES: tuple[ProxyRule, ...] = (
    ProxyRule("POST", "/auth/register", "auth", "/register", "Register a user"),
    ProxyRule("POST", "/register", "auth", "/register", "Register a user"),
    ProxyRule("POST", "/auth/token", "auth", "/token", "A token (password or client credentials)"),
    ProxyRule("POST", "/token", "auth", "/token", "A token (password or client credentials)"),
    ProxyRule("GET", "/auth/verify", "auth", "/verify", "Verify a token"),
    ProxyRule("GET", "/verify", "auth", "/verify", "Verify a token"),
    ProxyRule("POST", "/auth/revoke", "auth", "/revoke", "Revoke a token"),
    ProxyRule("GET", f"/auth{JWKS}", "auth", JWKS, "Public keys (JWKS)"),
    ProxyRule("GET", JWKS, "auth", JWKS, "Public keys (JWKS)"),
    # Machine clients (rigs); auth itself requires the admin's token.
    ProxyRule("POST", "/auth/clients", "auth", "/clients", "Create a rig client (admin)"),
    ProxyRule("GET", "/auth/clients", "auth", "/clients", "List rig clients (admin)"),
    ProxyRule("POST", "/auth/clients/bulk", "auth", "/clients/bulk", "Create rig clients in bulk"),
    ProxyRule(
        "POST",
        "/auth/clients/{client_id}/rotate",
        "auth",
        "/clients/{client_id}/rotate",
        "Rotate a rig client's secret (admin)",
    ),
    ProxyRule(
        "POST",
        "/auth/clients/{client_id}/revoke",
        "auth",
        "/clients/{client_id}/revoke",
        "Revoke a rig client (admin)",
    ),
    ProxyRule(
        "POST", "/test/sensor/{sensor_type}", "sensor", "/test/{sensor_type}", "Start a test"
    ),
    ProxyRule("GET", "/test/sensor/{test_id}", "sensor", "/test/{test_id}", "A test's result"),
    ProxyRule("GET", "/test/{test_id}", "sensor", "/test/{test_id}", "A test's result"),
    ProxyRule("GET", "/test/{test_id}/readings", "sensor", "/test/{test_id}/readings", "Readings"),
    ProxyRule(
        "GET",
        "/test/{test_id}/readings.csv",
        "sensor",
        "/test/{test_id}/readings.csv",
        "All readings as CSV",
    ),
    ProxyRule(
        "GET",
        "/test/{test_id}/report",
        "sensor",
        "/test/{test_id}/report",
        "A test's printable report (HTML, A4)",
    ),
    ProxyRule(
        "GET",
        "/test/{test_id}/report.pdf",
        "sensor",
        "/test/{test_id}/report.pdf",
        "A test's report as an A4 PDF",
    ),
    ProxyRule("GET", "/tests", "sensor", "/tests", "List sensor tests"),
    ProxyRule("GET", "/sensor-types", "sensor", "/sensor-types", "List sensor types"),
    ProxyRule("POST", "/sensor-types", "sensor", "/sensor-types", "Define a sensor type (admin)"),
    ProxyRule("GET", "/sensor-types/{name}", "sensor", "/sensor-types/{name}", "One sensor type"),
    ProxyRule("GET", "/events/stats", "events", "/stats", "Event statistics"),
    ProxyRule("GET", "/events/logs", "events", "/logs", "Event processing log"),
)
EVENT_PATHS = ("/events", "/send-event")


class ProxyHandler:
    """The ASGI endpoint of one proxy rule."""

    def __init__(self, gateway: Gateway, rule: ProxyRule) -> None:
        self.gateway = gateway
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self.rule
        gateway = self.gateway
        _, extra = await gateway.admit(scope, rule.group, protected=rule.protected)
        params = {k: quote(str(v), safe="") for k, v in scope.get("path_params", {}).items()}
        await forward(
            scope,
            receive,
            send,
            gateway.clients[rule.service],
            rule.target.format(**params),
            extra_headers=extra,
            max_body_bytes=gateway.body_limits.get(rule.group),
            honours_idempotency_key=rule.honours_idempotency_key,
        )


class EventHandler:
    """``POST /events``: proxied to the event service, or spooled when it is down."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        auth, extra = await gateway.admit(scope, "events")
        if auth is not None:
            # The event service checks events:write too, but not when it is down and the
            # event is spooled here: so the gateway checks it on every request.
            require_scope(auth, EVENTS_WRITE)
        queue = gateway.events
        # The event contract first (413, 422, 400), whether the event service is up or
        # not: the gateway never accepts what the event service would refuse.
        raw = await read_event_body(scope, receive, queue.limits)
        events, payloads, is_batch = await queue.parse(raw)
        if queue.spool.depth == 0:
            try:
                await forward(
                    scope,
                    receive,
                    send,
                    gateway.clients["events"],
                    "/send-event",
                    extra_headers=extra,
                    body=raw,
                    relay_unavailable=False,
                )
            except Unavailable:
                pass  # the event service cannot take it now: queue it durably below
            else:
                return
        doc = await queue.accept(events, payloads, is_batch=is_batch)
        await gateway.json(send, 202, doc, extra)


def proxy_routes(gateway: Gateway) -> list[Route]:
    routes = [
        Route(rule.path, ProxyHandler(gateway, rule), methods=[rule.method]) for rule in RULES
    ]
    routes += [Route(path, EventHandler(gateway), methods=["POST"]) for path in EVENT_PATHS]
    return routes


def openapi_paths() -> dict[str, Any]:
    """OpenAPI entries for the proxied routes: the services' own operations.

    Their request and response schemas come from the snapshot in `service_openapi`; the
    gateway adds what it may answer first (401 from its token check, 413 from its body
    limits, 429 from its rate limits, 503 when no replica can serve).
    """
    paths: dict[str, Any] = {}
    gateway_errors = {str(s): error_response_object(s) for s in (401, 413, 429, 503)}
    for rule in RULES:
        op = service_operation(rule.service, rule.method, rule.target, rule.path)
        op["summary"] = rule.summary
        op["tags"] = [rule.service]
        if rule.protected:
            op["responses"].update(gateway_errors)
        else:
            for status in (413, 429, 503):
                op["responses"][str(status)] = error_response_object(status)
        paths.setdefault(rule.path, {})[rule.method.lower()] = op
    for path in EVENT_PATHS:
        op = service_operation("events", "POST", "/send-event", path)
        op["summary"] = "Send events (queued by the gateway while the event service is down)"
        op["responses"].update(gateway_errors)
        op["responses"]["202"] = {"description": "Queued (by the gateway or the event service)"}
        paths[path] = {"post": op}
    return paths


router = APIRouter(tags=["gateway"])


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


@router.get("/circuit-breakers", summary="Every breaker's state")
async def circuit_breakers(request: Request) -> dict[str, Any]:
    return public_snapshots(_gateway(request).ctx.breakers)


@router.post(
    "/circuit-breaker/reset/{service}",
    summary="Close a breaker (admin)",
    responses=error_responses(401, 403, 404, 503),
)
async def reset_breaker(service: str, request: Request, _: AdminToken) -> dict[str, Any]:
    gateway = _gateway(request)
    name = internal_name(service)  # the public kafka, or events, is the event service
    breaker = gateway.ctx.breakers.get(name)
    if breaker is None:
        known = sorted(public_name(n) for n in gateway.ctx.breakers.names())
        raise NotFound(f"no circuit breaker named {service!r}", known=known)
    breaker.reset()
    client = gateway.clients.get(name)
    if client is not None:
        client.pool.readmit_all()
    gateway.ctx.health.poke()
    return {"reset": service, "breaker": breaker.snapshot()}

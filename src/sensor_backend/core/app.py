"""The FastAPI application every service is built on.

`ServiceContext` holds what a service shares across requests (settings, breakers, metrics,
health monitor, start and stop hooks); `create_app` wires it into a FastAPI app with:
- a pure ASGI middleware (not ``BaseHTTPMiddleware``, which costs a task per request) that
  adopts or creates ``X-Request-ID`` and ``traceparent``, limits the request body size,
  records Prometheus metrics per route template and logs one line per request;
- `InputGuard` inside it: text no parser or PostgreSQL can take is a 422 at the edge;
- one handler table mapping errors to JSON bodies (never an HTML page, never a bare 500);
  a 405's ``Allow`` lists every method the path has, across all routes matching it;
- an OpenAPI document listing every status a route answers (`core.openapi`);
- ``/health``, ``/health/live``, ``/health/ready`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from sensor_backend import __version__
from sensor_backend.core import spans, tracing
from sensor_backend.core.breaker import BreakerRegistry, CircuitOpenError
from sensor_backend.core.errors import BadRequest, PayloadTooLarge, ServiceError, Unavailable
from sensor_backend.core.fault_injection import FaultInjectionMiddleware
from sensor_backend.core.health import HealthCollector, HealthMonitor, Status
from sensor_backend.core.input_guard import InputGuard, UnsafeBodyError
from sensor_backend.core.log import get_logger
from sensor_backend.core.metrics import ServiceMetrics
from sensor_backend.core.openapi import install_openapi
from sensor_backend.core.request_context import incoming, request_id_var, trace_var

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from sensor_backend.core.settings import ServiceSettings


class Readiness(BaseModel):
    status: Status


CLIENT_CLOSED_REQUEST = 499
QUIET_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})


@dataclass
class ServiceContext:
    settings: ServiceSettings
    breakers: BreakerRegistry = field(default_factory=BreakerRegistry)
    metrics: ServiceMetrics = field(init=False)
    health: HealthMonitor = field(init=False)
    max_body_bytes: int = 1 << 20
    # The paths whose request bodies the input guard checks (None: all). The gateway
    # checks only the bodies it keeps (events it spools) and streams the rest on to the
    # services, which check them at their own edge.
    body_scan_paths: frozenset[str] | None = None
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        name = self.settings.service_name
        self.metrics = ServiceMetrics(name, self.breakers)
        self.health = HealthMonitor(
            service=name,
            instance=self.settings.instance_id,
            interval_s=self.settings.health_probe_interval_s,
            breakers=self.breakers,
        )
        self.metrics.registry.register(HealthCollector(self.health))


def _read_headers(scope: Scope) -> tuple[str | None, str | None, int | None]:
    """``X-Request-ID``, ``traceparent`` and Content-Length (-1 when malformed)."""
    rid: str | None = None
    traceparent: str | None = None
    length: int | None = None
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            rid = value.decode("latin-1")
        elif key == b"traceparent":
            traceparent = value.decode("latin-1")
        elif key == b"content-length":
            length = int(value) if value.isdigit() else -1
    return rid, traceparent, length


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body over {limit} bytes", limit_bytes=limit)


def _length_error(length: int | None, limit: int) -> ServiceError | None:
    """Refuse before reading: a malformed Content-Length, or one over the limit."""
    if length is not None and length < 0:
        return BadRequest("invalid Content-Length header")
    if length is not None and length > limit:
        return _too_large(limit)
    return None


class BodyTooLargeError(StarletteHTTPException):
    """Raised while a body streams in past the limit; rendered as 413 by `_http_error`.

    An HTTPException because FastAPI re-raises those from body parsing; anything else
    would become its generic 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over {limit} bytes")
        self.limit = limit


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx
        self.log = get_logger("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid_raw, tp_raw, length = _read_headers(scope)
        rid, trace = incoming(rid_raw, tp_raw)
        server_span = None
        if tracing.state.tracer is not None and scope["path"] not in QUIET_PATHS:
            # The span's ids replace ours, so the log lines carry the exported ids. Health
            # checks and scrapes (every few seconds, from every prober) are not traced.
            server_span = spans.ServerSpan(scope, tp_raw)
            trace = server_span.trace
        rid_token = request_id_var.set(rid)
        trace_token = trace_var.set(trace)
        started = time.perf_counter()
        status = 500
        extra_headers = [
            (b"x-request-id", rid.encode()),
            (b"traceparent", trace.traceparent.encode()),
        ]

        started_response = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self._dispatch(scope, receive, send_wrapper, length)
        except ClientDisconnect:
            # The client went away mid-request: nobody to answer, and not the service's
            # fault. Logged and counted as 499 (nginx's "client closed request"), not 500.
            status = CLIENT_CLOSED_REQUEST
        except Exception as exc:
            # Handled here, inside the request context, so the 500 keeps X-Request-ID and
            # traceparent and its log line the request id. Starlette would handle it
            # outside every middleware.
            self.log.error("unhandled error", exc_info=exc)  # noqa: TRY400 - exc_info is the traceback
            if started_response:
                raise
            await _unexpected_response()(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            request_id_var.reset(rid_token)
            trace_var.reset(trace_token)
            if server_span is not None:
                server_span.end(scope, status)

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, length: int | None
    ) -> None:
        """The app, or an early 4xx for a malformed or oversized Content-Length."""
        limit = self.ctx.max_body_bytes
        early = _length_error(length, limit)
        if early is not None:
            await _error_response(early)(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            # Chunked bodies have no Content-Length: count what actually arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, receive_limited, send)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        template = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        self.ctx.metrics.observe_request(method, template, status, elapsed)
        path = scope["path"]
        if path not in QUIET_PATHS:
            self.log.info(
                "request",
                method=method,
                path=path,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )


def _error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers())


async def _service_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)  # noqa: S101 - registered for ServiceError only
    return _error_response(exc)


async def _circuit_open(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CircuitOpenError)  # noqa: S101 - registered for CircuitOpenError only
    return _error_response(
        Unavailable(f"{exc.name} is unavailable (circuit open)", retry_after_s=exc.retry_after_s)
    )


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    fields = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())),
            "message": err.get("msg", "invalid"),
            "type": err.get("type", "value_error"),
        }
        for err in exc.errors()
    ]
    first = fields[0]["field"] if fields else "request"
    return JSONResponse(
        {"error": "validation_error", "message": f"invalid {first}", "fields": fields},
        status_code=422,
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names one route's)."""
    probe = {**request.scope, "method": ""}
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(probe)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    if isinstance(exc, BodyTooLargeError):
        return _error_response(_too_large(exc.limit))
    if isinstance(exc, UnsafeBodyError):
        return _error_response(exc.error)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = {"error": code, "message": str(exc.detail)}
    headers = exc.headers
    if exc.status_code == 405:  # noqa: PLR2004 - the status this branch is about
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _unexpected_response() -> JSONResponse:
    return JSONResponse(
        {"error": "internal_error", "message": "unexpected error; see the service log"},
        status_code=500,
    )


async def _unexpected(_: Request, exc: Exception) -> Response:
    get_logger("http").error("unhandled error", exc_info=exc)
    return _unexpected_response()


def create_app(
    ctx: ServiceContext,
    *,
    title: str,
    description: str = "",
    health_report: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    """The service's app; ``health_report`` replaces the default /health document."""
    report = health_report or ctx.health.report

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings = ctx.settings
        traced = tracing.configure_tracing(settings.service_name, instance_id=settings.instance_id)
        for hook in ctx.on_startup:
            await hook()
        await ctx.health.start()
        try:
            yield
        finally:
            await ctx.health.stop()
            for hook in reversed(ctx.on_shutdown):
                await hook()
            if traced:
                # Export what the batch processor still holds before the process ends.
                await asyncio.to_thread(tracing.shutdown_tracing)

    app = FastAPI(title=title, description=description, version=__version__, lifespan=lifespan)
    app.state.ctx = ctx
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(CircuitOpenError, _circuit_open)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    if ctx.settings.fault_injection:
        # Inside the observability middleware: an injected fault is logged and counted
        # like any other answer.
        app.add_middleware(FaultInjectionMiddleware)
    # Inside the observability middleware too: a refused input keeps its request id.
    app.add_middleware(InputGuard, body_scan_paths=ctx.body_scan_paths)
    app.add_middleware(ObservabilityMiddleware, ctx=ctx)
    install_openapi(app)

    @app.get("/health", tags=["ops"], summary="Liveness and dependencies (cached probes)")
    async def health() -> dict[str, Any]:
        return report()

    @app.get("/health/live", tags=["ops"], summary="The process answers")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/health/ready",
        tags=["ops"],
        summary="Ready for traffic (503 when unhealthy)",
        responses={503: {"description": "An essential dependency is down", "model": Readiness}},
    )
    async def ready() -> JSONResponse:
        status = ctx.health.status
        code = 503 if status is Status.UNHEALTHY else 200
        return JSONResponse({"status": status.value}, status_code=code)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        payload, content_type = ctx.metrics.render()
        return Response(payload, media_type=content_type)

    return app

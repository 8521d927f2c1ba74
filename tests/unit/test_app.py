"""The shared app factory: request identity, body limits, JSON errors, metrics and health.

Driven in-process with ``httpx.ASGITransport`` (no server, no network). ASGITransport does
not run the lifespan; the test that needs it enters ``app.router.lifespan_context``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import pytest
from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from sensor_backend.core import app as app_module
from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.breaker import BreakerConfig, CircuitBreaker, CircuitOpenError
from sensor_backend.core.clock import ManualClock
from sensor_backend.core.errors import NotFound, Unavailable
from sensor_backend.core.request_context import parse_traceparent, request_id_var
from sensor_backend.core.settings import ServiceSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI

LIMIT = 64
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMOTEST_", frozen=True, extra="ignore")
    service_name: ClassVar[str] = "demo"
    default_port: ClassVar[int] = 8099


class Item(BaseModel):
    name: str
    quantity: int = Field(ge=0)


class LogRecorder:
    """Stands in for the structlog logger: records events with the request id in context."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append(("info", event, request_id_var.get(), kw))

    def error(self, event: str, **kw: Any) -> None:
        self.events.append(("error", event, request_id_var.get(), kw))


@pytest.fixture
def ctx() -> ServiceContext:
    return ServiceContext(DemoSettings(environment="development"), max_body_bytes=LIMIT)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(app_module, "get_logger", lambda _name: recorder)
    return recorder


@pytest.fixture
def app(ctx: ServiceContext, logs: LogRecorder) -> FastAPI:
    app = create_app(ctx, title="demo")

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise NotFound("no item 0", item_id=item_id)
        return {"id": item_id}

    @app.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return item.model_dump()

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise Unavailable("database down", retry_after_s=2.2)

    @app.get("/breaker/{wait}")
    async def breaker_open(wait: float) -> None:
        raise CircuitOpenError("database", wait)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: Starlette re-raises unhandled errors after sending the 500.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        yield client


async def chunks(total: int, size: int = 16) -> AsyncIterator[bytes]:
    """A streamed body (no Content-Length) of ``total`` bytes in ``size``-byte chunks."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"x" * n


async def json_chunks(payload: bytes, size: int = 16) -> AsyncIterator[bytes]:
    """``payload`` streamed in chunks, without a Content-Length."""
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


# ---------------------------------------------------------------- request identity


async def test_valid_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    """A valid X-Request-ID from the caller comes back unchanged."""
    response = await client.get("/items/1", headers={"X-Request-ID": "caller-42"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "caller-42"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", ""])
async def test_invalid_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    """An invalid X-Request-ID is replaced by a generated one."""
    response = await client.get("/items/1", headers={"X-Request-ID": bad})
    rid = response.headers["x-request-id"]
    assert rid != bad
    assert HEX32.match(rid)


async def test_missing_request_id_is_generated_per_request(client: httpx.AsyncClient) -> None:
    """Without X-Request-ID each response gets its own new id."""
    first = await client.get("/items/1")
    second = await client.get("/items/1")
    assert HEX32.match(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_traceparent_continues_callers_trace(client: httpx.AsyncClient) -> None:
    """The response traceparent keeps the caller's trace id with this hop's new span id."""
    response = await client.get("/items/1", headers={"traceparent": TRACEPARENT})
    trace = parse_traceparent(response.headers["traceparent"])
    assert trace is not None
    assert trace.trace_id == TRACE_ID
    assert trace.span_id != SPAN_ID


async def test_invalid_traceparent_starts_new_trace(client: httpx.AsyncClient) -> None:
    """A malformed traceparent is ignored and a new valid trace is returned."""
    response = await client.get("/items/1", headers={"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"})
    trace = parse_traceparent(response.headers["traceparent"])
    assert trace is not None
    assert trace.trace_id != "0" * 32


async def test_request_ids_visible_inside_handler_and_reset_after(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Handlers see the request id in the context variable; it is cleared afterwards."""

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"rid": request_id_var.get()}

    response = await client.get("/whoami", headers={"X-Request-ID": "rid-in-handler"})
    assert response.json() == {"rid": "rid-in-handler"}
    assert request_id_var.get() is None


async def test_one_log_line_per_request_not_for_health(
    client: httpx.AsyncClient, logs: LogRecorder
) -> None:
    """Each request logs one line with method, path and status; /health and /metrics do not."""
    await client.get("/health")
    await client.get("/metrics")
    await client.get("/items/7", headers={"X-Request-ID": "log-rid"})
    requests = [e for e in logs.events if e[1] == "request"]
    assert len(requests) == 1
    _, _, rid, fields = requests[0]
    assert rid == "log-rid"
    assert fields["method"] == "GET"
    assert fields["path"] == "/items/7"
    assert fields["status"] == 200


# ---------------------------------------------------------------- JSON errors


def assert_json_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    """A path with no route answers a JSON 404, still with a request id."""
    response = await client.get("/nope")
    assert_json_error(response, 404, "not_found")
    assert "x-request-id" in response.headers


async def test_domain_not_found_is_json_404_with_extra(client: httpx.AsyncClient) -> None:
    """A NotFound raised by a handler becomes a 404 with its message and extra fields."""
    response = await client.get("/items/0")
    body = assert_json_error(response, 404, "not_found")
    assert body["message"] == "no item 0"
    assert body["item_id"] == 0


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    """A known path with the wrong method answers a JSON 405 with an Allow header."""
    response = await client.delete("/items/1")
    assert_json_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "url", "payload", "field"),
    [
        ("POST", "/items", {"name": "x", "quantity": -1}, "body.quantity"),
        ("POST", "/items", {"quantity": 1}, "body.name"),
        ("GET", "/items/abc", None, "path.item_id"),
    ],
)
async def test_validation_error_names_the_field(
    client: httpx.AsyncClient, method: str, url: str, payload: Any, field: str
) -> None:
    """Invalid input answers a JSON 422 whose ``fields`` name the offending field."""
    response = await client.request(method, url, json=payload)
    body = assert_json_error(response, 422, "validation_error")
    assert [f["field"] for f in body["fields"]] == [field]
    assert body["message"] == f"invalid {field}"


async def test_valid_body_is_accepted(client: httpx.AsyncClient) -> None:
    """A valid small JSON body reaches the handler."""
    response = await client.post("/items", json={"name": "probe", "quantity": 2})
    assert response.status_code == 200
    assert response.json() == {"name": "probe", "quantity": 2}


@pytest.mark.parametrize("url", ["/items", "/raw"])
async def test_content_length_over_limit_is_413(client: httpx.AsyncClient, url: str) -> None:
    """A declared Content-Length over max_body_bytes is refused before the handler runs."""
    response = await client.post(url, content=b"x" * (LIMIT + 1))
    body = assert_json_error(response, 413, "payload_too_large")
    assert body["limit_bytes"] == LIMIT
    assert "x-request-id" in response.headers


async def test_body_at_limit_is_accepted(client: httpx.AsyncClient) -> None:
    """A body of exactly max_body_bytes is accepted."""
    response = await client.post("/raw", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def test_streamed_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    """A chunked body with no Content-Length is cut off once it passes the limit."""
    response = await client.post("/raw", content=chunks(LIMIT * 4))
    assert "content-length" not in response.request.headers
    body = assert_json_error(response, 413, "payload_too_large")
    assert body["limit_bytes"] == LIMIT


async def test_streamed_body_under_limit_is_accepted(client: httpx.AsyncClient) -> None:
    """A chunked body under the limit is read in full."""
    response = await client.post("/raw", content=chunks(LIMIT - 1))
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT - 1}


async def test_streamed_body_over_limit_on_model_route_is_413(client: httpx.AsyncClient) -> None:
    """A chunked JSON body over the limit on a pydantic-model route is a 413, not a 400."""
    payload = b'{"name": "' + b"n" * (LIMIT * 2) + b'", "quantity": 1}'
    response = await client.post(
        "/items", content=json_chunks(payload), headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("value", ["abc", "-5", "1e3", "12 "])
async def test_malformed_content_length_is_400(client: httpx.AsyncClient, value: str) -> None:
    """A Content-Length that is not a decimal number answers a JSON 400."""
    response = await client.post("/raw", headers={"Content-Length": value})
    assert response.request.headers["content-length"] == value
    body = assert_json_error(response, 400, "bad_request")
    assert "Content-Length" in body["message"]


async def test_unavailable_is_503_with_ceiled_retry_after(client: httpx.AsyncClient) -> None:
    """Unavailable(retry_after_s=2.2) answers 503 with Retry-After: 3."""
    response = await client.get("/unavailable")
    body = assert_json_error(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "3"
    assert body["retry_after"] == 3
    assert body["message"] == "database down"


@pytest.mark.parametrize(("wait", "retry_after"), [("2.2", "3"), ("0.0", "1"), ("30", "30")])
async def test_open_circuit_is_503_with_retry_after(
    client: httpx.AsyncClient, wait: str, retry_after: str
) -> None:
    """CircuitOpenError answers 503 with Retry-After rounded up and never 0."""
    response = await client.get(f"/breaker/{wait}")
    body = assert_json_error(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == retry_after
    assert "database" in body["message"]


async def test_unexpected_error_is_json_500(client: httpx.AsyncClient, logs: LogRecorder) -> None:
    """An unhandled exception answers a JSON 500 (not HTML) and is logged as an error."""
    response = await client.get("/boom")
    body = assert_json_error(response, 500, "internal_error")
    assert "boom" not in body["message"]
    assert [e[1] for e in logs.events if e[0] == "error"] == ["unhandled error"]


async def test_unexpected_error_response_carries_request_id(client: httpx.AsyncClient) -> None:
    """The 500 for an unhandled exception still returns the caller's X-Request-ID."""
    response = await client.get("/boom", headers={"X-Request-ID": "rid-500"})
    assert response.status_code == 500
    assert response.headers.get("x-request-id") == "rid-500"


async def test_unexpected_error_log_has_request_id(
    client: httpx.AsyncClient, logs: LogRecorder
) -> None:
    """The 'unhandled error' log line carries the request id of the failing request."""
    await client.get("/boom", headers={"X-Request-ID": "rid-500"})
    errors = [e for e in logs.events if e[0] == "error"]
    assert [e[2] for e in errors] == ["rid-500"]


# ---------------------------------------------------------------- metrics


async def test_metrics_count_by_route_template(client: httpx.AsyncClient) -> None:
    """http_requests_total is labelled with the route template, not the raw path."""
    await client.get("/items/5")
    await client.get("/items/6")
    await client.get("/items/0")
    text = (await client.get("/metrics")).text
    assert (
        'http_requests_total{method="GET",route="/items/{item_id}",service="demo",status="200"} 2.0'
        in text
    )
    assert (
        'http_requests_total{method="GET",route="/items/{item_id}",service="demo",status="404"} 1.0'
        in text
    )
    assert 'route="/items/5"' not in text
    assert "http_request_duration_seconds_bucket" in text


async def test_metrics_unmatched_paths_share_one_label(client: httpx.AsyncClient) -> None:
    """Unknown paths share one route label, so scanners cannot blow up metric cardinality."""
    await client.get("/scan/1")
    await client.get("/scan/2")
    text = (await client.get("/metrics")).text
    assert 'route="unmatched",service="demo",status="404"} 2.0' in text
    assert "/scan/" not in text


async def test_metrics_include_breakers_and_dependencies(
    ctx: ServiceContext, client: httpx.AsyncClient
) -> None:
    """Breaker state and dependency_up gauges appear in /metrics."""
    ctx.breakers.add(CircuitBreaker("database", BreakerConfig(), clock=ManualClock()))

    async def ok() -> None:
        return None

    ctx.health.add_probe("database", ok)
    await ctx.health.run_probes()
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'circuit_breaker_state{name="database",state="closed"} 1.0' in text
    assert 'dependency_up{name="database"} 1.0' in text


# ---------------------------------------------------------------- health


async def failing_probe() -> dict[str, Any]:
    raise ConnectionError("database unreachable")


async def passing_probe() -> dict[str, Any]:
    return {"ping_ms": 0.1}


async def test_health_returns_monitor_report(
    ctx: ServiceContext, client: httpx.AsyncClient
) -> None:
    """/health answers the monitor's report: service, instance, status and checks."""
    ctx.health.add_probe("database", passing_probe, essential=True)
    await ctx.health.run_probes()
    response = await client.get("/health")
    assert response.status_code == 200
    doc = response.json()
    assert doc["service"] == "demo"
    assert doc["instance"] == ctx.settings.instance_id
    assert doc["instance"].startswith("demo-")
    assert doc["instance"].endswith("-8099")
    assert doc["status"] == "healthy"
    assert doc["checks"]["database"]["status"] == "up"
    assert doc["checks"]["database"]["ping_ms"] == 0.1
    assert doc["circuit_breakers"] == {}


async def test_health_report_can_be_replaced(ctx: ServiceContext) -> None:
    """create_app's health_report replaces the default /health document."""
    app = create_app(ctx, title="custom", health_report=lambda: {"gateway": "healthy"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        response = await client.get("/health")
    assert response.json() == {"gateway": "healthy"}


async def test_live_is_always_alive(ctx: ServiceContext, client: httpx.AsyncClient) -> None:
    """/health/live answers 200 even when an essential dependency is down."""
    ctx.health.add_probe("database", failing_probe, essential=True)
    await ctx.health.run_probes()
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


@pytest.mark.parametrize(
    ("essential", "code", "status"),
    [(True, 503, "unhealthy"), (False, 200, "degraded")],
)
async def test_ready_reflects_essential_probes(
    ctx: ServiceContext,
    client: httpx.AsyncClient,
    essential: bool,  # noqa: FBT001 - parametrized
    code: int,
    status: str,
) -> None:
    """/health/ready is 503 only when an essential probe is down; non-essential degrades."""
    ctx.health.add_probe("ok", passing_probe, essential=True)
    ctx.health.add_probe("database", failing_probe, essential=essential)
    await ctx.health.run_probes()
    response = await client.get("/health/ready")
    assert response.status_code == code
    assert response.json() == {"status": status}
    check = (await client.get("/health")).json()["checks"]["database"]
    assert check["status"] == "down"
    assert check["error"] == "ConnectionError: database unreachable"


async def test_ready_is_200_when_healthy(ctx: ServiceContext, client: httpx.AsyncClient) -> None:
    """/health/ready is 200 healthy when every probe is up."""
    ctx.health.add_probe("database", passing_probe, essential=True)
    await ctx.health.run_probes()
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


async def test_lifespan_runs_hooks_and_first_probe_round(ctx: ServiceContext) -> None:
    """Startup hooks run in order and probes run before serving; shutdown hooks run reversed."""
    calls: list[str] = []

    def hook(name: str) -> Any:
        async def run() -> None:
            calls.append(name)

        return run

    ctx.on_startup.extend([hook("start-a"), hook("start-b")])
    ctx.on_shutdown.extend([hook("stop-a"), hook("stop-b")])
    ctx.health.add_probe("database", passing_probe, essential=True)
    app = create_app(ctx, title="demo")
    async with app.router.lifespan_context(app):
        assert calls == ["start-a", "start-b"]
        assert ctx.health.check("database").status.value == "up"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            assert (await client.get("/health/ready")).status_code == 200
    assert calls == ["start-a", "start-b", "stop-b", "stop-a"]
    assert ctx.health._task is None


def test_server_keep_alive_outlasts_the_client_pools():
    """A pooled connection is never reused after the server closed it for idleness."""
    from sensor_backend.core.http_client import HttpClientConfig  # noqa: PLC0415
    from sensor_backend.core.server import SERVER_KEEPALIVE_S  # noqa: PLC0415

    assert HttpClientConfig().keepalive_s < SERVER_KEEPALIVE_S

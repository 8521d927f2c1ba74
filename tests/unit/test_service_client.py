"""The one client for calls between services (core/service_client.py), against real HTTP.

Each test runs an in-process aiohttp server per replica on loopback whose answers it scripts,
and checks what the client records in the breaker and the replica pool, and what it retries.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from starlette.requests import ClientDisconnect

from sensor_backend.core.breaker import BreakerConfig, CircuitBreaker, CircuitOpenError
from sensor_backend.core.errors import RequestTimeout
from sensor_backend.core.replicas import ReplicaPool
from sensor_backend.core.retry import RetryBudget, RetryPolicy
from sensor_backend.core.service_client import ServiceClient, UpstreamUnreachableError
from sensor_backend.gateway.proxy import ClientBody

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


class Replica:
    """A replica answering ``statuses`` in turn (the last one repeats)."""

    def __init__(self, *statuses: int, body_delay_s: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.body_delay_s = body_delay_s
        self.hits = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        status = self.statuses[min(self.hits, len(self.statuses) - 1)]
        self.hits += 1
        response = web.StreamResponse(status=status)
        await response.prepare(request)
        await asyncio.sleep(self.body_delay_s)  # headers first, the body later
        await response.write(b'{"ok": true}')
        await response.write_eof()
        return response


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Replica], asyncio.Future[str]]]:
    servers: list[TestServer] = []

    async def start(replica: Replica) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", replica.handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start  # type: ignore[misc]
    for server in servers:
        await server.close()


def client(session: aiohttp.ClientSession, urls: list[str], **config: object) -> ServiceClient:
    breaker = CircuitBreaker("svc", BreakerConfig(**{"consecutive_failures": 5, **config}))
    return ServiceClient(
        "svc",
        ReplicaPool("svc", urls, eject_after=3, rng=random.Random(1)),  # noqa: S311
        breaker,
        RetryBudget(min_retries=10),
        lambda: session,
        timeout_s=2.0,
        retry=RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.002),
    )


async def status_of(c: ServiceClient, *, retryable: bool = True) -> int:
    async with c.call("GET", "/x", retryable=retryable) as resp:
        await resp.read()
        return resp.status


async def test_a_503_is_a_failure_and_retried_on_another_replica(serve, session):
    """A replica that cannot serve (503) counts against breaker and replica; the retry wins."""
    bad, good = Replica(503), Replica(200)
    urls = [await serve(bad), await serve(good)]
    c = client(session, urls)
    c.pool.replicas[1].outstanding = 100  # make the first pick the 503 replica
    assert await status_of(c) == 200
    assert (bad.hits, good.hits) == (1, 1)
    assert [r.outstanding for r in c.pool.replicas] == [0, 100]
    assert c.breaker.consecutive_failures == 0  # the success after it reset the streak
    assert c.breaker.failure_count == 1
    assert c.pool.replicas[0].failures == 1


async def test_the_last_503_is_handed_out_as_the_services_answer(serve, session):
    """With no retry left the service's own 503 reaches the caller (its Retry-After too)."""
    c = client(session, [await serve(Replica(503))])
    assert await status_of(c) == 503
    assert c.breaker.failure_count == 3  # three tries, each a failure
    assert await status_of(c, retryable=False) == 503
    assert c.breaker.failure_count == 4
    assert c.pool.replicas[0].outstanding == 0  # every try's response was released


async def test_a_500_counts_against_the_replica_only_and_is_not_retried(serve, session):
    """One request's 500 never trips the service's breaker; three in a row eject the replica."""
    replica = Replica(500)
    c = client(session, [await serve(replica)], consecutive_failures=2)
    for _ in range(3):
        assert await status_of(c) == 500
    assert replica.hits == 3  # no retries
    assert c.breaker.failure_count == 0
    assert c.breaker.snapshot()["state"] == "closed"
    assert c.pool.replicas[0].ejected


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 422, 429])
async def test_a_client_error_is_a_success(serve, session, status):
    """A 4xx is the client's: a success for the breaker and the replica."""
    c = client(session, [await serve(Replica(status))])
    assert await status_of(c) == status
    assert c.breaker.failure_count == 0
    assert c.breaker.successes == 1
    assert c.pool.replicas[0].failures == 0


async def test_unreachable_raises_after_the_retries(session):
    """Connect errors on every try: UpstreamUnreachableError, each try a breaker failure."""
    c = client(session, ["http://127.0.0.1:9"])
    with pytest.raises(UpstreamUnreachableError, match="unreachable"):
        await status_of(c)
    assert c.breaker.failure_count == 3


async def test_the_outcome_is_recorded_when_the_headers_arrive(serve, session):
    """A body slower than the slow-call threshold does not make the call slow or failed."""
    c = client(session, [await serve(Replica(200, body_delay_s=0.3))], slow_call_s=0.1)
    assert await status_of(c) == 200
    assert c.breaker.slow_calls == 0
    assert c.breaker.successes == 1


async def test_an_open_breaker_refuses_before_any_socket(serve, session):
    """Open breaker: CircuitOpenError at once, the replica never sees the call."""
    replica = Replica(200)
    c = client(session, [await serve(replica)])
    for _ in range(5):
        c.breaker.record_failure(c.breaker.acquire())
    with pytest.raises(CircuitOpenError):
        await status_of(c)
    assert replica.hits == 0


async def test_a_handed_out_response_is_never_retried(serve, session):
    """An error raised while the caller reads the response is not retried."""
    replica = Replica(200)
    c = client(session, [await serve(replica)])
    with pytest.raises(RuntimeError, match="caller"):
        async with c.call("GET", "/x", retryable=True):
            raise RuntimeError("the caller failed")
    assert replica.hits == 1
    assert c.pool.replicas[0].outstanding == 0


class LeavingBody:
    """A request body whose client leaves half-way (as gateway.proxy.ClientBody does)."""

    client_fault: Exception | None = None

    async def __aiter__(self):
        yield b'{"half": '
        self.client_fault = ClientDisconnect()
        raise self.client_fault


async def test_a_client_that_leaves_is_not_the_upstreams_failure(serve, session):
    """Our client vanishing mid-upload gives the permit back: no failure is recorded."""
    c = client(session, [await serve(Replica(200))])
    with pytest.raises(ClientDisconnect):
        async with c.call("POST", "/x", data=LeavingBody()):
            pass
    assert c.breaker.failure_count == 0
    assert c.pool.replicas[0].failures == 0
    assert c.pool.replicas[0].outstanding == 0


def receiving(*messages: object, then: BaseException | None = None, stall_s: float = 0.0):
    """An ASGI receive giving ``messages``, then raising ``then`` or stalling."""
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        if then is not None:
            raise then
        await asyncio.sleep(stall_s)
        return {"type": "http.request", "body": b"", "more_body": False}

    return receive


async def test_a_limit_hit_while_reading_the_client_is_the_clients_fault(serve, session):
    """The gateway's own body limit raised from receive(): re-raised, nothing counted."""
    c = client(session, [await serve(Replica(200))])
    first = {"type": "http.request", "body": b"x" * 100, "more_body": True}
    body = ClientBody(receiving(first, then=RuntimeError("over the gateway's limit")), None)
    with pytest.raises(RuntimeError, match="gateway's limit"):
        async with c.call("POST", "/x", data=body, streamed=True):
            pass
    assert c.breaker.failure_count == 0
    assert c.pool.replicas[0].failures == 0


async def test_a_slow_upload_is_not_cut_by_the_upstream_timeout(serve, session):
    """A streamed call is bounded by silence from the upstream, not by a total.

    The client pauses longer than the upstream timeout mid-upload; the call still
    succeeds and nothing is counted against the upstream.
    """
    c = client(session, [await serve(Replica(200))])
    c.stream_timeout = aiohttp.ClientTimeout(sock_read=0.3, sock_connect=1)
    first = {"type": "http.request", "body": b"x" * 100, "more_body": True}
    body = ClientBody(receiving(first, stall_s=0.8), None)
    async with c.call("POST", "/x", data=body, streamed=True) as resp:
        assert resp.status == 200
    assert c.breaker.failure_count == 0
    assert c.pool.replicas[0].failures == 0


def test_a_timeout_while_waiting_on_the_client_is_a_408():
    """If a timeout strikes while the upload waits for the client, the client gets 408."""
    from sensor_backend.core.service_client import _client_fault  # noqa: PLC0415

    body = ClientBody(receiving(), None)
    body.waiting_on_client = True
    assert isinstance(_client_fault(body, TimeoutError()), RequestTimeout)
    body.waiting_on_client = False
    assert _client_fault(body, TimeoutError()) is None

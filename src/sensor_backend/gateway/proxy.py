"""Forwarding one request to a service replica: the gateway's hot path, in raw ASGI.

Per request: the service's breaker is asked first (open: 503 at once, no socket touched),
a replica is picked (least outstanding), headers are forwarded minus hop-by-hop ones
(RFC 9110 §7.6.1) with ``X-Forwarded-For``, ``X-Request-ID`` and a child ``traceparent``,
and the response is streamed back. Failures (connect errors, timeouts, 5xx) count against
the breaker and the replica. A request is retried on another replica only when it is safe:
an idempotent method, or a POST carrying ``Idempotency-Key`` (its body is then buffered, up
to a bound), and only while the retry budget allows (DESIGN.md §5).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.requests import ClientDisconnect

from sensor_backend.core.breaker import CircuitOpenError
from sensor_backend.core.errors import ServiceError, Unavailable
from sensor_backend.core.request_context import outgoing_headers
from sensor_backend.core.retry import RetryPolicy, backoff_s

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import Receive, Scope, Send

    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.retry import RetryBudget
    from sensor_backend.gateway.upstream import Replica, UpstreamPool

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        # Set by the gateway itself.
        b"x-request-id",
        b"traceparent",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    }
)
# The gateway sets its own ids and X-Auth-Mode (its own token check decides what the
# client is told); the upstream's copies are dropped.
RESPONSE_SKIP = frozenset(
    {
        b"x-auth-mode",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"x-request-id",
        b"traceparent",
        b"server",
        b"date",
    }
)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# What a replica answers when it cannot serve anyone right now (docs/resilience.md): these
# count against the service's breaker and the replica, and are retried where safe. A 500 is
# one request's failure: it counts against the replica only (Envoy's consecutive_5xx),
# whose ejection a passing health check ends. A 4xx is the client's: it counts as success.
CANNOT_SERVE = frozenset({502, 503, 504})
SERVER_ERROR = 500
MAX_BUFFERED_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class _Outgoing:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: Any  # bytes, an async iterator of bytes, or None
    extra_headers: list[tuple[bytes, bytes]] | None


class UpstreamFailure(Exception):
    """A failed attempt before any byte reached the client: connect error or timeout.

    ``response`` is set when the replica did answer, with a status that says it cannot serve
    (502/503/504): relayed as it is when no retry is left, so the client sees the service's
    own honest 503 and its ``Retry-After``.
    """

    def __init__(self, message: str, response: aiohttp.ClientResponse | None = None) -> None:
        super().__init__(message)
        self.response = response


class UpstreamBrokeOffError(Exception):
    """The upstream failed after the response had started: nothing can be retried."""


class Upstream:
    """What the proxy needs of one service: its replicas, breaker and retry budget."""

    def __init__(
        self, name: str, pool: UpstreamPool, breaker: CircuitBreaker, budget: RetryBudget
    ) -> None:
        self.name = name
        self.pool = pool
        self.breaker = breaker
        self.budget = budget


def unavailable(service: str, retry_after_s: float, reason: str) -> Unavailable:
    return Unavailable(
        f"{service} service unavailable: {reason}", retry_after_s=retry_after_s, service=service
    )


def _forward_headers(scope: Scope) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    forwarded_for: str | None = None
    for key, value in scope["headers"]:
        if key == b"x-forwarded-for":
            forwarded_for = value.decode("latin-1")
        if key not in HOP_BY_HOP:
            headers.append((key.decode("latin-1"), value.decode("latin-1")))
    client = scope.get("client")
    if client:
        hop = client[0]
        headers.append(("X-Forwarded-For", f"{forwarded_for}, {hop}" if forwarded_for else hop))
    headers.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    headers.extend(outgoing_headers().items())
    return headers


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            found: bytes = value
            return found
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; a client that leaves mid-body raises ClientDisconnect.

    Never a truncated body passed on as if complete.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ServiceError("request body too large to retry safely")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class ClientBody:
    """The request body streamed on as it arrives (an async iterable for aiohttp).

    A client that leaves aborts the upstream request (raising ends aiohttp's chunked
    upload without its final chunk) instead of passing a truncated body on as complete;
    ``disconnected`` then tells the proxy that the failure was the client's, whatever
    aiohttp wrapped it in, so it never counts against the upstream.
    """

    __slots__ = ("_receive", "disconnected")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.disconnected = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientDisconnect
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class Proxy:
    def __init__(
        self,
        session_getter: Any,  # noqa: ANN401 - a zero-argument callable returning the session
        *,
        timeout_s: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._session = session_getter
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry = retry or RetryPolicy()
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: Upstream,
        path: str,
        *,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        relay_unavailable: bool = True,
    ) -> None:
        """Send the request to a replica and stream its answer; ``body`` if already read.

        A replica's 502/503/504 is relayed when no retry is left, unless
        ``relay_unavailable`` is false: then `Unavailable` is raised (the event route
        spools the body instead).
        """
        method: str = scope["method"]
        headers = _forward_headers(scope)
        query = scope.get("query_string", b"")
        target = f"{path}?{query.decode('latin-1')}" if query else path
        retryable = method in IDEMPOTENT or _header(scope, b"idempotency-key") is not None
        length = _header(scope, b"content-length")
        payload: Any = body
        if body is None:
            if retryable and (length is None or int(length) <= MAX_BUFFERED_BODY):
                payload = await read_body(receive, MAX_BUFFERED_BODY)
            else:
                payload = ClientBody(receive) if method not in {"GET", "HEAD"} else None
                retryable = False
        upstream.budget.record_call()
        exclude: Replica | None = None
        attempt = 0
        while True:
            try:
                generation = upstream.breaker.acquire()
            except CircuitOpenError as exc:
                raise unavailable(upstream.name, exc.retry_after_s, "circuit open") from exc
            replica = upstream.pool.pick(exclude)
            outgoing = _Outgoing(method, target, headers, payload, extra_headers)
            try:
                await self._attempt(replica, upstream, generation, outgoing, send)
            except UpstreamFailure as exc:
                can_retry = (
                    retryable
                    and attempt + 1 < self.retry.max_attempts
                    and upstream.budget.try_withdraw()
                )
                if exc.response is not None:
                    if not can_retry and relay_unavailable:
                        # The service's own answer (e.g. 503 + Retry-After: its database is
                        # down) tells the client more than one the gateway would make up.
                        try:
                            await self._relay(exc.response, send, extra_headers)
                        finally:
                            exc.response.release()
                        return
                    exc.response.release()
                if not can_retry:
                    raise unavailable(
                        upstream.name, upstream.breaker.retry_after_s or 1, str(exc)
                    ) from exc
                exclude = replica
                await asyncio.sleep(backoff_s(attempt, self.retry, self._rng))
                attempt += 1
                continue
            return

    async def _attempt(
        self,
        replica: Replica,
        upstream: Upstream,
        generation: int,
        outgoing: _Outgoing,
        send: Send,
    ) -> None:
        """One try; the outcome is recorded when the response headers arrive.

        Whatever happens after that (a slow or vanished client, a long body) says nothing
        about the upstream's health, and a response that has started is never retried.
        """
        replica.outstanding += 1
        replica.requests += 1
        started = time.perf_counter()
        breaker = upstream.breaker
        pool = upstream.pool
        try:
            session: aiohttp.ClientSession = self._session()
            try:
                resp = await session.request(
                    outgoing.method,
                    replica.url + outgoing.target,
                    headers=outgoing.headers,
                    data=outgoing.body,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if isinstance(outgoing.body, ClientBody) and outgoing.body.disconnected:
                    breaker.release(generation)
                    raise ClientDisconnect from exc
                breaker.record_failure(generation, time.perf_counter() - started)
                pool.failed(replica)
                kind = "timed out" if isinstance(exc, TimeoutError) else "unreachable"
                raise UpstreamFailure(f"{replica.url} {kind}") from exc
            except BaseException:
                breaker.release(generation)
                raise
            status = resp.status
            if status in CANNOT_SERVE:
                breaker.record_failure(generation, time.perf_counter() - started)
                pool.failed(replica)
                raise UpstreamFailure(f"{replica.url} answered {status}", resp)
            breaker.record_success(generation, time.perf_counter() - started)
            if status == SERVER_ERROR:
                pool.failed(replica)
            else:
                pool.succeeded(replica)
            try:
                await self._relay(resp, send, outgoing.extra_headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The upstream broke off mid-body: too late to retry or to answer 503;
                # the client's connection is closed by the server on this error.
                pool.failed(replica)
                raise UpstreamBrokeOffError(f"{replica.url} broke off the response") from exc
            finally:
                resp.release()
        finally:
            replica.outstanding -= 1

    @staticmethod
    async def _relay(
        resp: aiohttp.ClientResponse, send: Send, extra_headers: list[tuple[bytes, bytes]] | None
    ) -> None:
        raw = [(k.lower(), v) for k, v in resp.raw_headers if k.lower() not in RESPONSE_SKIP]
        if extra_headers:
            raw.extend(extra_headers)
        await send({"type": "http.response.start", "status": resp.status, "headers": raw})
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

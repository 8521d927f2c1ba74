"""Forwarding one request to a service replica: the gateway's hot path, in raw ASGI.

Per request: headers are forwarded minus hop-by-hop ones (RFC 9110 §7.6.1) with
``X-Forwarded-For``, ``X-Request-ID`` and a child ``traceparent``, and the call goes through
the service's `ServiceClient` (:mod:`sensor_backend.core.service_client`: breaker, replica
choice, outcomes recorded at the response headers, retries only before a response started).
A request is retryable when it is safe: an idempotent method, or a POST carrying
``Idempotency-Key`` (its body is then buffered, up to a bound). The response is streamed
back; a service's own 502/503/504 after the last try is relayed as it is (its message and
Retry-After say why), and an open breaker or an unreachable service is a 503 made here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect

from sensor_backend.core.breaker import CircuitOpenError
from sensor_backend.core.errors import PayloadTooLarge, Unavailable
from sensor_backend.core.request_context import outgoing_headers
from sensor_backend.core.service_client import CANNOT_SERVE, UpstreamUnreachableError
from sensor_backend.gateway.settings import public_name

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp
    from starlette.types import Receive, Scope, Send

    from sensor_backend.core.service_client import ServiceClient

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
MAX_BUFFERED_BODY = 1 << 20


def unavailable(service: str, retry_after_s: float, reason: str) -> Unavailable:
    name = public_name(service)  # error bodies keep the seed's names (kafka)
    return Unavailable(
        f"{name} service unavailable: {reason}", retry_after_s=retry_after_s, service=name
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
            raise PayloadTooLarge(f"request body over {limit} bytes", limit_bytes=limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class ClientBody:
    """The request body streamed on as it arrives (an async iterable for aiohttp).

    Whatever goes wrong on the client's side of the upload (it leaves, sends more than
    ``limit`` bytes or more than the gateway's own limit, or stalls while the upstream
    waits for it) aborts the upstream request (raising ends aiohttp's chunked upload
    without its final chunk) instead of passing a truncated body on as complete.
    ``client_fault`` then tells the service client that the failure was the client's,
    whatever aiohttp wrapped it in, so it never counts against the upstream, and which
    error to answer with (core/service_client.py); ``waiting_on_client`` says whether the
    upload was waiting for the client when a timeout struck.
    """

    __slots__ = ("_limit", "_receive", "client_fault", "waiting_on_client")

    def __init__(self, receive: Receive, limit: int | None) -> None:
        # None: no route limit; the core middleware still bounds every body.
        self._receive = receive
        self._limit = limit
        self.client_fault: Exception | None = None
        self.waiting_on_client = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        while True:
            self.waiting_on_client = True
            try:
                message = await self._receive()
            except Exception as exc:
                # The core middleware's own body limit (413) or a broken client socket.
                self.client_fault = exc
                raise
            finally:
                self.waiting_on_client = False
            if message["type"] == "http.disconnect":
                self.client_fault = ClientDisconnect()
                raise self.client_fault
            chunk = message.get("body", b"")
            size += len(chunk)
            if self._limit is not None and size > self._limit:
                self.client_fault = PayloadTooLarge(
                    f"request body over {self._limit} bytes", limit_bytes=self._limit
                )
                raise self.client_fault
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


async def forward(
    scope: Scope,
    receive: Receive,
    send: Send,
    client: ServiceClient,
    path: str,
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes | None = None,
    relay_unavailable: bool = True,
    max_body_bytes: int | None = None,
    honours_idempotency_key: bool = False,
) -> None:
    """Send the request to a replica and stream its answer; ``body`` if already read.

    A body over ``max_body_bytes`` (the route's limit) is refused with 413 before any of it
    is read when Content-Length says so, or as soon as the streamed bytes pass it. A
    replica's 502/503/504 is relayed when no retry is left, unless ``relay_unavailable``
    is false: then `Unavailable` is raised (the event route spools the body instead).
    """
    method: str = scope["method"]
    query = scope.get("query_string", b"")
    target = f"{path}?{query.decode('latin-1')}" if query else path
    # A POST is retried only where the service dedups it on its Idempotency-Key.
    retryable = method in IDEMPOTENT or (
        honours_idempotency_key and _header(scope, b"idempotency-key") is not None
    )
    payload: Any = body
    if body is None:
        raw_length = _header(scope, b"content-length")
        # Validated by the core middleware (digits only, within the gateway's own limit).
        length = int(raw_length) if raw_length is not None else None
        limit = max_body_bytes
        if limit is not None and length is not None and length > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes", limit_bytes=limit)
        if retryable and length is not None and length <= MAX_BUFFERED_BODY:
            # Buffered, so a failed try can be sent again to another replica.
            payload = await read_body(receive, length)
        elif method not in {"GET", "HEAD"}:
            payload = ClientBody(receive, limit)
            retryable = False
        else:
            payload = None
    call = client.call(
        method,
        target,
        headers=_forward_headers(scope),
        data=payload,
        retryable=retryable,
        streamed=True,
    )
    try:
        async with call as resp:
            if not relay_unavailable and resp.status in CANNOT_SERVE:
                reason = f"answered {resp.status}"
                raise unavailable(client.name, client.breaker.retry_after_s or 1, reason)
            await _relay(resp, send, extra_headers)
    except CircuitOpenError as exc:
        raise unavailable(client.name, exc.retry_after_s, "circuit open") from exc
    except UpstreamUnreachableError as exc:
        raise unavailable(client.name, client.breaker.retry_after_s or 1, str(exc)) from exc


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

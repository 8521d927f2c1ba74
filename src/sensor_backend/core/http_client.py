"""Pooled HTTP client for calls between services.

aiohttp rather than httpx: measured on this 2-core machine under 32 concurrent requests, a
proxy on an ``httpx.AsyncClient`` forwarded about 10x fewer requests per second than the
same proxy on an ``aiohttp.ClientSession`` (httpx's pool is O(N^2) under concurrency,
httpx#3215). ``bench/http_clients.py`` repeats that measurement.

`SessionHolder` gives a service its one session for its lifetime; `read_limited` reads an
answer without trusting its size. Every session has a connect timeout and a total timeout
(DESIGN.md §5, default 5 s) and keeps connections alive in a bounded pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from sensor_backend.core.app import ServiceContext

__all__ = ["HttpClientConfig", "SessionHolder", "make_session", "read_limited"]

CLIENT_KEEPALIVE_S = 30.0


@dataclass(frozen=True, slots=True)
class HttpClientConfig:
    total_timeout_s: float = 5.0
    connect_timeout_s: float = 1.0
    # Per-host pool bound: enough for a 2-core machine's worth of concurrency without
    # letting one slow upstream take every socket.
    max_connections: int = 256
    max_connections_per_host: int = 128
    # Below every service's server keep-alive (server.SERVER_KEEPALIVE_S).
    keepalive_s: float = CLIENT_KEEPALIVE_S


def make_session(config: HttpClientConfig | None = None) -> aiohttp.ClientSession:
    """A new pooled session; create it inside the running event loop, close it on shutdown."""
    cfg = config or HttpClientConfig()
    connector = aiohttp.TCPConnector(
        limit=cfg.max_connections,
        limit_per_host=cfg.max_connections_per_host,
        keepalive_timeout=cfg.keepalive_s,
        ttl_dns_cache=300,
        enable_cleanup_closed=True,
    )
    timeout = aiohttp.ClientTimeout(
        total=cfg.total_timeout_s,
        connect=cfg.connect_timeout_s,
        sock_connect=cfg.connect_timeout_s,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        # The gateway forwards bodies as they are; no implicit decompression or cookies.
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )


class SessionHolder:
    """Creates the pooled session inside the event loop at startup and closes it at shutdown."""

    def __init__(self, ctx: ServiceContext) -> None:
        settings = ctx.settings
        self.config = HttpClientConfig(
            total_timeout_s=settings.http_total_timeout_s,
            connect_timeout_s=settings.http_connect_timeout_s,
        )
        self._session: aiohttp.ClientSession | None = None
        ctx.on_startup.append(self.open)
        ctx.on_shutdown.append(self.close)

    async def open(self) -> None:
        self._session = make_session(self.config)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HTTP session used before startup")
        return self._session


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The response body, or None when it is longer than ``limit`` bytes."""
    if resp.content_length is not None and resp.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)

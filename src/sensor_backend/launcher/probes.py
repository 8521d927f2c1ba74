"""How the launcher tells that a component is up.

TCP for the broker, ``SELECT 1`` for PostgreSQL, ``GET /-/ready`` for Prometheus,
``GET /health`` for the services.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

from sensor_backend.core.db import server_answers
from sensor_backend.core.service_probes import fetch_health
from sensor_backend.launcher.layout import HOST, Component, Kind


async def tcp_open(port: int, host: str = HOST, timeout_s: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def postgres_ready(dsn: str, timeout_s: float = 1.5) -> bool:
    return await server_answers(dsn, timeout_s)


async def service_health(
    session: aiohttp.ClientSession, url: str, timeout_s: float = 1.5
) -> dict[str, Any] | None:
    """The service's /health document, or None when it does not answer 200 with JSON."""
    try:
        status, doc = await fetch_health(session, url, timeout_s)
    except (aiohttp.ClientError, TimeoutError):
        return None
    if status != 200 or not isinstance(doc, dict):  # noqa: PLR2004 - HTTP OK
        return None
    return doc


async def prometheus_ready(
    session: aiohttp.ClientSession, url: str, timeout_s: float = 1.5
) -> bool:
    try:
        async with session.get(
            f"{url}/-/ready", timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            return resp.status == 200  # noqa: PLR2004 - HTTP OK
    except (aiohttp.ClientError, TimeoutError):
        return False


def health_word(component: Component, doc: dict[str, Any] | None) -> str:
    """One word for the status table: healthy, degraded, unhealthy or down."""
    if doc is None:
        return "down"
    if component.service == "gateway":
        return str(doc.get("overall_status", "unknown"))
    return str(doc.get("status", "unknown"))


async def probe(
    component: Component, session: aiohttp.ClientSession
) -> tuple[str, dict[str, Any] | None]:
    if component.kind is Kind.POSTGRES:
        return ("healthy" if await postgres_ready(component.url) else "down"), None
    if component.kind is Kind.BROKER:
        return ("healthy" if await tcp_open(component.port) else "down"), None
    if component.kind is Kind.PROMETHEUS:
        ready = await prometheus_ready(session, component.url)
        return ("healthy" if ready else "down"), None
    doc = await service_health(session, component.url)
    return health_word(component, doc), doc

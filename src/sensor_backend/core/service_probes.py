"""Health probes of other services: the one client of their ``GET /health``.

`fetch_health` is the request itself (the gateway's console and the launcher use it as is);
`probe_service` turns it into a health check of one replica, and `add_service_probes`
registers one such check per replica of a service in a service's `HealthMonitor`
(``auth[0]``, ``auth[1]``...), whose outcomes readmit replicas and end breaker waits
(docs/resilience.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensor_backend.core.app import ServiceContext
    from sensor_backend.core.http_client import SessionHolder

__all__ = ["add_service_probes", "fetch_health", "probe_service", "replica_label"]

HEALTH_TIMEOUT_S = 1.5


async def fetch_health(
    session: aiohttp.ClientSession, base_url: str, timeout_s: float = HEALTH_TIMEOUT_S
) -> tuple[int, Any]:
    """``GET {base_url}/health``: its status and its JSON document (None when not JSON).

    Raises what the request raises (``aiohttp.ClientError``, ``TimeoutError``).
    """
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with session.get(f"{base_url}/health", timeout=timeout) as resp:
        try:
            doc = await resp.json(content_type=None)
        except ValueError:
            doc = None
        return resp.status, doc


async def probe_service(session: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    """A replica's health check: up when ``/health`` answers 200 with a JSON object."""
    status, doc = await fetch_health(session, base_url)
    if status != 200:  # noqa: PLR2004 - HTTP OK
        raise ConnectionError(f"{base_url}/health answered {status}")
    if not isinstance(doc, dict):
        raise ConnectionError(f"{base_url}/health answered no JSON object")
    return {"url": base_url, "remote_status": doc.get("status", "unknown")}


def replica_label(service: str, index: int) -> str:
    return f"{service}[{index}]"


def add_service_probes(
    ctx: ServiceContext,
    http: SessionHolder,
    name: str,
    urls: list[str],
    on_result: Callable[[str, bool], None] | None = None,
    *,
    capability: str | None = None,
    fallback: Callable[[], str | None] | None = None,
) -> None:
    """One non-essential probe per replica of another service (``auth[0]``, ``auth[1]``...).

    ``on_result(url, ready)`` sees every probe's outcome (the gateway readmits replicas and
    ends breaker waits with it). Ready means the replica answers *and* does not report
    itself ``unhealthy`` (an essential dependency of its own down): a sensor replica whose
    database is away answers its health check, but it cannot serve, and a breaker let
    through on its word would only meet 503s and trip again, longer each time.
    """
    for index, url in enumerate(urls):

        async def probe(url: str = url) -> dict[str, object]:
            try:
                details = await probe_service(http.session, url)
            except BaseException:
                # Also when the monitor's own timeout cancels a hung probe: a frozen
                # replica must be reported not ready, not left as it was.
                if on_result is not None:
                    on_result(url, False)  # noqa: FBT003 - (url, up) callback
                raise
            if on_result is not None:
                on_result(url, details.get("remote_status") != "unhealthy")
            return details

        ctx.health.add_probe(
            replica_label(name, index), probe, capability=capability, fallback=fallback
        )

"""A shared aiohttp session and health probes of other services, for a service's context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.http_client import HttpClientConfig, make_session
from sensor_backend.core.service import probe_service

if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp

    from sensor_backend.core.app import ServiceContext


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

"""A shared aiohttp session and health probes of other services, for a service's context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.http_client import HttpClientConfig, make_session
from sensor_backend.core.service import probe_service

if TYPE_CHECKING:
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
    ctx: ServiceContext, http: SessionHolder, name: str, urls: list[str]
) -> None:
    """One non-essential probe per replica of another service (``auth[0]``, ``auth[1]``...)."""
    for index, url in enumerate(urls):

        async def probe(url: str = url) -> dict[str, object]:
            return await probe_service(http.session, url)

        ctx.health.add_probe(replica_label(name, index), probe)

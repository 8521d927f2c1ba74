"""An access token for service-to-service calls, from the service account (role ``service``).

The gateway's event forwarder and the sensor service's outbox relay deliver work later, when
the original caller's token may have expired, so they call the event service as the service
account (``SERVICE_ACCOUNT_USERNAME`` / ``SERVICE_ACCOUNT_PASSWORD``). The token is cached and
renewed at 80 % of its lifetime; when auth is down and no token is cached the caller's
durable queue simply waits (nothing is lost, delivery is late).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp

from sensor_backend.core.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

RENEW_AT = 0.8


class ServiceTokenError(ConnectionError):
    """No token could be obtained (auth down, or the account is not configured)."""


class ServiceTokenProvider:
    def __init__(
        self,
        session: aiohttp.ClientSession | Callable[[], aiohttp.ClientSession],
        auth_urls: Sequence[str],
        *,
        username: str,
        password: str,
        timeout_s: float = 3.0,
        clock: Clock | None = None,
    ) -> None:
        # A session, or a getter for one created later (at the app's startup).
        self._session_of = session if callable(session) else (lambda: session)
        self._urls = [u.rstrip("/") + "/token" for u in auth_urls]
        self._username = username
        self._password = password
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock or SystemClock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self._password)

    async def authorization(self) -> str:
        """``Bearer <token>`` for the service account, fetched or renewed as needed."""
        if self._token is not None and self._clock.monotonic() < self._renew_at:
            return f"Bearer {self._token}"
        async with self._lock:
            if self._token is None or self._clock.monotonic() >= self._renew_at:
                await self._fetch()
        return f"Bearer {self._token}"

    def invalidate(self) -> None:
        """Forget the token (e.g. after a 401 from the service it was sent to)."""
        self._token = None

    async def _fetch(self) -> None:
        if not self.configured:
            raise ServiceTokenError("SERVICE_ACCOUNT_PASSWORD is not set")
        form = {"username": self._username, "password": self._password}
        last: str = "no auth replica"
        for url in self._urls:
            try:
                async with self._session_of().post(url, data=form, timeout=self._timeout) as resp:
                    if resp.status != 200:  # noqa: PLR2004 - HTTP OK
                        last = f"{url} answered {resp.status}"
                        continue
                    body = await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = f"{url}: {type(exc).__name__}"
                continue
            self._token = str(body["access_token"])
            self._renew_at = self._clock.monotonic() + RENEW_AT * float(body["expires_in"])
            return
        raise ServiceTokenError(f"could not obtain a service token ({last})")

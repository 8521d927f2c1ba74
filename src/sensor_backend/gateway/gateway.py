"""The gateway's shared state: a client per service, token checks, rate limits, events."""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from sensor_backend.core.client_address import client_address, networks
from sensor_backend.core.errors import Unauthorized
from sensor_backend.core.security import AUTH_MODE_HEADER
from sensor_backend.gateway.rate_limit import RateLimiter

if TYPE_CHECKING:
    from starlette.types import Scope, Send

    from sensor_backend.core.app import ServiceContext
    from sensor_backend.core.security import AuthGuard
    from sensor_backend.core.service_client import ServiceClient
    from sensor_backend.core.token_auth import Authenticated
    from sensor_backend.gateway.event_queue import EventQueue
    from sensor_backend.gateway.settings import GatewaySettings

FALLBACK = [(AUTH_MODE_HEADER.lower().encode(), b"fallback")]


def _bucket(address: str) -> str:
    """An IPv6 client counts by its /64 (one host gets a whole /64 to pick addresses from)."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address


class Gateway:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        ctx: ServiceContext,
        clients: dict[str, ServiceClient],
        guard: AuthGuard,
        events: EventQueue,
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.clients = clients  # one ServiceClient per service, by its name
        self.guard = guard
        self.events = events
        self.limiters = {
            name: RateLimiter(policy) for name, policy in settings.rate_limit_policies().items()
        }
        self._trusted = networks(settings.trusted_proxies)
        self.body_limits = settings.body_limit_bytes()

    async def admit(
        self, scope: Scope, group: str, *, protected: bool = True
    ) -> tuple[Authenticated | None, list[tuple[bytes, bytes]]]:
        """Check the bearer token (protected routes) and spend one of the client's tokens.

        The client is the token's subject, or the client address on anonymous routes.
        Returns the token check's result and the headers for the answer (X-Auth-Mode,
        RateLimit-Policy, RateLimit); raises Unauthorized or RateLimited (429).
        """
        result: Authenticated | None = None
        extra: list[tuple[bytes, bytes]] = []
        if protected:
            result = await self.authenticate(scope)
            if result.mode == "fallback":
                extra += FALLBACK
            key = "sub:" + result.claims.sub
        else:
            key = "ip:" + _bucket(self.client_address(scope))
        limiter = self.limiters.get(group)
        if limiter is not None:
            extra += limiter.admit(key)
        return result, extra

    async def authenticate(self, scope: Scope) -> Authenticated:
        """Check the bearer token (auth's /verify, or the JWKS fallback)."""
        authorization: str | None = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        if authorization is None:
            raise Unauthorized("missing bearer token", token_error=False)
        return await self.guard.authenticate(authorization)

    def client_address(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted:
            return peer
        forwarded = b""
        for key, value in scope["headers"]:
            if key == b"x-forwarded-for":
                forwarded = value
        return client_address(peer, forwarded.decode("latin-1"), self._trusted)

    def snapshot(self) -> dict[str, Any]:
        return {"rate_limits": {name: rl.snapshot() for name, rl in self.limiters.items()}}

    @staticmethod
    async def json(
        send: Send, status: int, doc: dict[str, Any], extra: list[tuple[bytes, bytes]] | None
    ) -> None:
        body = json.dumps(doc).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send(
            {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
        )
        await send({"type": "http.response.body", "body": body})

"""Bearer-token protection for a service's routes (gateway, sensor, events).

`AuthGuard` owns the auth breaker, the JWKS cache (kept in memory and in a local file) and
the `TokenAuthenticator`, created inside the event loop at startup. Routes depend on
`require_token` / `require_admin_token`, or on `scoped_token(scope)` (the ``TestsRead``...
aliases) where a machine client needs a scope (core.scopes); when the token was validated
locally because auth is down, the response carries ``X-Auth-Mode: fallback`` (DESIGN.md §4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sensor_backend.core.errors import Unavailable
from sensor_backend.core.jwks import JwksCache
from sensor_backend.core.jwt_verify import JwtVerifier
from sensor_backend.core.metrics import TokenAuthCollector
from sensor_backend.core.scopes import EVENTS_READ, EVENTS_WRITE, TESTS_READ, TESTS_WRITE
from sensor_backend.core.token_auth import (
    Authenticated,
    TokenAuthenticator,
    require_admin,
    require_scope,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from sensor_backend.core.app import ServiceContext
    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.http_client import SessionHolder

AUTH_MODE_HEADER = "X-Auth-Mode"
# Documentation only (auto_error off): it puts the bearer scheme into the OpenAPI document,
# so clients and fuzzers know which routes need a token. The header itself is parsed by
# `authorization_header`'s callers, whose refusals say more than HTTPBearer's.
bearer_scheme = HTTPBearer(scheme_name="bearer", bearerFormat="JWT", auto_error=False)


async def authorization_header(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str | None:
    """The raw ``Authorization`` header of a route that documents bearer security."""
    return request.headers.get("authorization")


Authorization = Annotated[str | None, Depends(authorization_header)]


class AuthGuard:
    def __init__(
        self,
        ctx: ServiceContext,
        http: SessionHolder,
        *,
        breaker: CircuitBreaker,
        auth_urls: list[str],
        jwks_path: Path,
    ) -> None:
        self.ctx = ctx
        self.http = http
        self.auth_urls = auth_urls
        self.jwks_path = jwks_path
        self.breaker = breaker  # built by the service's breakers.py, from its settings
        self._authenticator: TokenAuthenticator | None = None
        self._jwks: JwksCache | None = None
        ctx.on_startup.append(self.start)
        ctx.on_shutdown.append(self.stop)
        ctx.health.add_extra(self.facts)
        ctx.metrics.registry.register(TokenAuthCollector(self.facts))

    async def start(self) -> None:
        settings = self.ctx.settings
        verifier = JwtVerifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        self.jwks_path.parent.mkdir(parents=True, exist_ok=True)
        # Retry a failed fetch within seconds: at first start auth may not have its keys yet,
        # and without them the fallback path cannot work.
        self._jwks = JwksCache(
            self.http.session,
            self.auth_urls,
            verifier,
            path=self.jwks_path,
            retry_interval_s=2.0,
        )
        await self._jwks.start()
        self._authenticator = TokenAuthenticator(
            self.http.session, self.auth_urls, self._jwks, self.breaker
        )

    async def stop(self) -> None:
        if self._jwks is not None:
            await self._jwks.stop()

    async def authenticate(self, authorization: str | None) -> Authenticated:
        result = await self.authenticator.authenticate(authorization)
        if result.mode == "fallback" and not self.ctx.settings.auth_fallback:
            raise Unavailable(
                "auth unavailable and fallback validation is disabled", retry_after_s=5
            )
        return result

    @property
    def authenticator(self) -> TokenAuthenticator:
        if self._authenticator is None:
            raise RuntimeError("AuthGuard used before startup")
        return self._authenticator

    def fallback_in_use(self) -> str | None:
        """The fallback that keeps token checks working without auth, when it can."""
        if not self.ctx.settings.auth_fallback or self._jwks is None or not self._jwks.has_keys:
            return None
        return "tokens checked against the cached JWKS (X-Auth-Mode: fallback)"

    def facts(self) -> dict[str, object]:
        if self._authenticator is None or self._jwks is None:
            return {}
        return {"token_auth": self._authenticator.snapshot(), "jwks": self._jwks.snapshot()}


async def require_token(
    request: Request, response: Response, authorization: Authorization
) -> Authenticated:
    guard: AuthGuard = request.app.state.guard
    result = await guard.authenticate(authorization)
    if result.mode == "fallback":
        response.headers[AUTH_MODE_HEADER] = "fallback"
    request.state.auth = result
    return result


async def require_admin_token(
    request: Request, response: Response, authorization: Authorization
) -> Authenticated:
    return require_admin(await require_token(request, response, authorization))


def scoped_token(scope: str) -> Callable[..., Awaitable[Authenticated]]:
    """A dependency: a valid token that may act within ``scope`` (403 naming it otherwise).

    People's tokens (no ``scope`` claim) pass on their roles as before; machine clients'
    tokens need the scope (core.scopes). Use as ``Annotated[Authenticated,
    Depends(scoped_token("tests:write"))]``, or the aliases below.
    """

    async def dependency(
        request: Request, response: Response, authorization: Authorization
    ) -> Authenticated:
        return require_scope(await require_token(request, response, authorization), scope)

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


Token = Annotated[Authenticated, Depends(require_token)]
AdminToken = Annotated[Authenticated, Depends(require_admin_token)]
TestsRead = Annotated[Authenticated, Depends(scoped_token(TESTS_READ))]
TestsWrite = Annotated[Authenticated, Depends(scoped_token(TESTS_WRITE))]
EventsRead = Annotated[Authenticated, Depends(scoped_token(EVENTS_READ))]
EventsWrite = Annotated[Authenticated, Depends(scoped_token(EVENTS_WRITE))]

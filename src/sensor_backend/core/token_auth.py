"""Bearer-token authentication for the gateway and the sensor service (DESIGN.md §4).

Why two paths
-------------
Auth's ``GET /verify`` is the authority: besides the signature and the claims it checks the
revocation list and that the user still exists, which no local check can. So every token is
first put to auth, through the auth circuit breaker and with a short total timeout. When auth
cannot answer (breaker open, connection refused, timeout, 5xx, an answer we cannot read) the
token is checked locally against the cached JWKS with exactly the rules of
:class:`~sensor_backend.core.jwt_verify.JwtVerifier` (signature, ``exp``, ``iss``, ``aud``,
algorithm allow-list), and the result says ``mode="fallback"`` so the caller can answer with
``X-Auth-Mode: fallback``. Fallback cannot see revocations or deleted users: that is the price
of staying available, and it is bounded by the token lifetime.

A 401 from auth is a *definitive* answer, not an outage: it is returned to the client and it
counts as a success for the breaker (auth did its job). Falling back on it would let a revoked
token in.

The positive cache and revocation
---------------------------------
A hot client should not cost an auth round-trip per request, so positive answers from auth
are cached in memory for ``cache_ttl_s`` (default 5 s), keyed by the SHA-256 of the token
(the token itself is never kept as a key), never past the token's ``exp``, bounded to
``cache_max_entries`` (oldest first out: with one TTL the oldest entry is also the one
closest to expiring). Refusals are never cached, nor are fallback results (a local check is
cheap, and auth's return must take effect at once).

Trade-off: a revocation reaches a replica of auth within its refresh interval (5 s), and a
cached answer here may live up to another ``cache_ttl_s``: a revoked token can therefore be
accepted for up to about 10 s after ``/revoke`` (plus any time auth reports
``revocation_may_be_stale``). Set ``cache_ttl_s=0`` to disable the cache when that matters
more than the extra auth call.

Several auth replicas are tried in order within one timeout, starting from the one that
answered last (so a dead first replica does not cost a connection attempt per request); the
whole attempt is one breaker call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from sensor_backend.core.breaker import CircuitBreaker, CircuitOpenError
from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.errors import Forbidden, Unauthorized, Unavailable
from sensor_backend.core.http_client import read_limited
from sensor_backend.core.jwt_verify import (
    MAX_TOKEN_BYTES,
    Claims,
    TokenError,
    UnknownKeyError,
    bearer_token,
    scope_claims,
)
from sensor_backend.core.log import get_logger
from sensor_backend.core.request_context import outgoing_headers

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sensor_backend.core.jwks import JwksCache

__all__ = ["AuthMode", "Authenticated", "TokenAuthenticator", "require_admin", "require_scope"]

AuthMode = Literal["auth", "fallback"]

VERIFY_PATH = "/verify"
MAX_VERIFY_BYTES = 16 * 1024
_HTTP_OK = 200
_HTTP_UNAUTHORIZED = 401
# Auth's refusal messages are fixed strings; anything else is replaced, because the message
# ends up in a WWW-Authenticate header (no quotes, backslashes or control characters).
_SAFE_MESSAGE = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,200}$")

log = get_logger("core.token_auth")

_SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A request's accepted token: its claims and who vouched for them."""

    claims: Claims
    mode: AuthMode

    @property
    def subject(self) -> str:
        """Who is calling: the user id, or the machine client's id (rate-limit key)."""
        return self.claims.sub

    @property
    def client_id(self) -> str | None:
        """The machine client's id (rig), or None for a person's token."""
        return self.claims.client_id

    @property
    def is_client(self) -> bool:
        return self.claims.client_id is not None


def require_admin(authenticated: Authenticated) -> Authenticated:
    """Return ``authenticated`` when it has the admin role, otherwise raise Forbidden."""
    if not authenticated.claims.is_admin:
        raise Forbidden("this operation needs the admin role")
    return authenticated


def require_scope(authenticated: Authenticated, scope: str) -> Authenticated:
    """Return ``authenticated`` when its token may act within ``scope``, else Forbidden.

    People's tokens (no ``scope`` claim) keep their roles' rights; a client token needs
    the scope itself (403 ``insufficient_scope``, RFC 6750 §3.1, naming the scope).
    """
    if not authenticated.claims.allows(scope):
        raise InsufficientScope(scope)
    return authenticated


class InsufficientScope(Forbidden):
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this operation needs the scope {scope!r}", required_scope=scope)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        # RFC 6750 §3: the scope needed; scope names are fixed strings (core.scopes).
        return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.scope}"'}


class _AuthUnusableError(Exception):
    """A replica's answer cannot be read (oversized, not JSON, not a verdict)."""


@dataclass(frozen=True, slots=True)
class _Reply:
    """One replica's answer: a verdict (200 with claims, 401 with a message) or an outage."""

    status: int
    claims: Claims | None = None
    message: str = "token refused"


class TokenAuthenticator:
    """Authenticate bearer tokens with auth's ``/verify``, or locally when auth is down."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        auth_urls: Sequence[str],
        jwks: JwksCache,
        breaker: CircuitBreaker,
        *,
        timeout_s: float = 2.0,
        cache_ttl_s: float = 5.0,
        cache_max_entries: int = 10_000,
        clock: Clock = _SYSTEM_CLOCK,
    ) -> None:
        urls = [url.rstrip("/") for url in auth_urls if url.strip()]
        if not urls:
            raise ValueError("TokenAuthenticator needs at least one auth URL")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if not cache_ttl_s >= 0:
            raise ValueError(f"cache_ttl_s must be >= 0, got {cache_ttl_s!r}")
        if cache_max_entries < 1:
            raise ValueError(f"cache_max_entries must be >= 1, got {cache_max_entries!r}")
        self._session = session
        self._verify_urls = [url + VERIFY_PATH for url in urls]
        self._preferred = 0  # index of the replica that answered last
        self._jwks = jwks
        self._breaker = breaker
        self._timeout_s = timeout_s
        self._cache_ttl_s = cache_ttl_s
        self._cache_max = cache_max_entries
        self._clock = clock
        # sha256(token) -> (monotonic deadline, result); insertion order = age.
        self._cache: dict[bytes, tuple[float, Authenticated]] = {}

        self.auth_ok = 0
        self.fallback_ok = 0
        self.refused = 0
        self.cache_hits = 0
        self.auth_errors = 0  # auth asked and could not answer (then fell back)
        self.breaker_open = 0  # fell back without asking: the breaker was open
        self.unavailable = 0  # no answer possible: auth down and no cached keys

    @property
    def breaker(self) -> CircuitBreaker:
        """The breaker guarding calls to auth."""
        return self._breaker

    @property
    def jwks(self) -> JwksCache:
        """The cached JWKS used by the fallback path."""
        return self._jwks

    def snapshot(self) -> dict[str, object]:
        """Counters for ``/health`` (monotonic totals, plus the cache size)."""
        return {
            "auth_ok": self.auth_ok,
            "fallback_ok": self.fallback_ok,
            "refused": self.refused,
            "cache_hits": self.cache_hits,
            "auth_errors": self.auth_errors,
            "breaker_open": self.breaker_open,
            "unavailable": self.unavailable,
            "cache_size": len(self._cache),
        }

    def clear_cache(self) -> None:
        """Forget every cached answer (e.g. after an admin revokes tokens in bulk)."""
        self._cache.clear()

    # ------------------------------------------------------------------ entry point

    async def authenticate(self, authorization: str | None) -> Authenticated:
        """The accepted token of an ``Authorization`` header value.

        Raises:
            Unauthorized: no bearer token, or the token is refused (by auth or locally).
            Unavailable: auth is unreachable and no key to check the token locally is known.

        """
        try:
            token = _bearer(authorization)
        except TokenError as exc:
            # An empty header counts as missing: no error code (RFC 6750 §3.1).
            self.refused += 1
            raise Unauthorized(str(exc), token_error=bool(authorization)) from exc

        key = hashlib.sha256(token.encode()).digest()
        cached = self._cache_get(key)
        if cached is not None:
            self.cache_hits += 1
            return cached

        claims = await self._ask_auth(f"Bearer {token}")
        if claims is not None:
            result = Authenticated(claims, "auth")
            self.auth_ok += 1
            self._cache_put(key, result)
            return result
        return await self._fallback(token)

    # ------------------------------------------------------------------ auth path

    async def _ask_auth(self, authorization: str) -> Claims | None:
        """Auth's verdict: Claims, Unauthorized, or None when auth cannot answer."""
        try:
            reply = await self._breaker.call(
                lambda: self._call_verify(authorization), is_failure=_is_outage
            )
        except CircuitOpenError:
            self.breaker_open += 1
            return None
        except (aiohttp.ClientError, TimeoutError, _AuthUnusableError) as exc:
            self.auth_errors += 1
            log.warning("auth verify failed; local fallback", reason=repr(exc))
            return None
        if reply.status == _HTTP_UNAUTHORIZED:
            # Definitive: auth judged the token (a success for the breaker).
            self.refused += 1
            raise Unauthorized(reply.message)
        if reply.claims is None:
            self.auth_errors += 1
            log.warning("auth verify unusable; local fallback", status=reply.status)
            return None
        return reply.claims

    async def _call_verify(self, authorization: str) -> _Reply:
        """One verify attempt over the replicas, within the timeout.

        Moves on to the next replica on a connection error, an unreadable answer or a status
        other than 200/401; when none gives a verdict, returns the last such status or raises
        the last error.
        """
        headers = {
            "Authorization": authorization,
            "Accept": "application/json",
            **outgoing_headers(),
        }
        urls = self._verify_urls
        count = len(urls)
        last: _Reply | None = None
        error: Exception | None = None
        async with asyncio.timeout(self._timeout_s):
            for step in range(count):
                index = (self._preferred + step) % count
                try:
                    reply = await self._get_verdict(urls[index], headers)
                except (aiohttp.ClientError, _AuthUnusableError) as exc:
                    error, last = exc, None
                    continue
                if _is_outage(reply):
                    error, last = None, reply
                    continue
                self._preferred = index
                return reply
        if last is not None:
            return last
        assert error is not None  # noqa: S101 - count >= 1: the loop ran and recorded why
        raise error

    async def _get_verdict(self, url: str, headers: dict[str, str]) -> _Reply:
        async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
            status = resp.status
            if status not in {_HTTP_OK, _HTTP_UNAUTHORIZED}:
                return _Reply(status)
            raw = await read_limited(resp, MAX_VERIFY_BYTES)
        try:
            body = json.loads(raw) if raw is not None else None
        except ValueError:
            body = None
        if status == _HTTP_UNAUTHORIZED:
            return _Reply(status, message=_refusal_message(body))
        try:
            return _Reply(status, claims=self._claims(body))
        except (KeyError, TypeError, ValueError) as exc:
            # A 200 that is not a verdict we can read: auth is broken, not the token.
            raise _AuthUnusableError(f"verify answer unreadable: {exc}") from exc

    def _claims(self, body: Any) -> Claims:  # noqa: ANN401 - parsed JSON
        if not isinstance(body, dict) or body.get("valid") is not True:
            raise ValueError("not a positive verdict")
        sub, roles, exp, jti = body["sub"], body["roles"], body["exp"], body["jti"]
        if not isinstance(sub, str) or not sub or not isinstance(jti, str):
            raise TypeError("sub and jti must be strings")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise TypeError("roles must be a list of strings")
        if isinstance(exp, bool) or not isinstance(exp, int):
            raise TypeError("exp must be an integer")
        # /verify does not return iat and iss: iss is the one we trust, iat unknown (0).
        issuer = self._jwks.verifier.issuer
        iat, iss = body.get("iat", 0), body.get("iss", issuer)
        try:
            scopes, client_id = scope_claims(body.get("scope"), body.get("client_id"))
        except TokenError as exc:
            raise ValueError(str(exc)) from exc
        return Claims(
            sub=sub,
            roles=tuple(roles),
            exp=exp,
            iat=iat if isinstance(iat, int) and not isinstance(iat, bool) else 0,
            jti=jti,
            iss=iss if isinstance(iss, str) else issuer,
            scopes=scopes,
            client_id=client_id,
        )

    # ------------------------------------------------------------------ fallback path

    async def _fallback(self, token: str) -> Authenticated:
        jwks = self._jwks
        try:
            try:
                claims = jwks.verifier.verify(token)
            except UnknownKeyError:
                # A rotation we have not seen, or a forged kid: one rate-limited refresh.
                await jwks.refresh_on_unknown_kid()
                if not jwks.has_keys:
                    self.unavailable += 1
                    retry_after = max(1.0, self._breaker.retry_after_s, jwks.refresh_available_in_s)
                    raise Unavailable(
                        "auth unavailable and no cached keys", retry_after_s=retry_after
                    ) from None
                claims = jwks.verifier.verify(token)
        except TokenError as exc:
            self.refused += 1
            raise Unauthorized(str(exc)) from exc
        self.fallback_ok += 1
        return Authenticated(claims, "fallback")

    # ------------------------------------------------------------------ cache

    def _cache_get(self, key: bytes) -> Authenticated | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        deadline, result = entry
        if self._clock.monotonic() >= deadline or result.claims.exp <= self._clock.time():
            del self._cache[key]
            return None
        return result

    def _cache_put(self, key: bytes, result: Authenticated) -> None:
        if self._cache_ttl_s <= 0:
            return
        remaining = result.claims.exp - self._clock.time()
        ttl = min(self._cache_ttl_s, remaining)
        if ttl <= 0:
            return
        cache = self._cache
        cache.pop(key, None)
        while len(cache) >= self._cache_max:
            del cache[next(iter(cache))]
        cache[key] = (self._clock.monotonic() + ttl, result)


def _bearer(authorization: str | None) -> str:
    """The bearer token of the header (TokenError when missing, malformed or oversized)."""
    token = bearer_token(authorization)
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large")
    return token


def _is_outage(reply: _Reply) -> bool:
    """A reply that is no verdict on the token (5xx, or any status but 200 and 401)."""
    return reply.status not in {_HTTP_OK, _HTTP_UNAUTHORIZED}


def _refusal_message(body: Any) -> str:  # noqa: ANN401 - parsed JSON
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and _SAFE_MESSAGE.match(message):
        return message
    return "token refused"

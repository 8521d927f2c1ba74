"""TokenAuthenticator against a real in-process HTTP server playing auth's /verify and JWKS.

The fake auth really verifies tokens (with the same JwtVerifier rules) and keeps a revocation
set, so "auth refuses, local check would accept" is a real scenario. Switches make it answer
500, hang past the timeout, or stop listening. Tokens are real Ed25519 JWTs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sensor_backend.core.breaker import BreakerConfig, BreakerState, CircuitBreaker
from sensor_backend.core.errors import Forbidden, Unauthorized, Unavailable
from sensor_backend.core.jwks import JwksCache
from sensor_backend.core.jwt_verify import JwtVerifier, TokenError, public_jwk
from sensor_backend.core.request_context import request_id_var
from sensor_backend.core.token_auth import Authenticated, TokenAuthenticator, require_admin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import aiohttp

    from sensor_backend.core.clock import ManualClock

ISS = "sensor-backend-auth"
AUD = "sensor-backend"
TIMEOUT_S = 0.3


class FakeAuth:
    """Auth's /verify and JWKS. ``verify_mode``: real, 401, 500, hang, garbage."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {"k1": Ed25519PrivateKey.generate()}
        self.verifier = JwtVerifier(issuer=ISS, audience=AUD)
        self.verifier.add_key("k1", self.keys["k1"].public_key())
        self.revoked: set[str] = set()
        self.refusal = "token revoked"  # what verify_mode "401" says
        self.verify_mode = "real"
        self.verify_calls = 0
        self.jwks_calls = 0
        self.seen_headers: list[dict[str, str]] = []
        self.server: TestServer | None = None
        self.port: int | None = None
        self._release = asyncio.Event()

    def add_key(self, kid: str) -> Ed25519PrivateKey:
        key = Ed25519PrivateKey.generate()
        self.keys[kid] = key
        self.verifier.add_key(kid, key.public_key())
        return key

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        self.verify_calls += 1
        self.seen_headers.append(dict(request.headers))
        mode = self.verify_mode
        if mode == "500":
            return web.json_response({"error": "internal_error", "message": "boom"}, status=500)
        if mode == "hang":
            await self._release.wait()
        if mode == "garbage":
            return web.json_response({"valid": True, "sub": 42})
        if mode == "401":
            return _refuse(self.refusal)
        try:
            token = request.headers["Authorization"].removeprefix("Bearer ")
            claims = self.verifier.verify(token)
        except TokenError as exc:
            return _refuse(str(exc))
        if claims.jti in self.revoked:
            return _refuse("token revoked")
        return web.json_response(
            {
                "valid": True,
                **claims.as_dict(),
                "revocation_may_be_stale": False,
                "user_checked": True,
            }
        )

    async def _jwks(self, _request: web.Request) -> web.StreamResponse:
        self.jwks_calls += 1
        keys = [public_jwk(k.public_key(), kid) for kid, k in self.keys.items()]
        return web.json_response({"keys": keys})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/verify", self._verify)
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        self._release = asyncio.Event()
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()
        self.port = self.server.port

    async def stop(self) -> None:
        self._release.set()
        if self.server is not None:
            await self.server.close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _refuse(message: str) -> web.Response:
    return web.json_response({"error": "unauthorized", "message": message}, status=401)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def payload(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "alice",
        "roles": ["user"],
        "iat": now,
        "exp": now + 300,
        "iss": ISS,
        "aud": AUD,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def sign(key: Ed25519PrivateKey, kid: str = "k1", **overrides: Any) -> str:
    return jwt.encode(payload(**overrides), key, algorithm="EdDSA", headers={"kid": kid})


def bad_token(kind: str, fake: FakeAuth) -> str:
    """A token that must be refused, of the given kind."""
    if kind == "bad_signature":
        return sign(Ed25519PrivateKey.generate(), "k1")  # right kid, wrong key
    if kind == "expired":
        return sign(fake.keys["k1"], exp=int(time.time()) - 60)
    if kind == "alg_none":
        return jwt.encode(payload(), "", algorithm="none", headers={"kid": "k1"})
    if kind == "hs256_public_key":
        # RFC 8725 §2.1: HMAC "signed" with the public key, hoping it is used as a secret.
        raw = fake.keys["k1"].public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        body = _b64(json.dumps(payload()).encode())
        mac = hmac.new(raw, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"
    if kind == "wrong_audience":
        return sign(fake.keys["k1"], aud="someone-else")
    if kind == "wrong_issuer":
        return sign(fake.keys["k1"], iss="evil")
    raise AssertionError(kind)


def bearer(token: str) -> str:
    return f"Bearer {token}"


@pytest.fixture
async def auth_server() -> AsyncIterator[FakeAuth]:
    fake = FakeAuth()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker("auth", BreakerConfig(consecutive_failures=3), clock=clock)


@pytest.fixture
def jwks(
    session: aiohttp.ClientSession, auth_server: FakeAuth, clock: ManualClock, tmp_path: Path
) -> JwksCache:
    verifier = JwtVerifier(issuer=ISS, audience=AUD)
    return JwksCache(session, [auth_server.url], verifier, path=tmp_path / "jwks.json", clock=clock)


@pytest.fixture
def authenticator(
    session: aiohttp.ClientSession,
    auth_server: FakeAuth,
    jwks: JwksCache,
    breaker: CircuitBreaker,
    clock: ManualClock,
) -> TokenAuthenticator:
    return TokenAuthenticator(
        session, [auth_server.url], jwks, breaker, timeout_s=TIMEOUT_S, clock=clock
    )


async def take_down(fake: FakeAuth, outage: str) -> None:
    """Make auth's /verify fail in the given way (the JWKS stays as it was fetched)."""
    if outage == "stopped":
        await fake.stop()
    else:
        fake.verify_mode = outage


OUTAGES = ["500", "hang", "stopped"]
REASONS = {
    "bad_signature": "token signature invalid",
    "expired": "token expired",
    "alg_none": "token algorithm not allowed",
    "hs256_public_key": "token algorithm not allowed",
    "wrong_audience": "token audience not accepted",
    "wrong_issuer": "token issuer not accepted",
}


async def test_normal_path_returns_auth_mode(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, breaker: CircuitBreaker
) -> None:
    """A valid token is vouched for by auth: mode "auth", claims from /verify."""
    token = sign(auth_server.keys["k1"], roles=["user", "admin"], sub="bob")
    context_token = request_id_var.set("req-123")
    try:
        result = await authenticator.authenticate(bearer(token))
    finally:
        request_id_var.reset(context_token)
    assert result.mode == "auth"
    assert result.claims.sub == "bob"
    assert result.claims.roles == ("user", "admin")
    assert result.claims.iss == ISS
    assert auth_server.verify_calls == 1
    assert auth_server.seen_headers[0]["Authorization"] == bearer(token)
    assert auth_server.seen_headers[0]["X-Request-ID"] == "req-123"
    assert breaker.successes == 1


async def test_auth_refusal_is_final_and_not_a_breaker_failure(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, breaker: CircuitBreaker
) -> None:
    """A 401 from auth (a revoked but well-signed token) is not retried locally."""
    token = sign(auth_server.keys["k1"])
    auth_server.revoked.add(jwt.decode(token, options={"verify_signature": False})["jti"])
    for _ in range(5):
        with pytest.raises(Unauthorized) as info:
            await authenticator.authenticate(bearer(token))
        assert info.value.message == "token revoked"
        assert info.value.token_error is True
    assert breaker.failure_count == 0
    assert breaker.successes == 5
    assert breaker.state is BreakerState.CLOSED
    assert auth_server.verify_calls == 5  # refusals are not cached
    assert authenticator.fallback_ok == 0


async def test_auth_refusal_message_cannot_inject_a_header(
    authenticator: TokenAuthenticator, auth_server: FakeAuth
) -> None:
    """A refusal message with quotes or newlines is replaced by a fixed one."""
    auth_server.verify_mode = "401"
    auth_server.refusal = 'x"\r\nSet-Cookie: a=b'
    with pytest.raises(Unauthorized) as info:
        await authenticator.authenticate(bearer(sign(auth_server.keys["k1"])))
    assert info.value.message == "token refused"


@pytest.mark.parametrize("outage", [*OUTAGES, "garbage"])
async def test_auth_outage_falls_back_for_a_valid_token(
    authenticator: TokenAuthenticator,
    auth_server: FakeAuth,
    jwks: JwksCache,
    breaker: CircuitBreaker,
    outage: str,
) -> None:
    """5xx, a hang, a stopped auth or an unreadable 200: local check, mode "fallback"."""
    await jwks.refresh()
    await take_down(auth_server, outage)
    started = time.monotonic()
    result = await authenticator.authenticate(bearer(sign(auth_server.keys["k1"])))
    assert time.monotonic() - started < TIMEOUT_S + 1.0
    assert result == Authenticated(result.claims, "fallback")
    assert result.claims.sub == "alice"
    assert breaker.failure_count == 1
    assert authenticator.auth_errors == 1


@pytest.mark.parametrize("kind", ["bad_signature", "expired", "alg_none"])
@pytest.mark.parametrize("outage", OUTAGES)
async def test_auth_outage_refuses_bad_tokens_locally(
    authenticator: TokenAuthenticator,
    auth_server: FakeAuth,
    jwks: JwksCache,
    outage: str,
    kind: str,
) -> None:
    """In fallback, forged, expired and alg-none tokens are still refused."""
    await jwks.refresh()
    token = bad_token(kind, auth_server)
    await take_down(auth_server, outage)
    with pytest.raises(Unauthorized) as info:
        await authenticator.authenticate(bearer(token))
    assert info.value.message == REASONS[kind]
    assert info.value.token_error is True
    assert authenticator.fallback_ok == 0


@pytest.mark.parametrize("kind", ["hs256_public_key", "wrong_audience", "wrong_issuer"])
async def test_fallback_applies_the_verifier_rules(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, jwks: JwksCache, kind: str
) -> None:
    """HS256 key confusion, a foreign audience and a foreign issuer are refused locally."""
    await jwks.refresh()
    auth_server.verify_mode = "500"
    with pytest.raises(Unauthorized) as info:
        await authenticator.authenticate(bearer(bad_token(kind, auth_server)))
    assert info.value.message == REASONS[kind]


async def test_open_breaker_falls_back_without_a_network_call(
    authenticator: TokenAuthenticator,
    auth_server: FakeAuth,
    jwks: JwksCache,
    breaker: CircuitBreaker,
) -> None:
    """Three 5xx in a row open the breaker; after that auth is not even asked."""
    await jwks.refresh()
    auth_server.verify_mode = "500"
    for _ in range(3):
        result = await authenticator.authenticate(bearer(sign(auth_server.keys["k1"])))
        assert result.mode == "fallback"
    assert breaker.state is BreakerState.OPEN
    assert auth_server.verify_calls == 3

    auth_server.verify_mode = "real"  # even a healthy auth is not asked while open
    for _ in range(5):
        result = await authenticator.authenticate(bearer(sign(auth_server.keys["k1"])))
        assert result.mode == "fallback"
    assert auth_server.verify_calls == 3
    assert authenticator.breaker_open == 5


async def test_unknown_kid_refreshes_once_then_is_rate_limited(
    authenticator: TokenAuthenticator,
    auth_server: FakeAuth,
    jwks: JwksCache,
    clock: ManualClock,
) -> None:
    """A rotated key is fetched on first sight; forged kids within 10 s fetch nothing."""
    await jwks.refresh()
    auth_server.verify_mode = "500"
    rotated = auth_server.add_key("k2")
    clock.advance(10)

    result = await authenticator.authenticate(bearer(sign(rotated, "k2")))
    assert result.mode == "fallback"
    assert auth_server.jwks_calls == 2

    clock.advance(3)
    forged = bearer(sign(Ed25519PrivateKey.generate(), "k-forged"))
    for _ in range(20):
        with pytest.raises(Unauthorized) as info:
            await authenticator.authenticate(forged)
        assert info.value.message == "token signed with an unknown key"
    assert auth_server.jwks_calls == 2

    clock.advance(10)
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(forged)
    assert auth_server.jwks_calls == 3


async def test_no_keys_and_auth_down_is_unavailable(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, jwks: JwksCache
) -> None:
    """Never fetched, no file and auth stopped: 503 with Retry-After, not 401."""
    token = sign(auth_server.keys["k1"])
    await auth_server.stop()
    with pytest.raises(Unavailable) as info:
        await authenticator.authenticate(bearer(token))
    assert info.value.message == "auth unavailable and no cached keys"
    assert info.value.retry_after >= 1
    assert not jwks.has_keys
    assert authenticator.unavailable == 1


async def test_no_keys_still_refuses_an_alg_none_token(
    authenticator: TokenAuthenticator, auth_server: FakeAuth
) -> None:
    """A token refused before any key is needed is a 401 even without keys."""
    token = bad_token("alg_none", auth_server)
    await auth_server.stop()
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(bearer(token))


async def test_restart_during_outage_uses_the_persisted_jwks(
    session: aiohttp.ClientSession,
    auth_server: FakeAuth,
    jwks: JwksCache,
    breaker: CircuitBreaker,
    clock: ManualClock,
) -> None:
    """Keys fetched before the outage are read back from the file by a new process."""
    await jwks.refresh()
    token = sign(auth_server.keys["k1"])
    await auth_server.stop()

    fresh = JwksCache(
        session,
        [auth_server.url],
        JwtVerifier(issuer=ISS, audience=AUD),
        path=jwks.path,
        clock=clock,
        timeout_s=TIMEOUT_S,
    )
    await fresh.start()
    try:
        authenticator = TokenAuthenticator(
            session, [auth_server.url], fresh, breaker, timeout_s=TIMEOUT_S, clock=clock
        )
        result = await authenticator.authenticate(bearer(token))
        assert result.mode == "fallback"
    finally:
        await fresh.stop()


async def test_positive_cache_hit_skips_verify_and_expires(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, clock: ManualClock
) -> None:
    """A repeated token within 5 s costs no auth call; after 5 s auth is asked again."""
    header = bearer(sign(auth_server.keys["k1"]))
    first = await authenticator.authenticate(header)
    second = await authenticator.authenticate(header)
    assert second == first
    assert auth_server.verify_calls == 1
    assert authenticator.cache_hits == 1

    clock.advance(4.9)
    await authenticator.authenticate(header)
    assert auth_server.verify_calls == 1
    clock.advance(0.1)
    await authenticator.authenticate(header)
    assert auth_server.verify_calls == 2


async def test_cache_never_outlives_the_token(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, clock: ManualClock
) -> None:
    """An entry for a token expiring in 2 s is dropped after 2 s, not 5 s."""
    header = bearer(sign(auth_server.keys["k1"], exp=int(clock.time()) + 2))
    await authenticator.authenticate(header)
    clock.advance(2.5)
    await authenticator.authenticate(header)  # the real clock has not moved: auth accepts
    assert auth_server.verify_calls == 2
    assert authenticator.cache_hits == 0


async def test_fallback_results_are_not_cached(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, jwks: JwksCache
) -> None:
    """Once auth answers again, a token accepted in fallback goes back to auth at once."""
    await jwks.refresh()
    header = bearer(sign(auth_server.keys["k1"]))
    auth_server.verify_mode = "500"
    assert (await authenticator.authenticate(header)).mode == "fallback"
    auth_server.verify_mode = "real"
    assert (await authenticator.authenticate(header)).mode == "auth"


async def test_cache_is_bounded(
    session: aiohttp.ClientSession,
    auth_server: FakeAuth,
    jwks: JwksCache,
    breaker: CircuitBreaker,
    clock: ManualClock,
) -> None:
    """Past cache_max_entries the oldest entry goes first."""
    authenticator = TokenAuthenticator(
        session, [auth_server.url], jwks, breaker, cache_max_entries=2, clock=clock
    )
    headers = [bearer(sign(auth_server.keys["k1"])) for _ in range(3)]
    for header in headers:
        await authenticator.authenticate(header)
    assert authenticator.snapshot()["cache_size"] == 2
    await authenticator.authenticate(headers[2])
    assert auth_server.verify_calls == 3
    await authenticator.authenticate(headers[0])
    assert auth_server.verify_calls == 4


async def test_missing_header_is_unauthorized_without_a_network_call(
    authenticator: TokenAuthenticator, auth_server: FakeAuth
) -> None:
    """No header: 401 with a plain Bearer challenge, and auth is not asked."""
    for header in (None, ""):
        with pytest.raises(Unauthorized) as info:
            await authenticator.authenticate(header)
        assert info.value.token_error is False
        assert info.value.headers() == {"WWW-Authenticate": "Bearer"}
    assert auth_server.verify_calls == 0


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", "Bearer " + "a" * 9000]
)
async def test_malformed_header_is_an_invalid_token_without_a_network_call(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, header: str
) -> None:
    """A malformed or oversized header is refused locally with error="invalid_token"."""
    with pytest.raises(Unauthorized) as info:
        await authenticator.authenticate(header)
    assert info.value.token_error is True
    assert auth_server.verify_calls == 0


async def test_replicas_are_tried_in_order_and_the_good_one_is_kept(
    session: aiohttp.ClientSession,
    auth_server: FakeAuth,
    jwks: JwksCache,
    breaker: CircuitBreaker,
    clock: ManualClock,
) -> None:
    """A failing first replica is skipped, and later calls start at the one that answered."""
    broken = FakeAuth()
    broken.verify_mode = "500"
    await broken.start()
    try:
        authenticator = TokenAuthenticator(
            session, [broken.url, auth_server.url], jwks, breaker, clock=clock
        )
        for _ in range(3):
            result = await authenticator.authenticate(bearer(sign(auth_server.keys["k1"])))
            assert result.mode == "auth"
        assert broken.verify_calls == 1
        assert auth_server.verify_calls == 3
        assert breaker.failure_count == 0
    finally:
        await broken.stop()


async def test_require_admin(authenticator: TokenAuthenticator, auth_server: FakeAuth) -> None:
    """require_admin passes admins through and refuses others with 403."""
    admin = await authenticator.authenticate(
        bearer(sign(auth_server.keys["k1"], roles=["user", "admin"]))
    )
    assert require_admin(admin) is admin
    user = await authenticator.authenticate(bearer(sign(auth_server.keys["k1"])))
    with pytest.raises(Forbidden):
        require_admin(user)


async def test_snapshot_counts_each_outcome(
    authenticator: TokenAuthenticator, auth_server: FakeAuth, jwks: JwksCache
) -> None:
    """auth_ok, cache_hits, fallback_ok and refused count what happened."""
    await jwks.refresh()
    header = bearer(sign(auth_server.keys["k1"]))
    await authenticator.authenticate(header)
    await authenticator.authenticate(header)
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(None)
    auth_server.verify_mode = "500"
    await authenticator.authenticate(bearer(sign(auth_server.keys["k1"])))
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(bearer(bad_token("expired", auth_server)))
    snap = authenticator.snapshot()
    assert snap["auth_ok"] == 1
    assert snap["cache_hits"] == 1
    assert snap["fallback_ok"] == 1
    assert snap["refused"] == 2
    assert snap["auth_errors"] == 2
    json.dumps(snap)

"""JwksCache against a real in-process HTTP server playing auth's JWKS endpoint.

Real sockets, real Ed25519 keys, a ManualClock for the refresh rate limit; no auth service.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sensor_backend.core.jwks import MAX_JWKS_BYTES, JwksCache
from sensor_backend.core.jwt_verify import JwtVerifier, UnknownKeyError, public_jwk

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import aiohttp

    from sensor_backend.core.clock import ManualClock

ISS = "sensor-backend-auth"
AUD = "sensor-backend"


class FakeJwks:
    """Plays ``GET /.well-known/jwks.json``; ``mode`` is ok, 500, hang, garbage, empty, huge."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {"k1": Ed25519PrivateKey.generate()}
        self.mode = "ok"
        self.calls = 0
        self.server: TestServer | None = None
        self.port: int | None = None
        self._release = asyncio.Event()
        self._hit = asyncio.Event()

    async def wait_calls(self, count: int) -> None:
        while self.calls < count:
            self._hit.clear()
            await self._hit.wait()

    def add_key(self, kid: str) -> None:
        self.keys[kid] = Ed25519PrivateKey.generate()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k.public_key(), kid) for kid, k in self.keys.items()]}

    async def _handle(self, _request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self._hit.set()
        if self.mode == "500":
            return web.json_response({"error": "internal_error"}, status=500)
        if self.mode == "hang":
            await self._release.wait()
        if self.mode == "garbage":
            return web.Response(body=b"<html>not json</html>", content_type="text/html")
        if self.mode == "empty":
            return web.json_response({"keys": []})
        if self.mode == "huge":
            return web.json_response({"keys": [], "pad": "x" * MAX_JWKS_BYTES})
        return web.json_response(self.jwks())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._handle)
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


def make_token(key: Ed25519PrivateKey, kid: str) -> str:
    now = int(time.time())
    payload = {
        "sub": "alice",
        "roles": ["user"],
        "iat": now,
        "exp": now + 300,
        "iss": ISS,
        "aud": AUD,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
async def fake() -> AsyncIterator[FakeJwks]:
    server = FakeJwks()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "jwks.json"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def list_dir(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def inode(path: Path) -> int:
    return path.stat().st_ino


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_cache(
    session: aiohttp.ClientSession,
    urls: list[str],
    clock: ManualClock,
    path: Path | None,
    **kw: Any,
) -> JwksCache:
    verifier = JwtVerifier(issuer=ISS, audience=AUD)
    return JwksCache(session, urls, verifier, path=path, clock=clock, timeout_s=0.3, **kw)


async def test_refresh_installs_keys_and_persists_them_atomically(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock, jwks_file: Path
) -> None:
    """A fetch installs the keys, verifies a real token and writes the file via a rename."""
    cache = make_cache(session, [fake.url], clock, jwks_file)
    assert not cache.has_keys
    assert await cache.refresh() is True
    assert cache.verifier.kids == {"k1"}
    assert cache.verifier.verify(make_token(fake.keys["k1"], "k1")).sub == "alice"
    assert read_json(jwks_file) == fake.jwks()
    assert list_dir(jwks_file.parent) == ["jwks.json"]  # no temp file left
    snap = cache.snapshot()
    assert snap["source"] == "auth"
    assert snap["kids"] == ["k1"]
    assert snap["fetches"] == 1


async def test_unchanged_jwks_is_not_rewritten(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock, jwks_file: Path
) -> None:
    """A refresh that brings the same keys leaves the file alone; a rotation rewrites it."""
    cache = make_cache(session, [fake.url], clock, jwks_file)
    await cache.refresh()
    first = inode(jwks_file)
    await cache.refresh()
    assert inode(jwks_file) == first
    fake.add_key("k2")
    await cache.refresh()
    assert inode(jwks_file) != first
    assert {k["kid"] for k in read_json(jwks_file)["keys"]} == {"k1", "k2"}


async def test_fresh_cache_loads_file_while_auth_is_down(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock, jwks_file: Path
) -> None:
    """After a restart with auth down, the persisted JWKS still verifies tokens."""
    await make_cache(session, [fake.url], clock, jwks_file).refresh()
    await fake.stop()

    restarted = make_cache(session, [fake.url], clock, jwks_file)
    await restarted.start()
    try:
        assert restarted.has_keys
        assert restarted.snapshot()["source"] == "file"
        assert await restarted.refresh() is False  # auth is down: the keys stay
        assert restarted.verifier.verify(make_token(fake.keys["k1"], "k1")).sub == "alice"
    finally:
        await restarted.stop()


async def test_replicas_are_tried_in_order(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A dead first replica (connection refused) is skipped for the next one."""
    dead = FakeJwks()
    await dead.start()
    await dead.stop()
    cache = make_cache(session, [dead.url, fake.url + "/"], clock, None)
    assert await cache.refresh() is True
    assert cache.verifier.kids == {"k1"}
    assert fake.calls == 1


@pytest.mark.parametrize("mode", ["500", "garbage", "empty", "huge", "hang"])
async def test_bad_answers_keep_the_current_keys(
    fake: FakeJwks,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    jwks_file: Path,
    mode: str,
) -> None:
    """A 5xx, non-JSON, key-less, oversized or hanging answer never replaces good keys."""
    cache = make_cache(session, [fake.url], clock, jwks_file)
    await cache.refresh()
    before = read_bytes(jwks_file)
    fake.mode = mode
    started = time.monotonic()
    assert await cache.refresh() is False
    assert time.monotonic() - started < 2.0  # the hang is cut by the 0.3 s timeout
    assert cache.verifier.kids == {"k1"}
    assert read_bytes(jwks_file) == before
    assert cache.fetch_failures == 1


async def test_unknown_kid_refresh_is_rate_limited(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Unknown-kid refreshes fetch at most once per 10 s, counting every fetch."""
    cache = make_cache(session, [fake.url], clock, None)
    await cache.refresh()
    fake.add_key("k2")
    token = make_token(fake.keys["k2"], "k2")
    with pytest.raises(UnknownKeyError):
        cache.verifier.verify(token)

    clock.advance(5)
    assert await cache.refresh_on_unknown_kid() is False  # 5 s after the last fetch
    assert fake.calls == 1
    assert cache.refresh_available_in_s == pytest.approx(5.0)

    clock.advance(5)
    assert await cache.refresh_on_unknown_kid() is True
    assert fake.calls == 2
    assert cache.verifier.verify(token).sub == "alice"

    clock.advance(9.9)
    assert await cache.refresh_on_unknown_kid() is False
    assert fake.calls == 2
    assert cache.rate_limited == 2


async def test_failed_fetches_count_against_the_rate_limit(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """While auth is down, forged kids still cost at most one fetch per interval."""
    fake.mode = "500"
    cache = make_cache(session, [fake.url], clock, None)
    for _ in range(5):
        await cache.refresh_on_unknown_kid()
    assert fake.calls == 1
    clock.advance(10)
    await cache.refresh_on_unknown_kid()
    assert fake.calls == 2


async def test_concurrent_refreshes_share_one_fetch(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """Many callers refreshing at once cause a single request to auth."""
    cache = make_cache(session, [fake.url], clock, None)
    results = await asyncio.gather(
        *(cache.refresh_on_unknown_kid() for _ in range(10)), cache.refresh()
    )
    assert all(results)
    assert fake.calls == 1


async def test_background_refresh_runs_periodically_until_stopped(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """start() fetches at once and then every interval; stop() ends it."""
    cache = make_cache(session, [fake.url], clock, None, refresh_interval_s=0.02)
    await cache.start()
    try:
        async with asyncio.timeout(5):
            await fake.wait_calls(3)
        assert cache.has_keys
    finally:
        await cache.stop()
    calls = fake.calls
    await asyncio.sleep(0.1)
    assert fake.calls == calls


async def test_corrupt_file_is_ignored(
    session: aiohttp.ClientSession, clock: ManualClock, jwks_file: Path
) -> None:
    """A garbled or key-less file is not loaded (and does not raise)."""
    cache = make_cache(session, ["http://127.0.0.1:9"], clock, jwks_file)
    assert cache.load_file() is False  # missing
    write_text(jwks_file, '{"keys": [')
    assert cache.load_file() is False
    write_text(jwks_file, '{"keys": [{"kty": "RSA", "kid": "x"}]}')
    assert cache.load_file() is False
    assert not cache.has_keys


async def test_unwritable_file_does_not_fail_the_refresh(
    fake: FakeJwks, session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    """A persist error is counted and logged; the fetched keys are still used."""
    blocker = tmp_path / "not-a-dir"
    write_text(blocker, "")
    cache = make_cache(session, [fake.url], clock, blocker / "jwks.json")
    assert await cache.refresh() is True
    assert cache.has_keys
    assert cache.persist_failures == 1


def test_constructor_rejects_bad_settings(clock: ManualClock) -> None:
    """No URL or a non-positive interval is a configuration error."""
    verifier = JwtVerifier(issuer=ISS, audience=AUD)
    session: Any = object()
    with pytest.raises(ValueError, match="auth URL"):
        JwksCache(session, [" "], verifier)
    with pytest.raises(ValueError, match="refresh_interval_s"):
        JwksCache(session, ["http://a"], verifier, refresh_interval_s=0)

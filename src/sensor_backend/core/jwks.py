"""The auth service's public keys (JWKS), cached in memory and on disk, for local fallback.

Why this exists
---------------
When auth is down, the gateway and the sensor service still accept valid tokens by checking
them locally (DESIGN.md §4). That needs auth's public keys *before* the outage, and across a
restart *during* it: so the last good JWKS is kept in a :class:`JwtVerifier` and written to a
local file (temp file + fsync + rename, so a crash never leaves half a document), which
:meth:`JwksCache.start` loads before the first fetch.

Why not PyJWKClient
-------------------
It fetches with blocking ``urllib`` (it would stall the event loop for the whole request) and
its key cache never expires (DESIGN.md §9). Here the fetch uses the service's pooled
``aiohttp`` session with a timeout, and the keys are refreshed:

* periodically (default every 300 s, auth's ``Cache-Control: max-age``), sooner after a
  failed fetch;
* on a token whose ``kid`` is unknown (a key rotation we have not seen yet), but at most once
  per ``min_refresh_interval_s`` (default 10 s), counting every fetch: forged ``kid`` values
  cost auth at most one JWKS request per interval, however many arrive.

Concurrent refreshes share one fetch (single flight). The fetch does not go through the auth
breaker: it is already rate-limited, and a breaker opened by slow ``/verify`` calls must not
stop us from learning a rotated key.

A fetched document replaces the key set only when it holds at least one usable key; an
empty or garbled answer keeps the keys we have (auth never publishes an empty set on
purpose, and wiping the keys would turn an auth hiccup into refusing every token).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.http_client import read_limited
from sensor_backend.core.jwt_verify import JwtVerifier
from sensor_backend.core.log import get_logger
from sensor_backend.core.request_context import outgoing_headers

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["JWKS_PATH", "MAX_JWKS_BYTES", "JwksCache"]

JWKS_PATH = "/.well-known/jwks.json"
# A JWKS with a handful of Ed25519 keys is well under 1 KiB; refuse anything absurd.
MAX_JWKS_BYTES = 64 * 1024

log = get_logger("core.jwks")

_SYSTEM_CLOCK = SystemClock()


class JwksCache:
    """Auth's signing keys for local verification: fetched, refreshed and persisted.

    ``verifier`` is the :class:`JwtVerifier` whose key set this cache maintains (built with
    the service's issuer and audience); callers verify with ``cache.verifier.verify(token)``
    and, on :class:`~sensor_backend.core.jwt_verify.UnknownKeyError`, call
    :meth:`refresh_on_unknown_kid` and verify once more.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        auth_urls: Sequence[str],
        verifier: JwtVerifier,
        *,
        path: Path | str | None = None,
        refresh_interval_s: float = 300.0,
        retry_interval_s: float = 30.0,
        min_refresh_interval_s: float = 10.0,
        timeout_s: float = 2.0,
        clock: Clock = _SYSTEM_CLOCK,
    ) -> None:
        urls = [url.rstrip("/") for url in auth_urls if url.strip()]
        if not urls:
            raise ValueError("JwksCache needs at least one auth URL")
        for name, value in (
            ("refresh_interval_s", refresh_interval_s),
            ("retry_interval_s", retry_interval_s),
            ("timeout_s", timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not min_refresh_interval_s >= 0:
            raise ValueError(f"min_refresh_interval_s must be >= 0, got {min_refresh_interval_s!r}")
        self._session = session
        self._urls = [url + JWKS_PATH for url in urls]
        self._verifier = verifier
        self._path = Path(path) if path is not None else None
        self._refresh_interval_s = refresh_interval_s
        self._retry_interval_s = retry_interval_s
        self._min_refresh_interval_s = min_refresh_interval_s
        self._timeout_s = timeout_s
        self._clock = clock

        self._inflight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_attempt: float | None = None  # monotonic start of the last fetch
        self._persisted: dict[str, Any] | None = None  # the document on disk, if known
        self._source: str | None = None  # "auth" or "file"
        self._installed_at: float | None = None  # wall-clock time keys were last installed

        self.fetches = 0
        self.fetch_failures = 0
        self.rate_limited = 0
        self.persist_failures = 0

    # ------------------------------------------------------------------ views

    @property
    def verifier(self) -> JwtVerifier:
        """The verifier holding the current keys."""
        return self._verifier

    @property
    def has_keys(self) -> bool:
        """True once any usable key is known (fetched or loaded from the file)."""
        return bool(self._verifier.kids)

    @property
    def path(self) -> Path | None:
        """Where the last good JWKS is persisted (None: memory only)."""
        return self._path

    @property
    def refresh_available_in_s(self) -> float:
        """Seconds until :meth:`refresh_on_unknown_kid` may fetch again (0.0: now)."""
        if self._last_attempt is None:
            return 0.0
        elapsed = self._clock.monotonic() - self._last_attempt
        return max(0.0, self._min_refresh_interval_s - elapsed)

    def snapshot(self) -> dict[str, object]:
        """JSON-serialisable view for ``/health``."""
        installed = self._installed_at
        return {
            "kids": sorted(self._verifier.kids),
            "source": self._source,
            "installed_at": (
                None if installed is None else datetime.fromtimestamp(installed, UTC).isoformat()
            ),
            "fetches": self.fetches,
            "fetch_failures": self.fetch_failures,
            "rate_limited": self.rate_limited,
            "persist_failures": self.persist_failures,
            "file": None if self._path is None else str(self._path),
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load the persisted JWKS, then refresh in the background (first fetch at once)."""
        if self._task is not None:
            return
        # Read off the event loop (file I/O), install on it.
        self._load(await asyncio.to_thread(self._read_file))
        self._task = asyncio.create_task(self._loop(), name="jwks-refresh")

    async def stop(self) -> None:
        """Stop the background refresh and any fetch still in flight."""
        tasks = [t for t in (self._task, self._inflight) if t is not None and not t.done()]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                ok = await self.refresh()
            except Exception:  # a bug must not end the refresh loop for good
                log.exception("jwks refresh failed unexpectedly")
                ok = False
            await asyncio.sleep(self._refresh_interval_s if ok else self._retry_interval_s)

    # ------------------------------------------------------------------ file

    def load_file(self) -> bool:
        """Install the persisted JWKS, if there is a usable one; True when keys were loaded."""
        return self._load(self._read_file())

    def _read_file(self) -> bytes | None:
        path = self._path
        if path is None:
            return None
        try:
            with path.open("rb") as fh:
                return fh.read(MAX_JWKS_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("jwks file unreadable", file=str(path), reason=str(exc))
            return None

    def _load(self, raw: bytes | None) -> bool:
        if raw is None:
            return False
        doc = _parse(raw, self._verifier)
        if doc is None:
            log.warning("jwks file ignored: not a JWKS with a usable key", file=str(self._path))
            return False
        self._install(doc, "file")
        self._persisted = doc
        log.info("jwks loaded from file", file=str(self._path), kids=sorted(self._verifier.kids))
        return True

    async def _persist(self, doc: dict[str, Any]) -> None:
        path = self._path
        if path is None or doc == self._persisted:
            return
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        try:
            await asyncio.to_thread(_atomic_write, path, data)
        except OSError as exc:
            self.persist_failures += 1
            log.warning("jwks file not written", file=str(path), reason=str(exc))
            return
        self._persisted = doc

    # ------------------------------------------------------------------ fetching

    async def refresh(self) -> bool:
        """Fetch the JWKS now (joining a fetch already in flight); True when keys updated."""
        task = self._inflight
        if task is None or task.done():
            task = asyncio.create_task(self._fetch(), name="jwks-fetch")
            self._inflight = task
        # Shielded: one cancelled caller must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    async def refresh_on_unknown_kid(self) -> bool:
        """Refresh for a token with an unknown ``kid``, at most once per minimum interval.

        Joins a fetch already in flight. Returns True when keys were updated (the caller
        verifies again either way: a concurrent refresh may have brought the key).
        """
        task = self._inflight
        if task is not None and not task.done():
            return await asyncio.shield(task)
        if self.refresh_available_in_s > 0:
            self.rate_limited += 1
            return False
        return await self.refresh()

    async def _fetch(self) -> bool:
        self._last_attempt = self._clock.monotonic()
        self.fetches += 1
        for url in self._urls:
            try:
                async with asyncio.timeout(self._timeout_s):
                    raw = await self._get(url)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("jwks fetch failed", url=url, reason=repr(exc))
                continue
            if raw is None:
                continue
            doc = _parse(raw, self._verifier)
            if doc is None:
                log.warning("jwks fetch ignored: not a JWKS with a usable key", url=url)
                continue
            self._install(doc, "auth")
            await self._persist(doc)
            return True
        self.fetch_failures += 1
        return False

    async def _get(self, url: str) -> bytes | None:
        headers = {"Accept": "application/json", **outgoing_headers()}
        async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
            if resp.status != 200:  # noqa: PLR2004 - HTTP OK
                log.warning("jwks fetch refused", url=url, status=resp.status)
                return None
            raw = await read_limited(resp, MAX_JWKS_BYTES)
            if raw is None:
                log.warning("jwks fetch ignored: document too large", url=url)
            return raw

    def _install(self, doc: dict[str, Any], source: str) -> None:
        before = self._verifier.kids
        self._verifier.set_jwks(doc)
        self._source = source
        self._installed_at = self._clock.time()
        after = self._verifier.kids
        if after != before:
            log.info("jwks keys changed", source=source, kids=sorted(after))


def _parse(raw: bytes, verifier: JwtVerifier) -> dict[str, Any] | None:
    """``{"keys": [...]}`` when ``raw`` is a JWKS with at least one key ``verifier`` accepts."""
    if len(raw) > MAX_JWKS_BYTES:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        return None
    # Keep only the keys; a probe verifier with the same settings says whether any is usable.
    keys = [entry for entry in doc["keys"] if isinstance(entry, dict)]
    clean: dict[str, Any] = {"keys": keys}
    probe = JwtVerifier(issuer=verifier.issuer, audience=verifier.audience)
    probe.set_jwks(clean)
    return clean if probe.kids else None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Make the rename itself durable (POSIX: fsync the directory).
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

"""Revoked token ids, in ``auth.revoked_tokens`` and mirrored in memory.

``/verify`` checks the in-memory set only, so it keeps working while the database is down;
a background task refreshes the set every few seconds (which is also how replicas learn of
each other's revocations). When refreshes fail, answers say the list may be stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.log import get_logger

if TYPE_CHECKING:
    from sensor_backend.core.db import Connection, Database

log = get_logger("auth.revocation")


class RevocationList:
    def __init__(self, db: Database, *, refresh_s: float = 5.0) -> None:
        self.db = db
        self.refresh_s = refresh_s
        self._revoked: dict[str, float] = {}  # jti -> expiry (epoch seconds)
        self._last_refresh: float | None = None  # monotonic time of the last good refresh
        self._task: asyncio.Task[None] | None = None

    @property
    def stale(self) -> bool:
        """True unless a refresh succeeded within the last two intervals."""
        last = self._last_refresh
        return last is None or time.monotonic() - last > 2 * self.refresh_s

    def is_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    async def revoke(self, jti: str, sub: str, exp: int) -> None:
        async def insert(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO revoked_tokens (jti, sub, expires_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (jti) DO NOTHING",
                jti,
                sub,
                datetime.fromtimestamp(exp, UTC),
            )

        await self.db.run(insert)
        self._revoked[jti] = float(exp)

    async def refresh(self) -> None:
        async def select(conn: Connection) -> dict[str, float]:
            await conn.execute(
                "DELETE FROM revoked_tokens WHERE expires_at < now() - interval '1 hour'"
            )
            rows = await conn.fetch(
                "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > now()"
            )
            return {r["jti"]: r["expires_at"].timestamp() for r in rows}

        self._revoked = await self.db.run(select)
        self._last_refresh = time.monotonic()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="revocation-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except DatabaseUnavailable as exc:
                log.warning(
                    "revocation refresh failed; serving the cached list", reason=exc.message
                )
            await asyncio.sleep(self.refresh_s)

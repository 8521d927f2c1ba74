"""The ``auth.users`` table: create and look up users, with a short existence cache.

``/verify`` runs on every request through the gateway and checks that the token's user
still exists (DESIGN.md §4); a small TTL cache keeps that off the database's hot path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.errors import Conflict

if TYPE_CHECKING:
    from datetime import datetime

    from sensor_backend.core.db import Connection, Database

CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    username: str
    password_hash: str
    roles: tuple[str, ...]
    created_at: datetime

    def public(self) -> dict[str, object]:
        """What a client may see: never the hash."""
        return {
            "id": str(self.id),
            "username": self.username,
            "roles": list(self.roles),
            "created_at": self.created_at.isoformat(),
        }


def _user(row: asyncpg.Record) -> User:
    return User(
        row["id"], row["username"], row["password_hash"], tuple(row["roles"]), row["created_at"]
    )


class UsernameTakenError(Conflict):
    code = "username_taken"


class UserRepository:
    def __init__(
        self, db: Database, *, cache_ttl_s: float = 30.0, clock: Clock | None = None
    ) -> None:
        self.db = db
        self.cache_ttl_s = cache_ttl_s
        self._clock = clock or SystemClock()
        self._exists: dict[str, float] = {}  # sub -> time it was last seen in the database

    async def create(
        self, username: str, password_hash: str, roles: tuple[str, ...] = ("user",)
    ) -> User:
        async def insert(conn: Connection) -> User:
            try:
                row = await conn.fetchrow(
                    "INSERT INTO users (id, username, password_hash, roles)"
                    " VALUES ($1, $2, $3, $4) RETURNING *",
                    uuid.uuid4(),
                    username,
                    password_hash,
                    list(roles),
                )
            except asyncpg.UniqueViolationError as exc:
                raise UsernameTakenError(f"username {username!r} is already registered") from exc
            return _user(row)

        return await self.db.run(insert)

    async def by_username(self, username: str) -> User | None:
        async def select(conn: Connection) -> User | None:
            row = await conn.fetchrow(
                "SELECT * FROM users WHERE lower(username) = lower($1)", username
            )
            return _user(row) if row is not None else None

        return await self.db.run(select)

    async def exists(self, user_id: str) -> bool:
        """Whether the user still exists; answered from cache for ``cache_ttl_s``."""
        now = self._clock.monotonic()
        seen = self._exists.get(user_id)
        if seen is not None and now - seen < self.cache_ttl_s:
            return True
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            return False

        async def select(conn: Connection) -> bool:
            return bool(
                await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", uid)
            )

        found = await self.db.run(select)
        if found:
            if len(self._exists) >= CACHE_MAX:
                self._exists.clear()
            self._exists[user_id] = now
        else:
            self._exists.pop(user_id, None)
        return found

    async def ensure_admin(self, username: str, password_hash: str) -> bool:
        """Create the bootstrap admin unless that username exists; True if created."""
        return await self.ensure(username, password_hash, ("user", "admin"))

    async def ensure(self, username: str, password_hash: str, roles: tuple[str, ...]) -> bool:
        """Create a bootstrap account unless that username exists; True if created."""

        async def upsert(conn: Connection) -> bool:
            result: str = await conn.execute(
                "INSERT INTO users (id, username, password_hash, roles)"
                " SELECT $1, $2, $3, $4"
                " WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($2))",
                uuid.uuid4(),
                username,
                password_hash,
                list(roles),
            )
            return result.endswith(" 1")

        return await self.db.run(upsert)

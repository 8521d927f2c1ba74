"""Machine clients (rigs): the ``auth.clients`` table and the client credentials' secrets.

An admin creates a client with a name and scopes (core.scopes); its id and secret are
shown once, and only a hash of the secret is kept. ``POST /token`` with
``grant_type=client_credentials`` (RFC 6749 §4.4) exchanges them for a short-lived token.
Rotation replaces the secret (the old one is refused at once; tokens already issued live
until they expire); revocation refuses the secret and makes ``/verify`` refuse the client's
tokens within ``cache_ttl_s``.

Why HMAC-SHA256 and not argon2id
--------------------------------
argon2id exists to make guessing *low-entropy* passwords from a stolen hash expensive. A
client secret is 256 random bits (`secrets.token_urlsafe(32)`): no dictionary, and 2^255
guesses on average whatever the hash costs, so a slow hash buys nothing. It would cost a lot:
every token request of every rig (one per ``client_token_ttl_s``) would take argon2's 64 MiB
and tens of milliseconds, and an unauthenticated caller could make the auth service do that
at will (the login limiter bounds it per client id and address, not in total). So the secret
is stored as HMAC-SHA256 keyed with ``AUTH_CLIENT_SECRET_KEY`` (a pepper kept out of the
database: a copy of the table alone does not even let one check a guessed secret), and
compared in constant time. GitHub and AWS do the same for their high-entropy tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.errors import Conflict, NotFound

if TYPE_CHECKING:
    from datetime import datetime

    from sensor_backend.core.db import Connection, Database

HASH_SCHEME = "hmac-sha256"
SECRET_BYTES = 32
DEFAULT_KEY = b"sensor-backend client secrets"
CACHE_MAX = 10_000
# A client's name: the rig's label (letters, digits, . _ -), unique among live clients.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ClientNameTakenError(Conflict):
    code = "client_name_taken"


class ClientRevokedError(Conflict):
    code = "client_revoked"


class ClientNotFoundError(NotFound):
    code = "client_not_found"


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: datetime
    created_by: str
    rotated_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        """What an admin may see: never the secret or its hash."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "rotated_at": self.rotated_at.isoformat() if self.rotated_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.active,
        }


def _client(row: asyncpg.Record) -> Client:
    return Client(
        row["client_id"],
        row["name"],
        tuple(row["scopes"]),
        row["secret_hash"],
        row["created_at"],
        row["created_by"],
        row["rotated_at"],
        row["revoked_at"],
    )


class SecretHasher:
    """HMAC-SHA256 of client secrets under a server-side key (see the module docstring)."""

    def __init__(self, key: str = "") -> None:
        self._key = key.encode() if key else DEFAULT_KEY
        self._dummy = self.hash(secrets.token_urlsafe(SECRET_BYTES))

    @staticmethod
    def new_secret() -> str:
        return secrets.token_urlsafe(SECRET_BYTES)

    def hash(self, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()
        return f"{HASH_SCHEME}${digest}"

    def verify(self, secret: str, stored: str | None) -> bool:
        """Constant-time check; ``None`` (no such client) costs the same and fails."""
        ok = hmac.compare_digest(self.hash(secret), stored if stored is not None else self._dummy)
        return ok and stored is not None


class ClientRepository:
    def __init__(
        self,
        db: Database,
        hasher: SecretHasher,
        *,
        cache_ttl_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.hasher = hasher
        self.cache_ttl_s = cache_ttl_s
        self._clock = clock or SystemClock()
        self._active: dict[str, float] = {}  # client_id -> when last seen active

    async def create(
        self, name: str, scopes: tuple[str, ...], created_by: str
    ) -> tuple[Client, str]:
        """A new client and its secret (the only time the secret exists in clear)."""
        secret = self.hasher.new_secret()

        async def insert(conn: Connection) -> Client:
            try:
                row = await conn.fetchrow(
                    "INSERT INTO clients (client_id, name, scopes, secret_hash, created_by)"
                    " VALUES ($1, $2, $3, $4, $5) RETURNING *",
                    str(uuid.uuid4()),
                    name,
                    list(scopes),
                    self.hasher.hash(secret),
                    created_by,
                )
            except asyncpg.UniqueViolationError as exc:
                raise ClientNameTakenError(f"a live client is already named {name!r}") from exc
            return _client(row)

        return await self.db.run(insert), secret

    async def list_all(self, *, include_revoked: bool = True) -> list[Client]:
        async def select(conn: Connection) -> list[Client]:
            rows = await conn.fetch(
                "SELECT * FROM clients WHERE $1 OR revoked_at IS NULL ORDER BY created_at, name",
                include_revoked,
            )
            return [_client(r) for r in rows]

        return await self.db.run(select)

    async def get(self, client_id: str) -> Client | None:
        async def select(conn: Connection) -> Client | None:
            row = await conn.fetchrow("SELECT * FROM clients WHERE client_id = $1", client_id)
            return _client(row) if row is not None else None

        return await self.db.run(select)

    async def rotate(self, client_id: str) -> tuple[Client, str]:
        """A new secret; the old one is refused from now on."""
        secret = self.hasher.new_secret()

        async def update(conn: Connection) -> Client:
            row = await conn.fetchrow(
                "UPDATE clients SET secret_hash = $2, rotated_at = now()"
                " WHERE client_id = $1 AND revoked_at IS NULL RETURNING *",
                client_id,
                self.hasher.hash(secret),
            )
            if row is None:
                await self._explain_missing(conn, client_id)
            return _client(row)

        return await self.db.run(update, transaction=True), secret

    async def revoke(self, client_id: str) -> Client:
        """Refuse the client's secret and its tokens (idempotent)."""

        async def update(conn: Connection) -> Client:
            row = await conn.fetchrow(
                "UPDATE clients SET revoked_at = coalesce(revoked_at, now())"
                " WHERE client_id = $1 RETURNING *",
                client_id,
            )
            if row is None:
                raise ClientNotFoundError(f"no client {client_id!r}")
            return _client(row)

        client = await self.db.run(update)
        self._active.pop(client_id, None)
        return client

    @staticmethod
    async def _explain_missing(conn: Connection, client_id: str) -> None:
        revoked = await conn.fetchval(
            "SELECT revoked_at IS NOT NULL FROM clients WHERE client_id = $1", client_id
        )
        if revoked is None:
            raise ClientNotFoundError(f"no client {client_id!r}")
        raise ClientRevokedError(f"client {client_id!r} is revoked")

    async def authenticate(self, client_id: str, secret: str) -> Client | None:
        """The live client whose secret this is, or None (same cost either way)."""
        client = await self.get(client_id) if _plausible_id(client_id) else None
        stored = client.secret_hash if client is not None and client.active else None
        if not self.hasher.verify(secret, stored) or client is None:
            return None
        return client

    async def active(self, client_id: str) -> bool:
        """Whether the client exists and is not revoked; cached for ``cache_ttl_s``."""
        now = self._clock.monotonic()
        seen = self._active.get(client_id)
        if seen is not None and now - seen < self.cache_ttl_s:
            return True
        if not _plausible_id(client_id):
            return False

        async def select(conn: Connection) -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM clients"
                    " WHERE client_id = $1 AND revoked_at IS NULL)",
                    client_id,
                )
            )

        found = await self.db.run(select)
        if found:
            if len(self._active) >= CACHE_MAX:
                self._active.clear()
            self._active[client_id] = now
        else:
            self._active.pop(client_id, None)
        return found


def _plausible_id(client_id: str) -> bool:
    """Only what we issue (UUIDs) reaches the database: no NUL or huge strings."""
    try:
        uuid.UUID(client_id)
    except ValueError:
        return False
    return True

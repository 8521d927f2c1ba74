"""Signing keys: Ed25519 (EdDSA, RFC 8037), persisted in ``auth.signing_keys``.

The newest active key signs. Restarting keeps the keys, so tokens stay valid. Rotation
creates a new key and retires the old one, which stays published in the JWKS until every
token it signed has expired (``publish_until`` = now + token TTL + leeway). Replicas starting
together serialise key creation on an advisory lock, so only one first key is made.

The private key is stored as PKCS#8 PEM in the service's own schema, readable only by the
auth service's database role in a real deployment; no key material is ever logged.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sensor_backend.core.jwt_verify import JwtVerifier, public_jwk

if TYPE_CHECKING:
    from sensor_backend.core.db import Connection, Database

ALGORITHM = "EdDSA"
KEY_LOCK = 0x5EB5_0A17  # advisory lock id for first-key creation and rotation
PUBLISH_LEEWAY_S = 300


class KeysNotLoadedError(RuntimeError):
    """The keys have not been read from the database yet (it has been down since start)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey


def _new_key_row() -> tuple[str, str, dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    kid = secrets.token_urlsafe(12)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return kid, pem, public_jwk(key.public_key(), kid)


class KeyStore:
    def __init__(self, db: Database, verifier: JwtVerifier, *, token_ttl_s: int) -> None:
        self.db = db
        self.verifier = verifier
        self.token_ttl_s = token_ttl_s
        self._signing: SigningKey | None = None
        self._jwks: dict[str, Any] = {"keys": []}

    @property
    def loaded(self) -> bool:
        return self._signing is not None

    async def load(self) -> None:
        """Read the published keys (creating the first one if there is none)."""
        rows = await self.db.run(self._load_rows, transaction=True)
        active = [r for r in rows if r["retired_at"] is None]
        newest = active[-1]
        private = serialization.load_pem_private_key(newest["private_pem"].encode(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise TypeError("signing key is not Ed25519")
        keys = [_jwk(r["public_jwk"]) for r in rows]
        self._jwks = {"keys": keys}
        self.verifier.set_jwks(self._jwks)
        self._signing = SigningKey(newest["kid"], private)

    async def _load_rows(self, conn: Connection) -> list[Any]:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", KEY_LOCK)
        rows = await self._published(conn)
        if not any(r["retired_at"] is None for r in rows):
            await self._insert_key(conn)
            rows = await self._published(conn)
        return list(rows)

    async def rotate(self) -> str:
        """Make a new signing key; the old one stays published until its tokens expire."""

        async def rotate(conn: Connection) -> str:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", KEY_LOCK)
            await conn.execute(
                "UPDATE signing_keys SET retired_at = now(),"
                " publish_until = now() + make_interval(secs => $1)"
                " WHERE retired_at IS NULL",
                float(self.token_ttl_s + PUBLISH_LEEWAY_S),
            )
            return await self._insert_key(conn)

        kid = await self.db.run(rotate, transaction=True)
        await self.load()
        return kid

    @staticmethod
    async def _published(conn: Connection) -> list[Any]:
        return list(
            await conn.fetch(
                "SELECT kid, private_pem, public_jwk, retired_at FROM signing_keys"
                " WHERE publish_until IS NULL OR publish_until > now()"
                " ORDER BY created_at, kid"
            )
        )

    @staticmethod
    async def _insert_key(conn: Connection) -> str:
        kid, pem, jwk = _new_key_row()
        await conn.execute(
            "INSERT INTO signing_keys (kid, algorithm, private_pem, public_jwk)"
            " VALUES ($1, $2, $3, $4::jsonb)",
            kid,
            ALGORITHM,
            pem,
            json.dumps(jwk),
        )
        return kid

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def sign(self, payload: dict[str, Any]) -> str:
        if self._signing is None:
            raise KeysNotLoadedError("signing keys not loaded")
        return jwt.encode(
            payload,
            self._signing.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self._signing.kid},
        )


def _jwk(value: Any) -> dict[str, Any]:  # noqa: ANN401 - asyncpg returns jsonb as text
    doc: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
    return doc

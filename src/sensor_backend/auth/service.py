"""The auth service's domain: register, log in, verify, revoke, bootstrap.

ServiceError (core.errors)
├── UsernameTakenError (409)          users.py
├── Unauthorized (401)                bad credentials or a refused token
├── Forbidden (403)                   revoking someone else's token without admin
├── TooManyRequests (429)             login and client-authentication rate limit
├── InvalidClient (401), InvalidScope, UnsupportedGrantType (400)   oauth.py
├── ClientNotFoundError (404), ClientNameTakenError, ClientRevokedError (409)  clients.py
└── Unavailable (503)                 database down (DatabaseUnavailable) or keys not loaded
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sensor_backend.auth.oauth import InvalidClient, InvalidScope
from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.errors import Forbidden, TooManyRequests, Unauthorized, Unavailable
from sensor_backend.core.jwt_verify import Claims, TokenError
from sensor_backend.core.log import get_logger
from sensor_backend.core.retry import RetryPolicy, retry_async
from sensor_backend.core.scopes import SCOPES, format_scope, parse_scope

if TYPE_CHECKING:
    from sensor_backend.auth.clients import Client, ClientRepository
    from sensor_backend.auth.keys import KeyStore
    from sensor_backend.auth.oauth import ClientCredentials
    from sensor_backend.auth.passwords import PasswordService
    from sensor_backend.auth.rate_limit import LoginLimiter
    from sensor_backend.auth.revocation import RevocationList
    from sensor_backend.auth.settings import AuthSettings
    from sensor_backend.auth.users import User, UserRepository
    from sensor_backend.core.db import Database
    from sensor_backend.core.jwt_verify import JwtVerifier

log = get_logger("auth")
# Until the database answers: 0.5 s doubling to 5 s, no jitter.
BOOTSTRAP_RETRY = RetryPolicy(max_attempts=None, base_s=0.5, cap_s=5.0, jitter="none")
INVALID_CREDENTIALS = "invalid username or password"
# Longer passwords are refused before hashing: argon2 cost must not be a DoS lever.
MAX_PASSWORD_CHARS = 256


@dataclass(frozen=True, slots=True)
class Verified:
    claims: Claims
    revocation_stale: bool
    user_checked: bool

    def body(self) -> dict[str, Any]:
        return {
            "valid": True,
            **self.claims.as_dict(),
            "revocation_may_be_stale": self.revocation_stale,
            "user_checked": self.user_checked,
        }


class AuthService:
    def __init__(
        self,
        *,
        settings: AuthSettings,
        db: Database,
        users: UserRepository,
        keys: KeyStore,
        revocations: RevocationList,
        passwords: PasswordService,
        limiter: LoginLimiter,
        verifier: JwtVerifier,
        clients: ClientRepository,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.db = db
        self.users = users
        self.keys = keys
        self.revocations = revocations
        self.passwords = passwords
        self.limiter = limiter
        self.verifier = verifier
        self._bootstrap: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._bootstrap = asyncio.create_task(self._bootstrap_when_db_up(), name="auth-bootstrap")
        await self.revocations.start()

    async def stop(self) -> None:
        if self._bootstrap is not None:
            self._bootstrap.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._bootstrap
        await self.revocations.stop()
        self.passwords.close()

    async def _bootstrap_when_db_up(self) -> None:
        """Load keys and create the bootstrap admin once the database answers."""
        await retry_async(
            self._bootstrap_once,
            safe=True,
            policy=BOOTSTRAP_RETRY,
            budget=None,
            retry_on=lambda exc: isinstance(exc, DatabaseUnavailable),
            on_retry=lambda exc, delay_s: log.warning(
                "bootstrap waiting for the database",
                reason=getattr(exc, "message", str(exc)),
                retry_in_s=delay_s,
            ),
        )

    async def _bootstrap_once(self) -> None:
        await self.db.wait_until_up()
        await self.keys.load()
        await self.ensure_admin()

    async def ensure_admin(self) -> None:
        """Bootstrap accounts from the environment: the admin and the service account."""
        accounts = (
            (self.settings.admin_username, self.settings.admin_password, ("user", "admin")),
            (
                self.settings.service_account_username,
                self.settings.service_account_password,
                ("service",),
            ),
        )
        for username, password, roles in accounts:
            if not password:
                continue
            if await self.users.ensure(username, await self.passwords.hash(password), roles):
                log.info("created bootstrap account", username=username, roles=list(roles))

    # -- operations ----------------------------------------------------------------------
    async def register(self, username: str, password: str) -> User:
        return await self.users.create(username, await self.passwords.hash(password))

    async def login(self, username: str, password: str, client: str) -> dict[str, Any]:
        wait = self.limiter.retry_after(username, client)
        if wait is not None:
            raise TooManyRequests("too many failed logins; try again later", retry_after_s=wait)
        if not self.keys.loaded:
            raise Unavailable("signing keys not loaded yet (database unavailable)", retry_after_s=5)
        # NUL cannot be in a stored username (PostgreSQL text): such a login is just wrong.
        plausible = len(password) <= MAX_PASSWORD_CHARS and "\x00" not in username
        user = await self.users.by_username(username) if plausible else None
        # Unknown users verify against a dummy hash: same answer, similar time.
        ok = await self.passwords.verify(
            password[:MAX_PASSWORD_CHARS], user.password_hash if user else None
        )
        if not ok or user is None:
            self.limiter.failed(username, client)
            raise Unauthorized(INVALID_CREDENTIALS, token_error=False)
        self.limiter.succeeded(username)
        ttl = self.settings.access_token_ttl_s
        token = self._sign(
            ttl,
            {"sub": str(user.id), "preferred_username": user.username, "roles": list(user.roles)},
        )
        return {"access_token": token, "token_type": "bearer", "expires_in": ttl}

    def _sign(self, ttl: int, claims: dict[str, Any]) -> str:
        now = int(time.time())
        return self.keys.sign(
            {
                "iss": self.settings.jwt_issuer,
                "aud": self.settings.jwt_audience,
                **claims,
                "iat": now,
                "nbf": now,
                "exp": now + ttl,
                "jti": secrets.token_urlsafe(16),
            }
        )

    async def client_token(
        self, creds: ClientCredentials, requested: str | None, address: str
    ) -> dict[str, Any]:
        """OAuth 2.0 client credentials grant (RFC 6749 §4.4): a short-lived scoped token.

        Failed client authentications count like failed logins (per client id and per
        address). The token's ``sub`` and ``client_id`` are the client's id (RFC 9068 §2.2),
        ``scope`` the granted scopes, ``roles`` empty: never a person's rights.
        """
        key = f"client:{creds.client_id}"
        wait = self.limiter.retry_after(key, address)
        if wait is not None:
            raise TooManyRequests(
                "too many failed client authentications; try again later", retry_after_s=wait
            )
        if not self.keys.loaded:
            raise Unavailable("signing keys not loaded yet (database unavailable)", retry_after_s=5)
        client = await self.clients.authenticate(creds.client_id, creds.client_secret)
        if client is None:
            self.limiter.failed(key, address)
            raise InvalidClient
        self.limiter.succeeded(key)
        granted = client.scopes
        if requested is not None and requested.strip():
            wanted = parse_scope(requested)
            extra = [s for s in wanted if s not in client.scopes]
            if extra:
                raise InvalidScope(
                    f"scope {' '.join(extra)!r} not granted to this client",
                    allowed_scope=format_scope(client.scopes),
                )
            granted = wanted
        ttl = self.settings.client_token_ttl_s
        scope = format_scope(granted)
        token = self._sign(
            ttl,
            {
                "sub": client.client_id,
                "client_id": client.client_id,
                "client_name": client.name,
                "scope": scope,
                "roles": [],
            },
        )
        log.info("client token issued", client_id=client.client_id, scope=scope)
        return {"access_token": token, "token_type": "bearer", "expires_in": ttl, "scope": scope}

    # -- machine clients (admin) ---------------------------------------------------------
    async def create_client(
        self, caller: Claims, name: str, scopes: tuple[str, ...]
    ) -> tuple[Client, str]:
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise InvalidScope(f"unknown scope {unknown[0]!r}", allowed_scope=format_scope(SCOPES))
        client, secret = await self.clients.create(name, scopes, created_by=caller.sub)
        log.info("client created", client_id=client.client_id, name=name, by=caller.sub)
        return client, secret

    async def rotate_client(self, caller: Claims, client_id: str) -> tuple[Client, str]:
        client, secret = await self.clients.rotate(client_id)
        log.info("client secret rotated", client_id=client_id, by=caller.sub)
        return client, secret

    async def revoke_client(self, caller: Claims, client_id: str) -> Client:
        client = await self.clients.revoke(client_id)
        log.info("client revoked", client_id=client_id, by=caller.sub)
        return client

    async def admin(self, token: str) -> Claims:
        """The claims of an admin's valid token (401), or 403 for anyone else."""
        claims = (await self.verify(token)).claims
        if not claims.is_admin:
            raise Forbidden("this operation needs the admin role")
        return claims

    def check_token(self, token: str) -> Claims:
        """Signature, claims and revocation, from memory only (works with the database down)."""
        if not self.keys.loaded:
            raise Unavailable("signing keys not loaded yet (database unavailable)", retry_after_s=5)
        try:
            claims = self.verifier.verify(token)
        except TokenError as exc:
            raise Unauthorized(str(exc)) from exc
        if self.revocations.is_revoked(claims.jti):
            raise Unauthorized("token revoked")
        return claims

    async def verify(self, token: str) -> Verified:
        claims = self.check_token(token)
        user_checked = True
        try:
            if claims.client_id is not None:
                exists = await self.clients.active(claims.client_id)
            else:
                exists = await self.users.exists(claims.sub)
        except DatabaseUnavailable:
            # Degrade to the signature and the cached revocation list (original notes).
            exists, user_checked = True, False
        if not exists:
            if claims.client_id is not None:
                raise Unauthorized("token client revoked")
            raise Unauthorized("token user no longer exists")
        return Verified(claims, self.revocations.stale or not user_checked, user_checked)

    async def revoke(self, caller: Claims, *, token: str | None, jti: str | None) -> str:
        """Revoke the caller's token, one of theirs, or (admin) any token id."""
        if jti is not None:
            if not caller.is_admin:
                raise Forbidden("revoking by token id needs the admin role")
            exp = int(time.time()) + self.settings.access_token_ttl_s
            await self.revocations.revoke(jti, caller.sub, exp)
            return jti
        target = caller if token is None else self.check_token(token)
        if target.sub != caller.sub and not caller.is_admin:
            raise Forbidden("only the token's owner or an admin may revoke it")
        await self.revocations.revoke(target.jti, target.sub, target.exp)
        return target.jti

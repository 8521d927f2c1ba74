"""Auth service composition root (:8001)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor_backend.auth.breakers import auth_breakers
from sensor_backend.auth.client_routes import router as client_router
from sensor_backend.auth.clients import ClientRepository, SecretHasher
from sensor_backend.auth.keys import KeyStore
from sensor_backend.auth.passwords import PasswordService
from sensor_backend.auth.rate_limit import LoginLimiter
from sensor_backend.auth.revocation import RevocationList
from sensor_backend.auth.routes import router
from sensor_backend.auth.service import AuthService
from sensor_backend.auth.settings import AuthSettings
from sensor_backend.auth.users import UserRepository
from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.db_attach import attach_database
from sensor_backend.core.jwt_verify import JwtVerifier

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    ctx = ServiceContext(settings, max_body_bytes=64 * 1024)
    breakers = auth_breakers(settings, ctx.breakers)
    db = attach_database(
        ctx, settings, breaker=breakers.database, schema="auth", package="sensor_backend.auth"
    )
    verifier = JwtVerifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    auth = AuthService(
        settings=settings,
        db=db,
        users=UserRepository(db, cache_ttl_s=settings.user_cache_ttl_s),
        keys=KeyStore(
            db,
            verifier,
            token_ttl_s=max(settings.access_token_ttl_s, settings.client_token_ttl_s),
        ),
        revocations=RevocationList(db, refresh_s=settings.revocation_refresh_s),
        passwords=PasswordService(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            workers=settings.hash_workers,
        ),
        limiter=LoginLimiter(
            max_failures=settings.login_max_failures,
            max_client_failures=settings.login_max_client_failures,
            window_s=settings.login_window_s,
        ),
        verifier=verifier,
        clients=ClientRepository(
            db,
            SecretHasher(settings.client_secret_key),
            cache_ttl_s=settings.client_cache_ttl_s,
        ),
    )
    ctx.on_startup.append(auth.start)
    ctx.on_shutdown.append(auth.stop)

    def auth_facts() -> dict[str, Any]:
        return {
            "signing_keys_loaded": auth.keys.loaded,
            "jwks_kids": sorted(verifier.kids),
            "revocation_list_stale": auth.revocations.stale,
        }

    ctx.health.add_extra(auth_facts)
    app = create_app(ctx, title="sensor-backend auth service")
    app.include_router(router)
    app.include_router(client_router)
    app.state.db = db
    app.state.auth = auth
    return app

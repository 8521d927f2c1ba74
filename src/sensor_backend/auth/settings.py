"""Auth service settings (env prefix ``AUTH_``; shared names unprefixed, DESIGN.md §3)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from sensor_backend.core.settings import (
    DatabaseSettingsMixin,
    ServiceSettings,
    UrlList,
    database_url_field,
    shared,
    split_urls,
)

PREFIX = "AUTH_"


class AuthSettings(DatabaseSettingsMixin, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")
    service_name: ClassVar[str] = "auth"
    default_port: ClassVar[int] = 8001

    database_url: str = database_url_field(PREFIX)

    jwt_issuer: str = Field(
        default="sensor-backend-auth", validation_alias=shared("JWT_ISSUER", PREFIX)
    )
    jwt_audience: str = Field(
        default="sensor-backend", validation_alias=shared("JWT_AUDIENCE", PREFIX)
    )
    access_token_ttl_s: int = Field(
        default=3600, ge=60, le=86400, validation_alias=shared("ACCESS_TOKEN_TTL_S", PREFIX)
    )
    # Machine clients (rigs, OAuth client credentials): shorter-lived tokens, since a rig
    # can always get a new one and fallback mode cannot see a revocation until expiry.
    client_token_ttl_s: int = Field(default=900, ge=1, le=86400)
    # The HMAC key of stored client secrets (auth/clients.py); keep it out of the database.
    client_secret_key: str = Field(default="", repr=False)
    # How long /verify trusts that a client is not revoked before asking the database again.
    client_cache_ttl_s: float = Field(default=5.0, ge=0)
    # argon2id cost: RFC 9106's second recommended option (t=3, m=64 MiB, p=4).
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8192)
    argon2_parallelism: int = Field(default=4, ge=1)
    hash_workers: int = Field(default=2, ge=1, le=16)
    # Login rate limit (OWASP): failures per username and per client address in a window.
    login_max_failures: int = Field(default=5, ge=1)
    login_max_client_failures: int = Field(default=20, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    # Peers whose X-Forwarded-For is believed (the gateway); anyone else is the client.
    trusted_proxies: UrlList = Field(default=["127.0.0.1", "::1"])
    revocation_refresh_s: float = Field(default=5.0, gt=0)
    user_cache_ttl_s: float = Field(default=30.0, ge=0)
    admin_username: str = Field(default="admin", validation_alias=AliasChoices("ADMIN_USERNAME"))
    # A machine account (role "service") for service-to-service calls, e.g. the sensor
    # service's outbox relay to the event service. Created on first start when set.
    service_account_username: str = Field(
        default="sensor-relay", validation_alias=AliasChoices("SERVICE_ACCOUNT_USERNAME")
    )
    service_account_password: str = Field(
        default="", validation_alias=AliasChoices("SERVICE_ACCOUNT_PASSWORD")
    )
    admin_password: str = Field(default="", validation_alias=AliasChoices("ADMIN_PASSWORD"))

    _split = field_validator("trusted_proxies", mode="before")(split_urls)

    @model_validator(mode="after")
    def _no_placeholder_admin(self) -> AuthSettings:
        self.reject_placeholder("ADMIN_PASSWORD", self.admin_password)
        return self

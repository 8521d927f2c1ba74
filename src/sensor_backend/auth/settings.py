"""Auth service settings (env prefix ``AUTH_``; shared names unprefixed, DESIGN.md §3)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from sensor_backend.core.settings import DatabaseSettingsMixin, ServiceSettings, shared

PREFIX = "AUTH_"


class AuthSettings(DatabaseSettingsMixin, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")
    service_name: ClassVar[str] = "auth"
    default_port: ClassVar[int] = 8001

    jwt_issuer: str = Field(
        default="sensor-backend-auth", validation_alias=shared("JWT_ISSUER", PREFIX)
    )
    jwt_audience: str = Field(
        default="sensor-backend", validation_alias=shared("JWT_AUDIENCE", PREFIX)
    )
    access_token_ttl_s: int = Field(
        default=3600, ge=60, le=86400, validation_alias=shared("ACCESS_TOKEN_TTL_S", PREFIX)
    )
    admin_username: str = Field(default="admin", validation_alias=AliasChoices("ADMIN_USERNAME"))
    admin_password: str = Field(default="", validation_alias=AliasChoices("ADMIN_PASSWORD"))

    @model_validator(mode="after")
    def _no_placeholder_admin(self) -> AuthSettings:
        self.reject_placeholder("ADMIN_PASSWORD", self.admin_password)
        return self

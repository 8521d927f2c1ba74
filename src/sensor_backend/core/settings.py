"""Settings shared by every service (DESIGN.md §3).

Each service defines one frozen `pydantic-settings` class deriving from `ServiceSettings`,
with its own env prefix (``AUTH_``, ``SENSOR_``...). Names that several services share keep
their unprefixed form as an alias (``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``,
``AUTH_SERVICE_URLS``...), so one environment can configure the whole system while a single
service can still be pointed elsewhere with its prefixed name.

Placeholder secrets are refused outside development, as in the FastAPI full-stack template.
"""

from __future__ import annotations

import socket
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sensor_backend.core.breaker import BreakerConfig

# Values that show a secret was never set. Compared case-insensitively.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "changethis", "secret", "password"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def shared(name: str, prefix: str) -> AliasChoices:
    """Accept ``{prefix}{name}`` first, then the system-wide ``{name}``."""
    return AliasChoices(f"{prefix}{name}", name)


def split_urls(value: object) -> object:
    """Turn ``"http://a, http://b"`` into ``["http://a", "http://b"]`` (no trailing slash)."""
    if isinstance(value, str):
        return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
    return value


# At least one entry: an empty replica list would make a service unavailable forever.
UrlList = Annotated[list[str], NoDecode, Field(min_length=1)]


class ServiceSettings(BaseSettings):
    """Base for the four services' settings: network, environment, logging, timeouts."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    # Overridden by each service; used for logs, metrics and /health.
    service_name: ClassVar[str] = "service"
    default_port: ClassVar[int] = 8000

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        validation_alias=AliasChoices("SENSOR_BACKEND_ENV", "ENVIRONMENT"),
    )
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    instance_id: str = ""
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    log_json: bool = Field(default=True, validation_alias=AliasChoices("LOG_JSON"))
    # Outgoing calls (DESIGN.md §5): connect and total timeouts on every call.
    http_connect_timeout_s: float = Field(default=1.0, gt=0)
    http_total_timeout_s: float = Field(default=5.0, gt=0)
    # Access tokens every service accepts (auth signs them; DESIGN.md §4).
    jwt_issuer: str = Field(
        default="sensor-backend-auth", validation_alias=AliasChoices("JWT_ISSUER")
    )
    jwt_audience: str = Field(
        default="sensor-backend", validation_alias=AliasChoices("JWT_AUDIENCE")
    )
    # Local JWKS validation when auth is down (DESIGN.md §4). Off only to prove, in drills,
    # that the drill notices a missing resilience feature.
    auth_fallback: bool = Field(default=True, validation_alias=AliasChoices("AUTH_FALLBACK"))
    # Health probes of dependencies run in the background; /health reads the cache.
    health_probe_interval_s: float = Field(default=2.0, gt=0)
    # The breaker in front of auth's /verify in the sensor and event services (the
    # gateway's auth breaker is one of its service breakers, GatewaySettings.breaker_*).
    auth_breaker_failures: int = Field(default=5, ge=1)
    auth_breaker_open_s: float = Field(default=10.0, gt=0)
    auth_breaker_max_open_s: float = Field(default=60.0, gt=0)
    # X-Fault-Abort: 5xx answered by the service itself (core/fault_injection.py), for
    # drills and resilience tests. Never in production.
    fault_injection: bool = False

    @model_validator(mode="after")
    def _fill_defaults(self) -> ServiceSettings:
        # Frozen models can still be completed in an after-validator via object.__setattr__.
        if self.port == 0:
            object.__setattr__(self, "port", self.default_port)
        if not self.instance_id:
            # The host name tells container replicas apart (all listen on the same port).
            host = socket.gethostname().split(".")[0]
            object.__setattr__(self, "instance_id", f"{self.service_name}-{host}-{self.port}")
        if self.fault_injection and self.environment is Environment.PRODUCTION:
            msg = "fault injection is for drills and tests; it cannot be on in production"
            raise ValueError(msg)
        return self

    def auth_breaker_config(self) -> BreakerConfig:
        """The auth breaker of a service that checks tokens with auth (core/token_auth.py)."""
        return BreakerConfig(
            consecutive_failures=self.auth_breaker_failures,
            open_wait_s=self.auth_breaker_open_s,
            max_open_wait_s=self.auth_breaker_max_open_s,
        )

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    def reject_placeholder(self, field: str, value: str) -> None:
        """Raise if ``value`` is a placeholder secret outside development (DESIGN.md §3)."""
        if (
            self.environment is not Environment.DEVELOPMENT
            and value.strip().lower() in PLACEHOLDER_SECRETS
        ):
            msg = f"{field} is a placeholder secret; set a real value for production"
            raise ValueError(msg)


DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5434/postgres"


def database_url_field(prefix: str) -> Any:  # noqa: ANN401 - a pydantic FieldInfo
    """``{prefix}DATABASE_URL`` overrides the system-wide ``DATABASE_URL`` for one service."""
    return Field(default=DEFAULT_DATABASE_URL, validation_alias=shared("DATABASE_URL", prefix))


class DatabaseSettingsMixin(BaseSettings):
    """``DATABASE_URL`` and the database breaker knobs, for services that own a schema.

    Each service redeclares ``database_url = database_url_field(PREFIX)`` for its prefix.
    """

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL")
    )
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    db_command_timeout_s: float = Field(default=5.0, gt=0)
    # The original notes: the auth database breaker opens after 3 failures.
    db_breaker_failures: int = Field(default=3, ge=1)
    db_breaker_open_s: float = Field(default=5.0, gt=0)
    # A database that comes back should be used again within a minute, not five.
    db_breaker_max_open_s: float = Field(default=60.0, gt=0)

    def db_breaker_config(self) -> BreakerConfig:
        """The database breaker (core/db_attach.py's ``attach_database`` takes it)."""
        return BreakerConfig(
            consecutive_failures=self.db_breaker_failures,
            open_wait_s=self.db_breaker_open_s,
            max_open_wait_s=self.db_breaker_max_open_s,
            half_open_max_wait_s=self.db_command_timeout_s * 2,
        )

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            msg = "DATABASE_URL must be a postgresql:// URL"
            raise ValueError(msg)
        return value

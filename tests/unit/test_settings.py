"""Per-service settings (DESIGN.md §3): prefixes, shared unprefixed names, validation."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sensor_backend.auth.settings import AuthSettings
from sensor_backend.core.settings import Environment, ServiceSettings, split_urls
from sensor_backend.events.settings import EventsSettings
from sensor_backend.gateway.settings import GatewaySettings, internal_name, public_name
from sensor_backend.sensor.settings import SensorSettings

PREFIXES = ("AUTH_", "SENSOR_", "EVENTS_", "GATEWAY_")
SHARED_NAMES = frozenset(
    {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC",
        "KAFKA_IDEMPOTENCE",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "ACCESS_TOKEN_TTL_S",
        "ADMIN_USERNAME",
        "ADMIN_PASSWORD",
        "SPOOL_DIR",
        "LOG_LEVEL",
        "LOG_JSON",
        "ENVIRONMENT",
        "SENSOR_BACKEND_ENV",
    }
)
ALL_CLASSES = (AuthSettings, SensorSettings, EventsSettings, GatewaySettings)
DB_CLASSES = (AuthSettings, SensorSettings, EventsSettings)

HOST = socket.gethostname().split(".")[0]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from an environment with no setting this package reads."""
    for key in list(os.environ):
        upper = key.upper()
        if upper in SHARED_NAMES or upper.startswith(PREFIXES):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("cls", "name", "port"),
    [
        (AuthSettings, "auth", 8001),
        (SensorSettings, "sensor", 8002),
        (EventsSettings, "events", 8003),
        (GatewaySettings, "gateway", 8000),
    ],
)
def test_default_port_and_instance_id(cls: type[ServiceSettings], name: str, port: int) -> None:
    """Each service defaults to its own port and an instance id of ``<service>-<host>-<port>``."""
    settings = cls()
    assert settings.service_name == name
    assert settings.port == port
    assert settings.instance_id == f"{name}-{HOST}-{port}"
    assert settings.host == "127.0.0.1"
    assert settings.environment is Environment.DEVELOPMENT


@pytest.mark.parametrize(
    ("cls", "prefix"),
    [
        (AuthSettings, "AUTH_"),
        (SensorSettings, "SENSOR_"),
        (EventsSettings, "EVENTS_"),
        (GatewaySettings, "GATEWAY_"),
    ],
)
def test_prefixed_port_host_and_instance(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings], prefix: str
) -> None:
    """``<PREFIX>PORT`` and ``<PREFIX>HOST`` apply; the derived instance id follows the port."""
    monkeypatch.setenv(f"{prefix}PORT", "9123")
    monkeypatch.setenv(f"{prefix}HOST", "0.0.0.0")
    settings = cls()
    assert settings.port == 9123
    assert settings.host == "0.0.0.0"
    assert settings.instance_id == f"{cls.service_name}-{HOST}-9123"
    monkeypatch.setenv(f"{prefix}INSTANCE_ID", "custom-1")
    assert cls().instance_id == "custom-1"


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_other_services_prefix_is_ignored(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings]
) -> None:
    """Another service's prefixed port does not leak into this service."""
    for prefix in PREFIXES:
        monkeypatch.setenv(f"{prefix}PORT", "9999")
    own = next(p for p in PREFIXES if p.lower().startswith(cls.service_name))
    monkeypatch.delenv(f"{own}PORT")
    assert cls().port == cls.default_port


# (class, field, shared name, prefixed name, raw A, expected A, raw B, expected B)
SHARED_CASES: list[tuple[Any, ...]] = [
    (GatewaySettings, "auth_service_urls", "AUTH_SERVICE_URLS", "GATEWAY_AUTH_SERVICE_URLS",
     "http://a:1", ["http://a:1"], "http://b:2", ["http://b:2"]),
    (GatewaySettings, "sensor_service_urls", "SENSOR_SERVICE_URLS", "GATEWAY_SENSOR_SERVICE_URLS",
     "http://a:1", ["http://a:1"], "http://b:2", ["http://b:2"]),
    (GatewaySettings, "events_service_urls", "EVENTS_SERVICE_URLS", "GATEWAY_EVENTS_SERVICE_URLS",
     "http://a:1", ["http://a:1"], "http://b:2", ["http://b:2"]),
    (GatewaySettings, "spool_dir", "SPOOL_DIR", "GATEWAY_SPOOL_DIR",
     "/s/shared", Path("/s/shared"), "/s/gw", Path("/s/gw")),
    (SensorSettings, "auth_service_urls", "AUTH_SERVICE_URLS", "SENSOR_AUTH_SERVICE_URLS",
     "http://a:1", ["http://a:1"], "http://b:2", ["http://b:2"]),
    (SensorSettings, "events_service_urls", "EVENTS_SERVICE_URLS", "SENSOR_EVENTS_SERVICE_URLS",
     "http://a:1", ["http://a:1"], "http://b:2", ["http://b:2"]),
    (EventsSettings, "kafka_bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS",
     "EVENTS_KAFKA_BOOTSTRAP_SERVERS", "k1:9092", "k1:9092", "k2:9093", "k2:9093"),
    (EventsSettings, "kafka_topic", "KAFKA_TOPIC", "EVENTS_KAFKA_TOPIC", "t1", "t1", "t2", "t2"),
    (EventsSettings, "kafka_idempotence", "KAFKA_IDEMPOTENCE", "EVENTS_KAFKA_IDEMPOTENCE",
     "true", True, "false", False),
    (EventsSettings, "spool_dir", "SPOOL_DIR", "EVENTS_SPOOL_DIR",
     "/s/shared", Path("/s/shared"), "/s/ev", Path("/s/ev")),
    (AuthSettings, "jwt_issuer", "JWT_ISSUER", "AUTH_JWT_ISSUER",
     "iss-a", "iss-a", "iss-b", "iss-b"),
    (AuthSettings, "jwt_audience", "JWT_AUDIENCE", "AUTH_JWT_AUDIENCE",
     "aud-a", "aud-a", "aud-b", "aud-b"),
    (AuthSettings, "access_token_ttl_s", "ACCESS_TOKEN_TTL_S", "AUTH_ACCESS_TOKEN_TTL_S",
     "120", 120, "600", 600),
]  # fmt: skip
SHARED_IDS = [f"{case[0].__name__}.{case[1]}" for case in SHARED_CASES]


@pytest.mark.parametrize("case", SHARED_CASES, ids=SHARED_IDS)
def test_shared_name_applies_and_prefixed_wins(
    monkeypatch: pytest.MonkeyPatch, case: tuple[Any, ...]
) -> None:
    """The unprefixed shared name configures the field; the prefixed name overrides it."""
    cls, field, shared, prefixed, raw_a, want_a, raw_b, want_b = case
    default = getattr(cls(), field)
    monkeypatch.setenv(shared, raw_a)
    assert getattr(cls(), field) == want_a != default
    monkeypatch.setenv(prefixed, raw_b)
    assert getattr(cls(), field) == want_b
    monkeypatch.delenv(shared)
    assert getattr(cls(), field) == want_b


@pytest.mark.parametrize("cls", DB_CLASSES)
def test_database_url_shared(monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings]) -> None:
    """``DATABASE_URL`` configures every service that owns a schema."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432/app")
    assert cls().database_url == "postgresql://u@db.example:5432/app"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cls", "prefix"), [(AuthSettings, "AUTH_"), (EventsSettings, "EVENTS_")])
def test_prefixed_database_url_wins(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings], prefix: str
) -> None:
    """``<PREFIX>DATABASE_URL`` beats the shared ``DATABASE_URL`` for one service."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared@h/db")
    monkeypatch.setenv(f"{prefix}DATABASE_URL", "postgresql://own@h/db")
    assert cls().database_url == "postgresql://own@h/db"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://a:1", ["http://a:1"]),
        ("http://a:1/", ["http://a:1"]),
        ("http://a:1//, http://b:2/", ["http://a:1", "http://b:2"]),
        (" http://a:1 ,, ,http://b:2,", ["http://a:1", "http://b:2"]),
        ("http://a:1,http://a:2,http://a:3", ["http://a:1", "http://a:2", "http://a:3"]),
    ],
)
@pytest.mark.parametrize("cls", [GatewaySettings, SensorSettings])
def test_url_lists_split(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings], raw: str, expected: list[str]
) -> None:
    """Comma-separated URL lists are split, stripped of trailing slashes and blanks dropped."""
    monkeypatch.setenv("AUTH_SERVICE_URLS", raw)
    assert cls().auth_service_urls == expected  # type: ignore[attr-defined]


def test_split_urls_passes_lists_through() -> None:
    """A value that is already a list (constructor argument) is left alone."""
    assert split_urls(["http://x/"]) == ["http://x/"]
    assert GatewaySettings(auth_service_urls="http://x/,http://y").auth_service_urls == [
        "http://x",
        "http://y",
    ]


def test_gateway_upstreams_use_one_name_per_service() -> None:
    """The gateway's upstreams are keyed auth, sensor and events; /health says kafka."""
    settings = GatewaySettings(
        auth_service_urls=["http://a"],
        sensor_service_urls=["http://s1", "http://s2"],
        events_service_urls=["http://e"],
    )
    assert settings.service_urls() == {
        "auth": ["http://a"],
        "sensor": ["http://s1", "http://s2"],
        "events": ["http://e"],
    }
    assert public_name("events") == "kafka"
    assert internal_name("kafka") == "events"
    assert public_name("sensor") == internal_name("sensor") == "sensor"


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_settings_are_frozen(cls: type[ServiceSettings]) -> None:
    """Assigning to a settings field raises."""
    settings = cls()
    with pytest.raises(ValidationError, match="frozen"):
        settings.port = 1234
    assert settings.port == cls.default_port


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:5434/postgres", "postgres://u:p@h/db"],
)
@pytest.mark.parametrize("cls", DB_CLASSES)
def test_database_url_scheme_accepted(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings], url: str
) -> None:
    """postgresql:// and postgres:// URLs are accepted."""
    monkeypatch.setenv("DATABASE_URL", url)
    assert cls().database_url == url  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "", "127.0.0.1:5432", "http://h/db", "sqlite:///x.db"]
)
@pytest.mark.parametrize("cls", DB_CLASSES)
def test_database_url_scheme_refused(
    monkeypatch: pytest.MonkeyPatch, cls: type[ServiceSettings], url: str
) -> None:
    """A DATABASE_URL that is not a PostgreSQL URL is refused."""
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ValidationError, match="postgresql://"):
        cls()


@pytest.mark.parametrize("password", ["changeme", "", "CHANGEME", "ChangeThis", "secret"])
@pytest.mark.parametrize("env_name", ["SENSOR_BACKEND_ENV", "ENVIRONMENT"])
def test_production_refuses_placeholder_admin_password(
    monkeypatch: pytest.MonkeyPatch, env_name: str, password: str
) -> None:
    """In production a placeholder ADMIN_PASSWORD is refused."""
    monkeypatch.setenv(env_name, "production")
    monkeypatch.setenv("ADMIN_PASSWORD", password)
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD"):
        AuthSettings()


def test_production_refuses_missing_admin_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """In production an unset ADMIN_PASSWORD (default empty) is refused."""
    monkeypatch.setenv("SENSOR_BACKEND_ENV", "production")
    with pytest.raises(ValidationError, match="ADMIN_PASSWORD"):
        AuthSettings()


def test_production_accepts_real_admin_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """In production a real ADMIN_PASSWORD is accepted."""
    monkeypatch.setenv("SENSOR_BACKEND_ENV", "production")
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-real-passphrase")
    settings = AuthSettings()
    assert settings.environment is Environment.PRODUCTION
    assert settings.is_development is False
    assert settings.admin_password == "a-long-real-passphrase"  # noqa: S105


@pytest.mark.parametrize("password", ["changeme", ""])
def test_development_accepts_placeholder_admin_password(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    """In development a placeholder ADMIN_PASSWORD is accepted."""
    monkeypatch.setenv("SENSOR_BACKEND_ENV", "development")
    monkeypatch.setenv("ADMIN_PASSWORD", password)
    settings = AuthSettings()
    assert settings.is_development is True
    assert settings.admin_password == password


def test_unknown_environment_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment name outside development/test/production is refused."""
    monkeypatch.setenv("SENSOR_BACKEND_ENV", "staging")
    with pytest.raises(ValidationError, match="production"):
        GatewaySettings()


def test_log_settings_are_unprefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOG_LEVEL and LOG_JSON apply to every service."""
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LOG_JSON", "false")
    for cls in ALL_CLASSES:
        settings = cls()
        assert settings.log_level == "DEBUG"
        assert settings.log_json is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_PORT", "70000"),
        ("AUTH_HTTP_TOTAL_TIMEOUT_S", "0"),
        ("ACCESS_TOKEN_TTL_S", "30"),
        ("AUTH_DB_POOL_MAX", "0"),
    ],
)
def test_out_of_range_values_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Out-of-range ports, timeouts, TTLs and pool sizes are refused."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        AuthSettings()


def test_gateway_breaker_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's breaker knobs default to DESIGN.md §5 and take GATEWAY_ overrides."""
    settings = GatewaySettings()
    assert (settings.breaker_failures, settings.breaker_open_s) == (5, 30.0)
    monkeypatch.setenv("GATEWAY_BREAKER_FAILURES", "2")
    monkeypatch.setenv("GATEWAY_BREAKER_OPEN_S", "1.5")
    settings = GatewaySettings()
    assert (settings.breaker_failures, settings.breaker_open_s) == (2, 1.5)


def test_auth_database_breaker_defaults_to_three() -> None:
    """The auth database breaker opens after 3 failures by default (the original notes)."""
    assert AuthSettings().db_breaker_failures == 3

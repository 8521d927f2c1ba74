"""The launcher's pure layout (components, ports, env) and its on-disk state and lock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sensor_backend.auth.settings import AuthSettings
from sensor_backend.events.settings import EventsSettings
from sensor_backend.gateway.settings import GatewaySettings
from sensor_backend.launcher.layout import (
    MAX_REPLICAS,
    Component,
    Kind,
    LaunchOptions,
    LayoutError,
    parse_replicas,
    plan,
    service_ports,
)
from sensor_backend.launcher.state import (
    ComponentState,
    LauncherLock,
    SystemState,
    read_state,
    state_path,
    write_state,
)
from sensor_backend.sensor.settings import SensorSettings

if TYPE_CHECKING:
    from sensor_backend.core.settings import ServiceSettings

DATA = Path("/data/sb")
SETTINGS: dict[str, type[ServiceSettings]] = {
    "auth": AuthSettings,
    "sensor": SensorSettings,
    "events": EventsSettings,
    "gateway": GatewaySettings,
}


def by_name(components: list[Component]) -> dict[str, Component]:
    return {c.name: c for c in components}


# ---------------------------------------------------------------- parse_replicas


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {}),
        (["sensor=3"], {"sensor": 3}),
        (["kafka=2"], {"events": 2}),
        (["events=2", "auth=1"], {"events": 2, "auth": 1}),
        ([" sensor = 4 "], {"sensor": 4}),
        (["sensor=2", "sensor=5"], {"sensor": 5}),
        ([f"auth={MAX_REPLICAS}"], {"auth": MAX_REPLICAS}),
    ],
)
def test_parse_replicas(values: list[str], expected: dict[str, int]) -> None:
    """SERVICE=N pairs parse into counts; ``kafka`` means the events service."""
    assert parse_replicas(values) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sensor", "SERVICE=N"),
        ("sensor=", "SERVICE=N"),
        ("sensor=x", "SERVICE=N"),
        ("sensor=-1", "SERVICE=N"),
        ("sensor=2.5", "SERVICE=N"),
        ("gateway=2", "cannot be replicated"),
        ("postgres=2", "cannot be replicated"),
        ("bogus=2", "cannot be replicated"),
        ("=2", "cannot be replicated"),
        ("sensor=0", "between 1 and"),
        (f"sensor={MAX_REPLICAS + 1}", "between 1 and"),
    ],
)
def test_parse_replicas_errors(value: str, message: str) -> None:
    """Bad syntax, unknown or unreplicable services and counts out of range are refused."""
    with pytest.raises(LayoutError, match=message):
        parse_replicas([value])


def test_parse_replicas_non_ascii_digit_is_layout_error() -> None:
    """A count made of a non-ASCII digit is a LayoutError like any other bad count."""
    with pytest.raises(LayoutError):
        parse_replicas(["sensor=²"])


@pytest.mark.parametrize(
    ("service", "count", "offset", "ports"),
    [
        ("sensor", 1, 0, [8002]),
        ("sensor", 3, 0, [8002, 8021, 8022]),
        ("auth", 2, 0, [8001, 8011]),
        ("events", 3, 100, [8103, 8131, 8132]),
    ],
)
def test_service_ports(service: str, count: int, offset: int, ports: list[int]) -> None:
    """The first replica keeps the base port, extra replicas use the service's block."""
    assert service_ports(service, count, offset) == ports


# ---------------------------------------------------------------- plan


def test_plan_order_and_ports() -> None:
    """Infrastructure first, then auth, sensor, events replicas, and the gateway last."""
    components = plan(LaunchOptions(data_dir=DATA, replicas={"sensor": 3}))
    assert [(c.name, c.kind, c.port) for c in components] == [
        ("postgres", Kind.POSTGRES, 5434),
        ("broker", Kind.BROKER, 9092),
        ("auth", Kind.SERVICE, 8001),
        ("sensor", Kind.SERVICE, 8002),
        ("sensor-2", Kind.SERVICE, 8021),
        ("sensor-3", Kind.SERVICE, 8022),
        ("events", Kind.SERVICE, 8003),
        ("gateway", Kind.SERVICE, 8000),
    ]


def test_plan_port_offset_moves_everything() -> None:
    """--port-offset shifts every port, infrastructure included."""
    components = by_name(plan(LaunchOptions(data_dir=DATA, port_offset=100, replicas={"auth": 2})))
    assert {name: c.port for name, c in components.items()} == {
        "postgres": 5534,
        "broker": 9192,
        "auth": 8101,
        "auth-2": 8111,
        "sensor": 8102,
        "events": 8103,
        "gateway": 8100,
    }
    assert components["postgres"].url == "postgresql://postgres@127.0.0.1:5534/postgres"
    assert components["broker"].url == "127.0.0.1:9192"
    assert components["auth-2"].url == "http://127.0.0.1:8111"


def test_plan_ports_are_unique_with_max_replicas() -> None:
    """Even with every service at the maximum replica count no two components share a port."""
    replicas = dict.fromkeys(("auth", "sensor", "events"), MAX_REPLICAS)
    ports = [c.port for c in plan(LaunchOptions(data_dir=DATA, replicas=replicas))]
    assert len(ports) == len(set(ports)) == 3 * MAX_REPLICAS + 3


def test_every_service_gets_all_replica_urls() -> None:
    """AUTH/SENSOR/EVENTS_SERVICE_URLS list every replica, in every service's env."""
    components = plan(LaunchOptions(data_dir=DATA, replicas={"sensor": 3, "events": 2}))
    services = [c for c in components if c.kind is Kind.SERVICE]
    assert len(services) == 7
    for component in services:
        assert component.env["AUTH_SERVICE_URLS"] == "http://127.0.0.1:8001"
        assert component.env["SENSOR_SERVICE_URLS"] == (
            "http://127.0.0.1:8002,http://127.0.0.1:8021,http://127.0.0.1:8022"
        )
        assert component.env["EVENTS_SERVICE_URLS"] == "http://127.0.0.1:8003,http://127.0.0.1:8031"


def test_per_instance_env() -> None:
    """Each instance gets its own prefixed PORT, HOST, INSTANCE_ID and SPOOL_DIR."""
    components = by_name(plan(LaunchOptions(data_dir=DATA, replicas={"sensor": 2})))
    expected = {
        "auth": ("AUTH_", 8001),
        "sensor": ("SENSOR_", 8002),
        "sensor-2": ("SENSOR_", 8021),
        "events": ("EVENTS_", 8003),
        "gateway": ("GATEWAY_", 8000),
    }
    spools = set()
    for name, (prefix, port) in expected.items():
        env = components[name].env
        assert env[f"{prefix}PORT"] == str(port)
        assert env[f"{prefix}HOST"] == "127.0.0.1"
        assert env[f"{prefix}INSTANCE_ID"] == name
        assert env[f"{prefix}SPOOL_DIR"] == str(DATA / "spool" / name)
        spools.add(env[f"{prefix}SPOOL_DIR"])
    assert len(spools) == len(expected)


def test_sensor_instances_pin_openblas_to_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sensor's NumPy analysis runs without OpenBLAS threads unless the operator says."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    components = by_name(plan(LaunchOptions(data_dir=DATA, replicas={"sensor": 2})))
    assert components["sensor"].env["OPENBLAS_NUM_THREADS"] == "1"
    assert components["sensor-2"].env["OPENBLAS_NUM_THREADS"] == "1"
    assert "OPENBLAS_NUM_THREADS" not in components["auth"].env
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    components = by_name(plan(LaunchOptions(data_dir=DATA)))
    assert components["sensor"].env["OPENBLAS_NUM_THREADS"] == "2"


def test_service_argv_runs_its_module() -> None:
    """Every service runs ``python -m sensor_backend.<service>.main``; replicas share it."""
    components = by_name(plan(LaunchOptions(data_dir=DATA, replicas={"sensor": 2})))
    for name, service in [("sensor", "sensor"), ("sensor-2", "sensor"), ("gateway", "gateway")]:
        component = components[name]
        assert component.service == service
        assert component.argv[1:] == ("-m", f"sensor_backend.{service}.main")


def test_embedded_infrastructure_urls_in_env() -> None:
    """Without external servers the env points at the embedded PostgreSQL and broker."""
    components = by_name(plan(LaunchOptions(data_dir=DATA, port_offset=7)))
    env = components["auth"].env
    assert env["DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5441/postgres"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9099"
    assert env["SENSOR_BACKEND_ENV"] == "development"
    assert env["LOG_JSON"] == "true"


def test_external_database_skips_postgres() -> None:
    """With database_url set there is no postgres component and services use that URL."""
    url = "postgresql://app@db.example:5432/app"
    components = plan(LaunchOptions(data_dir=DATA, database_url=url))
    assert "postgres" not in by_name(components)
    assert components[0].name == "broker"
    assert all(c.env["DATABASE_URL"] == url for c in components if c.kind is Kind.SERVICE)


def test_external_kafka_skips_broker() -> None:
    """With kafka_bootstrap set there is no broker component and services use that cluster."""
    components = plan(LaunchOptions(data_dir=DATA, kafka_bootstrap="k1:9092,k2:9092"))
    assert "broker" not in by_name(components)
    assert [c.kind for c in components].count(Kind.POSTGRES) == 1
    assert all(
        c.env["KAFKA_BOOTSTRAP_SERVERS"] == "k1:9092,k2:9092"
        for c in components
        if c.kind is Kind.SERVICE
    )


def test_both_external_means_services_only() -> None:
    """With both external, every component is a service and the gateway is last."""
    components = plan(
        LaunchOptions(data_dir=DATA, database_url="postgresql://h/db", kafka_bootstrap="k:9092")
    )
    assert all(c.kind is Kind.SERVICE for c in components)
    assert components[-1].name == "gateway"


@pytest.mark.parametrize(("password", "present"), [("", False), ("s3cret-pass", True)])
def test_admin_password_only_when_given(password: str, present: bool) -> None:  # noqa: FBT001
    """ADMIN_PASSWORD is passed to services only when the launcher has one."""
    components = plan(LaunchOptions(data_dir=DATA, admin_password=password))
    for component in components:
        if component.kind is Kind.SERVICE:
            assert ("ADMIN_PASSWORD" in component.env) is present
            if present:
                assert component.env["ADMIN_PASSWORD"] == password


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every env var the service settings read, so only the plan's env counts."""
    prefixes = ("AUTH_", "SENSOR_", "EVENTS_", "GATEWAY_", "DATABASE_", "KAFKA_", "JWT_")
    extra = {"ADMIN_USERNAME", "ADMIN_PASSWORD", "SPOOL_DIR", "LOG_LEVEL", "LOG_JSON"}
    extra |= {"ENVIRONMENT", "ACCESS_TOKEN_TTL_S"}
    for key in list(os.environ):
        if key.upper().startswith(prefixes) or key.upper() in extra:
            monkeypatch.delenv(key)


@pytest.mark.parametrize("name", ["auth", "sensor", "sensor-2", "events", "events-2", "gateway"])
def test_planned_env_configures_each_service(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Each component's env, read by its own settings class, gives its port and instance id."""
    options = LaunchOptions(
        data_dir=DATA,
        port_offset=10,
        replicas={"sensor": 2, "events": 2},
        admin_password="pw",  # noqa: S106
    )
    component = by_name(plan(options))[name]
    assert component.service is not None
    for key, value in component.env.items():
        monkeypatch.setenv(key, value)
    settings = SETTINGS[component.service]()
    assert settings.port == component.port
    assert settings.instance_id == name
    spool = getattr(settings, "spool_dir", None)
    assert spool in (None, DATA / "spool" / name)
    if component.service in ("sensor", "gateway"):
        assert settings.auth_service_urls == ["http://127.0.0.1:8011"]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- state and lock


def test_state_round_trip(tmp_path: Path) -> None:
    """A written state reads back equal, components included."""
    state = SystemState(
        supervisor_pid=1234,
        data_dir=str(tmp_path),
        phase="ready",
        components=[
            ComponentState("postgres", "postgres", "postgresql://x", 5434, "logs/pg.log"),
            ComponentState(
                "sensor-2",
                "service",
                "http://127.0.0.1:8021",
                8021,
                "logs/sensor-2.log",
                service="sensor",
                pid=42,
                state="running",
                started_at=1.5,
            ),
        ],
    )
    write_state(tmp_path, state)
    assert state_path(tmp_path).exists()
    assert not state_path(tmp_path).with_suffix(".tmp").exists()
    loaded = read_state(tmp_path)
    assert loaded == state
    assert loaded is not None
    assert loaded.component("sensor-2") == state.components[1]
    assert loaded.component("nope") is None


def test_state_overwrite_keeps_latest(tmp_path: Path) -> None:
    """Writing again replaces the previous state."""
    write_state(tmp_path, SystemState(supervisor_pid=1, data_dir="d", phase="starting"))
    write_state(tmp_path, SystemState(supervisor_pid=1, data_dir="d", phase="stopped"))
    loaded = read_state(tmp_path)
    assert loaded is not None
    assert loaded.phase == "stopped"


@pytest.mark.parametrize("content", [None, "", "{not json", "[1, 2"])
def test_read_state_missing_or_corrupt_is_none(tmp_path: Path, content: str | None) -> None:
    """No state file, or a torn/corrupt one, reads as None."""
    if content is not None:
        state_path(tmp_path).parent.mkdir(parents=True)
        state_path(tmp_path).write_text(content)
    assert read_state(tmp_path) is None


def test_lock_is_exclusive(tmp_path: Path) -> None:
    """A second lock on the same data dir fails until the first is released."""
    first, second = LauncherLock(tmp_path), LauncherLock(tmp_path)
    assert first.acquire() is True
    try:
        assert second.acquire() is False
        assert second.acquire() is False
    finally:
        first.release()
    assert second.acquire() is True
    try:
        assert first.acquire() is False
    finally:
        second.release()


def test_locks_on_different_dirs_are_independent(tmp_path: Path) -> None:
    """Two data dirs can each hold their own lock."""
    a, b = LauncherLock(tmp_path / "a"), LauncherLock(tmp_path / "b")
    assert a.acquire() is True
    try:
        assert b.acquire() is True
        b.release()
    finally:
        a.release()


def test_release_without_acquire_is_harmless(tmp_path: Path) -> None:
    """Releasing a lock that is not held does nothing (and twice is fine)."""
    lock = LauncherLock(tmp_path)
    lock.release()
    assert lock.acquire() is True
    lock.release()
    lock.release()
    other = LauncherLock(tmp_path)
    assert other.acquire() is True
    other.release()

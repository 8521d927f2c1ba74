"""Cached health probes (DESIGN.md §6): service status and the gateway's aggregated document."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sensor_backend import __version__
from sensor_backend.core.breaker import BreakerConfig, BreakerRegistry, CircuitBreaker
from sensor_backend.core.clock import ManualClock
from sensor_backend.core.health import (
    CheckStatus,
    HealthCollector,
    HealthMonitor,
    Status,
)
from sensor_backend.core.service_probes import replica_label
from sensor_backend.gateway.health import GatewayHealth

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def up() -> dict[str, Any]:
    return {"ping_ms": 1.0}


async def up_none() -> None:
    return None


async def down() -> dict[str, Any]:
    raise ConnectionError("refused")


async def hangs() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {}


def remote(status: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def probe() -> dict[str, Any]:
        return {"url": "http://x", "remote_status": status}

    return probe


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def monitor(clock: ManualClock) -> HealthMonitor:
    return HealthMonitor(service="svc", instance="svc-1", clock=clock, probe_timeout_s=0.05)


# ---------------------------------------------------------------- HealthMonitor


async def test_no_probes_is_healthy(monitor: HealthMonitor) -> None:
    """A service with no dependencies is healthy."""
    await monitor.run_probes()
    assert monitor.status is Status.HEALTHY
    assert monitor.report()["checks"] == {}


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        ([("db", up, True), ("cache", up_none, False)], Status.HEALTHY),
        ([("db", up, True), ("cache", down, False)], Status.DEGRADED),
        ([("db", down, True), ("cache", up, False)], Status.UNHEALTHY),
        ([("db", down, True), ("cache", down, False)], Status.UNHEALTHY),
        ([("a", down, False), ("b", down, False)], Status.DEGRADED),
    ],
    ids=["all-up", "non-essential-down", "essential-down", "both-down", "only-optional-down"],
)
async def test_status_from_probes(
    monitor: HealthMonitor,
    probes: list[tuple[str, Callable[[], Awaitable[Any]], bool]],
    expected: Status,
) -> None:
    """Essential probe down -> unhealthy; only non-essential down -> degraded; else healthy."""
    for name, probe, essential in probes:
        monitor.add_probe(name, probe, essential=essential)
    await monitor.run_probes()
    assert monitor.status is expected
    assert monitor.report()["status"] == expected.value


async def test_status_before_first_round_is_not_healthy(monitor: HealthMonitor) -> None:
    """Probes that never ran are unknown: not healthy, but not unhealthy either."""
    monitor.add_probe("db", up, essential=True)
    assert monitor.check("db").status is CheckStatus.UNKNOWN
    assert monitor.status is Status.DEGRADED
    await monitor.run_probes()
    assert monitor.status is Status.HEALTHY


async def test_failed_probe_records_error_text(monitor: HealthMonitor) -> None:
    """A raising probe is down with the exception type and message as its error."""
    monitor.add_probe("db", down, essential=True)
    await monitor.run_probes()
    result = monitor.check("db")
    assert result.status is CheckStatus.DOWN
    assert result.error == "ConnectionError: refused"
    assert result.latency_ms is not None
    assert result.checked_at is not None
    assert monitor.report()["checks"]["db"]["error"] == "ConnectionError: refused"


async def test_long_error_text_is_truncated(monitor: HealthMonitor) -> None:
    """A huge error message is cut to 300 characters."""

    async def verbose() -> dict[str, Any]:
        raise RuntimeError("x" * 1000)

    monitor.add_probe("db", verbose)
    await monitor.run_probes()
    error = monitor.check("db").error
    assert error is not None
    assert len(error) == 300
    assert error.startswith("RuntimeError: xxx")


async def test_hanging_probe_times_out(monitor: HealthMonitor) -> None:
    """A probe that never answers is down after probe_timeout_s, with a timeout error."""
    monitor.add_probe("broker", hangs, essential=True)
    monitor.add_probe("db", up, essential=True)
    await monitor.run_probes()
    assert monitor.check("broker").status is CheckStatus.DOWN
    assert monitor.check("broker").error == "probe timed out after 0.05 s"
    assert monitor.check("db").status is CheckStatus.UP
    assert monitor.status is Status.UNHEALTHY


async def test_probe_recovers_on_next_round(monitor: HealthMonitor) -> None:
    """A dependency that comes back is up again, with no stale error, after the next round."""
    state = {"up": False}

    async def flaky() -> dict[str, Any]:
        if not state["up"]:
            raise ConnectionError("down")
        return {"ok": True}

    monitor.add_probe("db", flaky, essential=True)
    await monitor.run_probes()
    assert monitor.status is Status.UNHEALTHY
    state["up"] = True
    await monitor.run_probes()
    assert monitor.status is Status.HEALTHY
    check = monitor.report()["checks"]["db"]
    assert "error" not in check
    assert check["ok"] is True


async def test_report_document(clock: ManualClock) -> None:
    """The report carries service, instance, version, uptime, checks, breakers and extras."""
    breakers = BreakerRegistry([CircuitBreaker("database", clock=clock)])
    monitor = HealthMonitor(service="auth", instance="auth-8001", breakers=breakers, clock=clock)
    monitor.add_probe("database", up, essential=True)
    monitor.add_extra(lambda: {"spool_depth": 4})
    await monitor.run_probes()
    clock.advance(12.5)
    doc = monitor.report()
    assert doc["service"] == "auth"
    assert doc["instance"] == "auth-8001"
    assert doc["version"] == __version__
    assert doc["uptime_s"] == 12.5
    assert doc["checks"]["database"]["status"] == "up"
    assert doc["checks"]["database"]["ping_ms"] == 1.0
    assert doc["circuit_breakers"]["database"]["state"] == "closed"
    assert doc["spool_depth"] == 4


async def test_start_runs_a_round_and_stop_cancels(monitor: HealthMonitor) -> None:
    """start() probes once before returning and stop() ends the background loop."""
    monitor.add_probe("db", up)
    await monitor.start()
    try:
        assert monitor.check("db").status is CheckStatus.UP
        assert monitor._task is not None
        assert not monitor._task.done()
    finally:
        await monitor.stop()
    assert monitor._task is None


async def test_health_collector_gauges(monitor: HealthMonitor) -> None:
    """dependency_up is 1 for an up probe and 0 for a down one."""
    monitor.add_probe("db", up)
    monitor.add_probe("broker", down)
    await monitor.run_probes()
    registry = CollectorRegistry()
    registry.register(HealthCollector(monitor))
    text = generate_latest(registry).decode()
    assert 'dependency_up{name="db"} 1.0' in text
    assert 'dependency_up{name="broker"} 0.0' in text


# ---------------------------------------------------------------- GatewayHealth

UPSTREAMS = {
    "auth": ["http://127.0.0.1:8001"],
    "sensor": ["http://127.0.0.1:8002", "http://127.0.0.1:8021"],
    "events": ["http://127.0.0.1:8003"],
}


@pytest.fixture
def breakers(clock: ManualClock) -> BreakerRegistry:
    config = BreakerConfig(consecutive_failures=5, open_wait_s=30.0)
    return BreakerRegistry(CircuitBreaker(name, config, clock=clock) for name in UPSTREAMS)


def gateway(
    monitor: HealthMonitor,
    breakers: BreakerRegistry,
    overrides: dict[str, Callable[[], Awaitable[Any]]] | None = None,
) -> GatewayHealth:
    """A GatewayHealth whose replica probes all report healthy unless overridden."""
    overrides = overrides or {}
    for service, urls in UPSTREAMS.items():
        for index in range(len(urls)):
            label = replica_label(service, index)
            monitor.add_probe(label, overrides.get(label, remote("healthy")))
    return GatewayHealth(monitor, breakers, UPSTREAMS)


def trip(breaker: CircuitBreaker, failures: int = 5) -> None:
    for _ in range(failures):
        breaker.record_failure(breaker.acquire())


async def test_gateway_all_healthy(monitor: HealthMonitor, breakers: BreakerRegistry) -> None:
    """Every replica up and healthy, breakers closed: overall healthy."""
    health = gateway(monitor, breakers)
    await monitor.run_probes()
    doc = health.report()
    assert doc["gateway"] == "healthy"
    assert doc["overall_status"] == "healthy"
    assert {name: s["status"] for name, s in doc["services"].items()} == dict.fromkeys(
        ("auth", "sensor", "kafka"), "healthy"
    )
    assert doc["services"]["sensor"]["replicas_up"] == 2


async def test_gateway_document_keeps_design_shape(
    monitor: HealthMonitor, breakers: BreakerRegistry
) -> None:
    """The document has DESIGN.md §6's keys: gateway, overall_status, services, circuit_breakers.

    The event service, ``events`` inside, keeps the seed's public key ``kafka``.
    """
    health = gateway(monitor, breakers, {"auth[0]": down})
    trip(breakers["auth"])
    await monitor.run_probes()
    doc = health.report()
    assert {"gateway", "overall_status", "services", "circuit_breakers"} <= set(doc)
    assert set(doc["services"]) == {"auth", "sensor", "kafka"}
    for service in doc["services"].values():
        assert service["status"] in {"healthy", "degraded", "unavailable"}
    assert set(doc["circuit_breakers"]) == {"auth", "sensor", "kafka"}
    assert doc["circuit_breakers"]["auth"]["open"] is True
    assert doc["circuit_breakers"]["auth"]["failures"] == 5
    assert doc["circuit_breakers"]["sensor"]["open"] is False
    assert doc["circuit_breakers"]["sensor"]["failures"] == 0
    assert doc["services"]["auth"]["status"] == "unavailable"
    assert doc["overall_status"] == "degraded"


async def test_service_unavailable_when_no_replica_up(
    monitor: HealthMonitor, breakers: BreakerRegistry
) -> None:
    """A service whose every replica is down is unavailable, with the errors listed."""
    health = gateway(monitor, breakers, {"sensor[0]": down, "sensor[1]": down})
    await monitor.run_probes()
    sensor = health.service_status("sensor")
    assert sensor["status"] == "unavailable"
    assert sensor["replicas_up"] == 0
    assert [r["error"] for r in sensor["replicas"]] == ["ConnectionError: refused"] * 2
    assert [r["url"] for r in sensor["replicas"]] == UPSTREAMS["sensor"]


async def test_service_unavailable_when_breaker_open(
    monitor: HealthMonitor, breakers: BreakerRegistry
) -> None:
    """A service whose breaker is open is unavailable even if its replicas answer."""
    health = gateway(monitor, breakers)
    trip(breakers["events"])
    await monitor.run_probes()
    events = health.service_status("events")
    assert events["status"] == "unavailable"
    assert events["replicas_up"] == 1


async def test_breaker_half_open_is_not_unavailable(
    monitor: HealthMonitor, breakers: BreakerRegistry, clock: ManualClock
) -> None:
    """Once the open wait is over the breaker is half-open and the service counts again."""
    health = gateway(monitor, breakers)
    trip(breakers["events"])
    await monitor.run_probes()
    assert health.service_status("events")["status"] == "unavailable"
    clock.advance(30.0)
    assert health.service_status("events")["status"] == "healthy"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sensor[1]": remote("degraded")},
        {"sensor[1]": down},
        {"sensor[0]": remote("unhealthy")},
    ],
    ids=["replica-degraded", "one-replica-down", "replica-unhealthy"],
)
async def test_service_degraded(
    monitor: HealthMonitor,
    breakers: BreakerRegistry,
    overrides: dict[str, Callable[[], Awaitable[Any]]],
) -> None:
    """A service with a replica not fully healthy, but one up, is degraded."""
    health = gateway(monitor, breakers, overrides)
    await monitor.run_probes()
    sensor = health.service_status("sensor")
    assert sensor["status"] == "degraded"
    assert health.report()["overall_status"] == "degraded"


async def test_replica_details_reported(monitor: HealthMonitor, breakers: BreakerRegistry) -> None:
    """Each replica lists its url, probe status, remote status and latency."""
    health = gateway(monitor, breakers, {"sensor[1]": remote("degraded")})
    await monitor.run_probes()
    replicas = health.service_status("sensor")["replicas"]
    assert [r["status"] for r in replicas] == ["up", "up"]
    assert [r["remote_status"] for r in replicas] == ["healthy", "degraded"]
    assert all(r["latency_ms"] is not None for r in replicas)
    assert all(r["error"] is None for r in replicas)


@pytest.mark.parametrize(
    ("overrides", "open_breakers", "overall"),
    [
        ({}, [], "healthy"),
        ({"auth[0]": down}, [], "degraded"),
        ({}, ["sensor"], "degraded"),
        ({"events[0]": remote("degraded")}, [], "degraded"),
        (
            {"auth[0]": down, "sensor[0]": down, "sensor[1]": down, "events[0]": down},
            [],
            "unhealthy",
        ),
        ({}, ["auth", "sensor", "events"], "unhealthy"),
        ({"auth[0]": down, "events[0]": down}, ["sensor"], "unhealthy"),
    ],
    ids=[
        "all-healthy",
        "one-down",
        "one-breaker-open",
        "one-degraded",
        "all-down",
        "all-breakers-open",
        "mixed-all-unavailable",
    ],
)
async def test_overall_status(
    monitor: HealthMonitor,
    breakers: BreakerRegistry,
    overrides: dict[str, Callable[[], Awaitable[Any]]],
    open_breakers: list[str],
    overall: str,
) -> None:
    """overall_status: healthy when all are, unhealthy when none is available, else degraded."""
    health = gateway(monitor, breakers, overrides)
    for name in open_breakers:
        trip(breakers[name])
    await monitor.run_probes()
    doc = health.report()
    assert doc["overall_status"] == overall
    assert doc["gateway"] == "healthy"
    assert doc["instance"] == "svc-1"


async def test_a_dependency_with_a_working_fallback_keeps_the_service_healthy(
    monitor: HealthMonitor,
) -> None:
    """Auth away while the JWKS fallback works: nothing is lost, so the status is healthy."""
    available: list[str | None] = ["tokens checked against the cached JWKS"]
    monitor.add_probe("auth[0]", down, capability="token checks", fallback=lambda: available[0])
    await monitor.run_probes()
    assert monitor.status is Status.HEALTHY
    doc = monitor.report()
    assert doc["fallbacks_in_use"] == ["tokens checked against the cached JWKS"]
    assert doc["capabilities_lost"] == []
    assert doc["checks"]["auth[0]"]["status"] == "down"
    available[0] = None  # no keys cached: the fallback cannot work
    assert monitor.status is Status.DEGRADED
    assert monitor.report()["capabilities_lost"] == ["token checks"]


async def test_degraded_names_the_capability_lost(monitor: HealthMonitor) -> None:
    """A soft dependency down without a fallback degrades the status and says what is lost."""
    monitor.add_probe("events[0]", down, capability="event delivery")
    monitor.add_probe("events[1]", down, capability="event delivery")
    monitor.add_probe("auth[0]", up, capability="token checks", fallback=lambda: "jwks")
    await monitor.run_probes()
    assert monitor.status is Status.DEGRADED
    doc = monitor.report()
    assert doc["capabilities_lost"] == ["event delivery"]
    assert doc["fallbacks_in_use"] == []


async def test_an_essential_dependency_down_is_unhealthy_despite_fallbacks(
    monitor: HealthMonitor,
) -> None:
    """A fallback elsewhere never hides that the service cannot do its job."""
    monitor.add_probe("database", down, essential=True, capability="the sensor schema")
    monitor.add_probe("auth[0]", down, fallback=lambda: "jwks")
    await monitor.run_probes()
    assert monitor.status is Status.UNHEALTHY
    assert monitor.report()["capabilities_lost"] == ["the sensor schema"]

"""The `/health` model every service uses, answered from cached probes.

Probes of dependencies (database, broker, other services) run in a background task every
few seconds with a timeout each; `/health` only reads the cache, so it stays fast when a
dependency hangs (DESIGN.md §6).

Service status says what the service can do, not which neighbour is away
(docs/resilience.md):
- ``healthy``: every capability works: each probe is up, or down with a working fallback
  (auth away while tokens are checked against the cached JWKS: nothing is lost, the
  fallback is named under ``fallbacks_in_use``);
- ``degraded``: a capability is lost or delayed while the service still answers, named
  under ``capabilities_lost`` (events down: completed tests' events wait in the outbox);
- ``unhealthy``: a dependency marked essential is down, so the service cannot do its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sensor_backend import __version__
from sensor_backend.core.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from prometheus_client.metrics_core import Metric

    from sensor_backend.core.breaker import BreakerRegistry


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class CheckStatus(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class CheckResult:
    status: CheckStatus = CheckStatus.UNKNOWN
    latency_ms: float | None = None
    error: str | None = None
    checked_at: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status.value,
            "latency_ms": self.latency_ms,
            "checked_at": self.checked_at,
        }
        if self.error is not None:
            out["error"] = self.error
        out.update(self.details)
        return out


@dataclass(slots=True)
class _Check:
    name: str
    probe: Callable[[], Awaitable[dict[str, Any] | None]]
    essential: bool
    # What the service cannot do while this dependency is down, and the fallback that
    # keeps it working anyway (None: no fallback, or it cannot work right now).
    capability: str | None = None
    fallback: Callable[[], str | None] | None = None
    result: CheckResult = field(default_factory=CheckResult)

    @property
    def down(self) -> bool:
        return self.result.status is not CheckStatus.UP

    def fallback_in_use(self) -> str | None:
        return self.fallback() if self.fallback is not None and self.down else None


class HealthMonitor:
    """Runs the probes periodically and builds the cached health document."""

    def __init__(
        self,
        *,
        service: str,
        instance: str,
        interval_s: float = 2.0,
        probe_timeout_s: float = 1.5,
        breakers: BreakerRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.instance = instance
        self.interval_s = interval_s
        self.probe_timeout_s = probe_timeout_s
        self.breakers = breakers
        self._clock = clock or SystemClock()
        self._started = self._clock.monotonic()
        self._checks: dict[str, _Check] = {}
        self._extras: list[Callable[[], dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def add_probe(
        self,
        name: str,
        probe: Callable[[], Awaitable[dict[str, Any] | None]],
        *,
        essential: bool = False,
        capability: str | None = None,
        fallback: Callable[[], str | None] | None = None,
    ) -> None:
        """Probe a dependency every interval.

        ``capability`` is what the service loses while it is down, unless ``fallback()``
        names a fallback that works right now.
        """
        self._checks[name] = _Check(name, probe, essential, capability, fallback)

    def add_extra(self, supplier: Callable[[], dict[str, Any]]) -> None:
        """Merge cheap, synchronous facts (queue depths...) into the document."""
        self._extras.append(supplier)

    async def start(self) -> None:
        await self.run_probes()
        self._task = asyncio.create_task(self._loop(), name=f"{self.service}-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def poke(self) -> None:
        """Ask for a probe round now (e.g. after a breaker changed state)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            await self.run_probes()

    async def run_probes(self) -> None:
        if self._checks:
            await asyncio.gather(*(self._run(check) for check in self._checks.values()))

    async def _run(self, check: _Check) -> None:
        started = time.perf_counter()
        result = CheckResult(checked_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
        try:
            details = await asyncio.wait_for(check.probe(), self.probe_timeout_s)
        except TimeoutError:
            result.status = CheckStatus.DOWN
            result.error = f"probe timed out after {self.probe_timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - any probe failure means the dependency is down
            result.status = CheckStatus.DOWN
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            result.status = CheckStatus.UP
            result.details = details or {}
        result.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        check.result = result

    def check(self, name: str) -> CheckResult:
        return self._checks[name].result

    def results(self) -> dict[str, CheckResult]:
        return {name: c.result for name, c in self._checks.items()}

    @property
    def status(self) -> Status:
        down = [c for c in self._checks.values() if c.down]
        if not down:
            return Status.HEALTHY
        if any(c.essential and c.result.status is CheckStatus.DOWN for c in down):
            return Status.UNHEALTHY
        if all(c.fallback_in_use() is not None for c in down):
            return Status.HEALTHY
        return Status.DEGRADED

    def capabilities_lost(self) -> list[str]:
        """What the service cannot do now, one line per down dependency without a fallback."""
        lost: dict[str, None] = {}
        for c in self._checks.values():
            if c.down and c.fallback_in_use() is None:
                lost[c.capability or f"whatever needs {c.name}"] = None
        return list(lost)

    def fallbacks_in_use(self) -> list[str]:
        used: dict[str, None] = {}
        for c in self._checks.values():
            fallback = c.fallback_in_use()
            if fallback is not None:
                used[fallback] = None
        return list(used)

    def report(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "service": self.service,
            "instance": self.instance,
            "status": self.status.value,
            "version": __version__,
            "uptime_s": round(self._clock.monotonic() - self._started, 3),
            "checks": {name: c.result.as_dict() for name, c in self._checks.items()},
            "capabilities_lost": self.capabilities_lost(),
            "fallbacks_in_use": self.fallbacks_in_use(),
        }
        if self.breakers is not None:
            doc["circuit_breakers"] = self.breakers.snapshots()
        doc.update(self.extra_facts())
        return doc

    def extra_facts(self) -> dict[str, Any]:
        """The facts added with `add_extra`, merged."""
        facts: dict[str, Any] = {}
        for supplier in self._extras:
            facts.update(supplier())
        return facts


class HealthCollector(Collector):
    """``dependency_up{name}`` gauges read from the cached probe results."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "dependency_up", "1 if the dependency's last probe succeeded", labels=["name"]
        )
        for name, result in self._monitor.results().items():
            gauge.add_metric([name], 1.0 if result.status is CheckStatus.UP else 0.0)
        yield gauge

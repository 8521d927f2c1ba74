"""Prometheus metrics: one registry per process, HTTP metrics, and breakers read at scrape time.

Circuit breakers keep plain integer counters; `BreakerCollector` turns them into metrics
when Prometheus scrapes, so the breaker's hot path pays nothing for being observable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric

    from sensor_backend.core.breaker import BreakerRegistry

BREAKER_STATES = ("closed", "open", "half_open")
# Latency buckets for an API whose hot path is sub-millisecond and whose timeout is 5 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BreakerCollector(Collector):
    def __init__(self, breakers: BreakerRegistry) -> None:
        self._breakers = breakers

    def collect(self) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "circuit_breaker_state", "1 for the breaker's current state", labels=["name", "state"]
        )
        calls = CounterMetricFamily(
            "circuit_breaker_calls",
            "Calls through the breaker by outcome",
            labels=["name", "outcome"],
        )
        trips = CounterMetricFamily(
            "circuit_breaker_trips", "Times the breaker opened", labels=["name"]
        )
        for breaker in self._breakers:
            snap = breaker.snapshot()
            for name in BREAKER_STATES:
                state.add_metric([breaker.name, name], 1.0 if snap["state"] == name else 0.0)
            for outcome, key in (
                ("success", "successes"),
                ("failure", "failure_count"),
                ("slow", "slow_calls"),
                ("rejected", "rejected"),
            ):
                calls.add_metric([breaker.name, outcome], float(snap[key]))  # type: ignore[arg-type]
            trips.add_metric([breaker.name], float(snap["trips"]))  # type: ignore[arg-type]
        yield state
        yield calls
        yield trips


class ServiceMetrics:
    """The metrics every service exposes; services add their own to `registry`."""

    def __init__(self, service: str, breakers: BreakerRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests",
            "HTTP requests served, by route template, method and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.service = service
        if breakers is not None:
            self.registry.register(BreakerCollector(breakers))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.latency.labels(self.service, method, route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

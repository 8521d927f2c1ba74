"""Prometheus metrics: one registry per process, HTTP metrics, and breakers read at scrape time.

Circuit breakers keep plain integer counters; `BreakerCollector` turns them into metrics
when Prometheus scrapes, so the breaker's hot path pays nothing for being observable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match, Route

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from prometheus_client.metrics_core import Metric
    from starlette.types import Scope

    from sensor_backend.core.breaker import BreakerRegistry

BREAKER_STATES = ("closed", "open", "half_open")
# Latency buckets for an API whose hot path is sub-millisecond and whose timeout is 5 s;
# 0.2 is the submission SLO's threshold (deploy/observability/rules/slo.yml).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


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


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class SpoolCollector(Collector):
    """A durable local queue's figures (``spool_*{spool=...}``), read at scrape time.

    ``snapshot`` returns a `Spool.snapshot()`-shaped mapping: ``depth``, ``bytes``,
    ``oldest_age_s`` and, where the owner counts them, ``accepted`` and ``forwarded``.
    """

    def __init__(self, spool: str, snapshot: Callable[[], Mapping[str, object]]) -> None:
        self._spool = spool
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        """The families without values (no snapshot before the spool is open)."""
        for name in ("spool_depth", "spool_bytes", "spool_oldest_age_seconds"):
            yield GaugeMetricFamily(name, name, labels=["spool"])
        for name in ("spool_accepted", "spool_forwarded"):
            yield CounterMetricFamily(name, name, labels=["spool"])

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        gauges = (
            ("spool_depth", "Items held in the durable spool", "depth"),
            ("spool_bytes", "Bytes held in the durable spool", "bytes"),
            (
                "spool_oldest_age_seconds",
                "Age of the oldest item in the spool (0 when empty)",
                "oldest_age_s",
            ),
        )
        for name, doc, key in gauges:
            family = GaugeMetricFamily(name, doc, labels=["spool"])
            value = _number(snap.get(key))
            if value is None and key == "oldest_age_s":
                value = 0.0
            if value is not None:
                family.add_metric([self._spool], value)
            yield family
        for name, doc, key in (
            ("spool_accepted", "Items accepted into the spool by this process", "accepted"),
            ("spool_forwarded", "Items forwarded to their next owner by this process", "forwarded"),
        ):
            value = _number(snap.get(key))
            if value is not None:
                counter = CounterMetricFamily(name, doc, labels=["spool"])
                counter.add_metric([self._spool], value)
                yield counter


class TokenAuthCollector(Collector):
    """Token checks by result (``auth_token_checks_total{result}``), read at scrape time.

    ``result`` is ``auth`` (auth's /verify answered), ``cache`` (a cached /verify answer),
    ``fallback`` (checked locally against the cached JWKS: auth unreachable or its breaker
    open), ``refused`` or ``unavailable`` (no way to check). A sustained share of
    ``fallback`` is the "auth in fallback mode" alert.
    """

    RESULTS = (
        ("auth", "auth_ok"),
        ("cache", "cache_hits"),
        ("fallback", "fallback_ok"),
        ("refused", "refused"),
        ("unavailable", "unavailable"),
    )

    def __init__(self, facts: Callable[[], Mapping[str, Any]]) -> None:
        self._facts = facts

    def describe(self) -> Iterable[Metric]:
        yield CounterMetricFamily("auth_token_checks", "Token checks by result", labels=["result"])

    def collect(self) -> Iterable[Metric]:
        snap = self._facts().get("token_auth")
        family = CounterMetricFamily(
            "auth_token_checks", "Token checks by result", labels=["result"]
        )
        if isinstance(snap, dict):
            for result, key in self.RESULTS:
                value = _number(snap.get(key))
                if value is not None:
                    family.add_metric([result], value)
        yield family


class TemplatedRoute(Route):
    """A Starlette route that puts itself in ``scope["route"]``, as FastAPI's routes do.

    The request metrics label by ``scope["route"].path``; a plain `Route` (the gateway's raw
    ASGI proxy routes) leaves it unset, and every proxied request would count as
    ``unmatched``.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def templated(routes: Iterable[Route]) -> list[Route]:
    """The same routes, labelling request metrics with their path templates."""
    return [
        TemplatedRoute(r.path, r.endpoint, methods=sorted(r.methods or ()), name=r.name)
        for r in routes
    ]


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

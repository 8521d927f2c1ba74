"""Prometheus metrics of the sensor service, on the service's own registry.

Counters are per process (Prometheus sums replicas); the depth gauges come from the last
database count (refreshed every few seconds by the housekeeping loop) and are the same in
every replica, so aggregate them with ``max``, not ``sum``.

Processing-time buckets span a 20-reading test (about a millisecond) to a million readings
with faults (a second or two on a slow core) and a stuck worker (the 60 s tail).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

PROCESSING_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
# 5.0 is the SLO's threshold (deploy/observability/rules/slo.yml): keep it a bucket bound.
COMPLETION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _DepthCollector(Collector):
    def __init__(self, depths: Callable[[], dict[str, Any]]) -> None:
        self._depths = depths

    def describe(self) -> Iterable[Metric]:
        """The families without values (the registry calls this at registration)."""
        return self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        queue = GaugeMetricFamily(
            "sensor_queue_depth", "Tests by queue state (last count)", labels=["state"]
        )
        outbox = GaugeMetricFamily(
            "sensor_outbox_depth", "Outbox events by status (last count)", labels=["status"]
        )
        oldest = GaugeMetricFamily(
            "sensor_queue_oldest_age_seconds",
            "Age of the oldest queued (not yet claimed) test at the last count (0 when none)",
        )
        return queue, outbox, oldest

    def collect(self) -> Iterable[Metric]:
        doc = self._depths()
        queue, outbox, oldest = self._families()
        for state in ("queued", "running"):
            if isinstance(doc.get(state), int):
                queue.add_metric([state], float(doc[state]))
        for status in ("pending", "dead"):
            value = doc.get(f"outbox_{status}")
            if isinstance(value, int):
                outbox.add_metric([status], float(value))
        if isinstance(doc.get("queued"), int):
            age = doc.get("oldest_queued_s")
            oldest.add_metric([], float(age) if isinstance(age, int | float) else 0.0)
        yield queue
        yield outbox
        yield oldest


class SensorMetrics:
    def __init__(self, registry: CollectorRegistry, depths: Callable[[], dict[str, Any]]) -> None:
        self.submitted = Counter(
            "sensor_tests_submitted", "Tests accepted", ["source"], registry=registry
        )
        self.verdicts = Counter(
            "sensor_test_verdicts", "Completed tests by verdict", ["verdict"], registry=registry
        )
        # By sensor type too (the dashboard's verdicts per type). The types are the built-in
        # catalogue plus the few an admin defines, so the label stays bounded.
        self.completed = Counter(
            "sensor_tests_completed",
            "Completed tests by sensor type and verdict",
            ["sensor_type", "verdict"],
            registry=registry,
        )
        self.failed = Counter(
            "sensor_tests_failed", "Tests that ended failed (no verdict)", registry=registry
        )
        self.retries = Counter(
            "sensor_test_retries", "Attempts that failed and were queued again", registry=registry
        )
        self.lease_lost = Counter(
            "sensor_lease_lost", "Results dropped because the lease was lost", registry=registry
        )
        self.processing = Histogram(
            "sensor_test_processing_seconds",
            "Time to simulate and analyse one test",
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "sensor_test_queue_wait_seconds",
            "Time from submission to the claim that completed the test",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.completion = Histogram(
            "sensor_test_completion_seconds",
            "Time from acceptance (the 202) to the stored verdict: the test-latency SLO's SLI",
            buckets=COMPLETION_BUCKETS,
            registry=registry,
        )
        self.delivered = Counter(
            "sensor_outbox_delivered", "Events accepted by the event service", registry=registry
        )
        self.dead = Counter(
            "sensor_outbox_dead", "Events the event service refused (4xx)", registry=registry
        )
        self.delivery_failures = Counter(
            "sensor_outbox_delivery_failures",
            "Delivery attempts that failed and will be retried",
            ["reason"],
            registry=registry,
        )
        registry.register(_DepthCollector(depths))

"""The gateway's aggregated /health document, in the shape of DESIGN.md §6.

Built only from cached probe results and breaker snapshots, so it answers in well under
50 ms even when every service is down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor_backend import __version__
from sensor_backend.core.health import CheckStatus, HealthMonitor
from sensor_backend.core.service_probes import replica_label
from sensor_backend.gateway.settings import public_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensor_backend.core.breaker import BreakerRegistry

HEALTHY = "healthy"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"


class GatewayHealth:
    def __init__(
        self,
        monitor: HealthMonitor,
        breakers: BreakerRegistry,
        service_urls: dict[str, list[str]],
    ) -> None:
        self.monitor = monitor
        self.breakers = breakers
        self.service_urls = service_urls
        self.extras: list[Callable[[], dict[str, Any]]] = []

    def service_status(self, service: str) -> dict[str, Any]:
        replicas = []
        up = 0
        remote_healthy = 0
        for index, url in enumerate(self.service_urls[service]):
            result = self.monitor.check(replica_label(service, index))
            remote = result.details.get("remote_status")
            replicas.append(
                {
                    "url": url,
                    "status": result.status.value,
                    "remote_status": remote,
                    "latency_ms": result.latency_ms,
                    "error": result.error,
                }
            )
            if result.status is CheckStatus.UP:
                up += 1
                remote_healthy += remote == HEALTHY
        breaker = self.breakers.get(service)
        breaker_open = breaker is not None and breaker.snapshot()["open"] is True
        if up == 0 or breaker_open:
            status = UNAVAILABLE
        elif remote_healthy == len(replicas):
            status = HEALTHY
        else:
            status = DEGRADED
        return {"status": status, "replicas_up": up, "replicas": replicas}

    def report(self) -> dict[str, Any]:
        services = {public_name(name): self.service_status(name) for name in self.service_urls}
        statuses = [s["status"] for s in services.values()]
        if all(s == HEALTHY for s in statuses):
            overall = HEALTHY
        elif all(s == UNAVAILABLE for s in statuses):
            overall = "unhealthy"
        else:
            overall = DEGRADED
        return {
            "gateway": HEALTHY,
            "overall_status": overall,
            "services": services,
            "circuit_breakers": public_snapshots(self.breakers),
            "instance": self.monitor.instance,
            "version": __version__,
            **self.monitor.extra_facts(),
            **{k: v for extra in self.extras for k, v in extra().items()},
        }


def public_snapshots(breakers: BreakerRegistry) -> dict[str, dict[str, object]]:
    """The breakers' snapshots under their public names (``/health``, ``/circuit-breakers``)."""
    return {public_name(name): snap for name, snap in breakers.snapshots().items()}

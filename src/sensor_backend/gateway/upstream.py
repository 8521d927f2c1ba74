"""Replica selection for one service: least outstanding requests, passive ejection, active return.

- Selection: power of two choices on outstanding requests (Envoy's LEAST_REQUEST default):
  two random healthy replicas, the one with fewer requests in flight wins. O(1) per pick and
  no herd on the single least-loaded replica.
- Passive ejection (Envoy outlier detection): ``eject_after`` consecutive failures (connect
  errors, timeouts, 5xx) eject a replica; it stays out until an active health probe
  succeeds, and at least ``min_ejection_s`` (doubling per repeated ejection, capped).
- All replicas ejected: the service is unavailable (the caller answers 503).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sensor_backend.core.clock import Clock, SystemClock


@dataclass(slots=True)
class Replica:
    url: str
    outstanding: int = 0
    consecutive_failures: int = 0
    ejected: bool = False
    ejected_until: float = 0.0
    ejections: int = 0
    requests: int = 0
    failures: int = 0
    probe_up: bool = True

    def snapshot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ejected": self.ejected,
            "outstanding": self.outstanding,
            "consecutive_failures": self.consecutive_failures,
            "ejections": self.ejections,
            "requests": self.requests,
            "failures": self.failures,
        }


@dataclass
class UpstreamPool:
    service: str
    urls: list[str]
    eject_after: int = 3
    min_ejection_s: float = 5.0
    max_ejection_s: float = 300.0
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.replicas = [Replica(url) for url in self.urls]

    def healthy(self) -> list[Replica]:
        return [r for r in self.replicas if not r.ejected]

    def pick(self, exclude: Replica | None = None) -> Replica | None:
        """A replica to send to (not ``exclude`` when another exists), or None."""
        candidates = [r for r in self.replicas if not r.ejected and r is not exclude]
        if not candidates:
            candidates = [r for r in self.replicas if not r.ejected]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        a, b = self.rng.sample(candidates, 2)
        return a if a.outstanding <= b.outstanding else b

    def succeeded(self, replica: Replica) -> None:
        replica.consecutive_failures = 0

    def failed(self, replica: Replica) -> None:
        replica.failures += 1
        replica.consecutive_failures += 1
        if not replica.ejected and replica.consecutive_failures >= self.eject_after:
            replica.ejected = True
            replica.ejections += 1
            wait = min(self.max_ejection_s, self.min_ejection_s * 2 ** (replica.ejections - 1))
            replica.ejected_until = self.clock.monotonic() + wait

    def probed(self, url: str, *, up: bool) -> None:
        """An active health check result: an ejected replica returns once it answers again."""
        for replica in self.replicas:
            if replica.url != url:
                continue
            replica.probe_up = up
            if up and replica.ejected and self.clock.monotonic() >= replica.ejected_until:
                replica.ejected = False
                replica.consecutive_failures = 0
            elif not up and not replica.ejected and len(self.replicas) > 1:
                # A replica whose health check fails is not sent new traffic either.
                replica.ejected = True
                replica.ejected_until = self.clock.monotonic()

    def readmit_all(self) -> None:
        """Operator reset: give every replica another chance."""
        for replica in self.replicas:
            replica.ejected = False
            replica.consecutive_failures = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "replicas": [r.snapshot() for r in self.replicas],
            "healthy": len(self.healthy()),
        }

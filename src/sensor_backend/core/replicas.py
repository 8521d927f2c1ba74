"""A service's replicas: least outstanding requests, passive ejection, active return.

- Selection: power of two choices on outstanding requests (Envoy's LEAST_REQUEST default):
  two random healthy replicas, the one with fewer requests in flight wins. O(1) per pick and
  no herd on the single least-loaded replica.
- Passive ejection (Envoy outlier detection): ``eject_after`` consecutive failures (connect
  errors, timeouts, 5xx; see docs/resilience.md for what counts) eject a replica.
- Active health checks bring it back: a replica whose probe sees it ready is readmitted at
  once (Envoy's ``successful_active_health_check_uneject_host``, on by default), however
  often it was ejected before; one whose probe fails (or that reports itself unable to
  serve) gets no new traffic. So an ejection caused by a few bad requests lasts at most one
  probe interval, and a long outage history never delays a return.
- Panic routing: when every replica is ejected, pick among all of them (Envoy's
  ``healthy_panic_threshold``). An ejection is a preference, never a refusal: whether the
  service is down is the breaker's call, made from real outcomes, so the pool never turns
  "no replica" into a failure of its own (which once kept a healthy service shut out).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Replica:
    url: str
    outstanding: int = 0
    consecutive_failures: int = 0
    ejected: bool = False
    ejections: int = 0
    requests: int = 0
    failures: int = 0
    probe_up: bool = True
    readmissions: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ejected": self.ejected,
            "outstanding": self.outstanding,
            "consecutive_failures": self.consecutive_failures,
            "ejections": self.ejections,
            "requests": self.requests,
            "failures": self.failures,
            "probe_up": self.probe_up,
            "readmissions": self.readmissions,
        }


@dataclass
class ReplicaPool:
    service: str
    urls: list[str]
    eject_after: int = 3
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.replicas = [Replica(url) for url in self.urls]

    def healthy(self) -> list[Replica]:
        return [r for r in self.replicas if not r.ejected]

    @property
    def panic(self) -> bool:
        """Every replica is ejected: traffic goes to all of them (Envoy's panic mode)."""
        return not any(not r.ejected for r in self.replicas)

    def pick(self, exclude: Replica | None = None) -> Replica:
        """A replica to send to: a healthy one other than ``exclude`` when one exists."""
        replicas = self.replicas
        if len(replicas) == 1:
            return replicas[0]
        candidates = [r for r in replicas if not r.ejected and r is not exclude]
        if not candidates:
            candidates = [r for r in replicas if not r.ejected] or [
                r for r in replicas if r is not exclude
            ]
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

    def probed(self, url: str, *, up: bool) -> bool:
        """An active health check result: ready readmits at once, not ready withholds.

        True when the replica is ready after its last probe said it was not.
        """
        returned = False
        for replica in self.replicas:
            if replica.url != url:
                continue
            returned = up and not replica.probe_up
            replica.probe_up = up
            if up:
                if replica.ejected:
                    replica.ejected = False
                    replica.readmissions += 1
                replica.consecutive_failures = 0
            elif not replica.ejected:
                # A replica whose health check fails is not sent new traffic either.
                replica.ejected = True
        return returned

    def readmit_all(self) -> None:
        """Operator reset: give every replica another chance."""
        for replica in self.replicas:
            replica.ejected = False
            replica.consecutive_failures = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "replicas": [r.snapshot() for r in self.replicas],
            "healthy": len(self.healthy()),
            "panic": self.panic,
        }

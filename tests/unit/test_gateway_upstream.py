"""Replica selection, passive ejection and active readmission (gateway/upstream.py)."""

from __future__ import annotations

import random

import pytest

from sensor_backend.core.clock import ManualClock
from sensor_backend.gateway.upstream import UpstreamPool

URLS = ["http://a", "http://b", "http://c"]


def pool(**kw) -> UpstreamPool:
    return UpstreamPool("sensor", URLS, clock=ManualClock(), rng=random.Random(7), **kw)  # noqa: S311


def test_pick_prefers_the_replica_with_fewer_requests_in_flight():
    """Power of two choices never picks the busier of the two sampled replicas."""
    p = pool()
    p.replicas[0].outstanding = 10
    p.replicas[1].outstanding = 10
    picks = [p.pick().url for _ in range(200)]
    assert picks.count("http://c") > 100
    assert set(picks) <= set(URLS)


def test_pick_spreads_load_when_idle():
    """With equal load every replica gets picked."""
    p = pool()
    assert {p.pick().url for _ in range(100)} == set(URLS)


@pytest.mark.parametrize("eject_after", [1, 3])
def test_consecutive_failures_eject_a_replica(eject_after):
    """N consecutive failures eject the replica; fewer do not."""
    p = pool(eject_after=eject_after)
    b = p.replicas[1]
    for _ in range(eject_after - 1):
        p.failed(b)
    assert not b.ejected
    p.failed(b)
    assert b.ejected
    assert all(p.pick().url != "http://b" for _ in range(50))


def test_a_success_resets_the_failure_streak():
    """Failures must be consecutive to eject."""
    p = pool(eject_after=2)
    b = p.replicas[1]
    p.failed(b)
    p.succeeded(b)
    p.failed(b)
    assert not b.ejected


def test_all_replicas_ejected_means_no_pick():
    """With every replica ejected the service is unavailable (pick returns None)."""
    p = pool(eject_after=1)
    for replica in p.replicas:
        p.failed(replica)
    assert p.pick() is None


def test_active_health_check_readmits_after_the_minimum_ejection():
    """An ejected replica returns on a good probe, but not before its ejection time."""
    p = pool(eject_after=1, min_ejection_s=5.0)
    b = p.replicas[1]
    p.failed(b)
    p.probed("http://b", up=True)
    assert b.ejected
    p.clock.advance(5.0)
    p.probed("http://b", up=True)
    assert not b.ejected
    assert b.consecutive_failures == 0


def test_repeated_ejections_last_longer():
    """Each new ejection doubles the minimum time out, capped."""
    p = pool(eject_after=1, min_ejection_s=5.0, max_ejection_s=12.0)
    b = p.replicas[1]
    waits = []
    for _ in range(3):
        p.failed(b)
        waits.append(b.ejected_until - p.clock.monotonic())
        p.clock.advance(waits[-1])
        p.probed("http://b", up=True)
    assert waits == [5.0, 10.0, 12.0]


def test_a_failing_probe_withholds_traffic_from_a_replica():
    """A replica whose health check fails gets no new requests."""
    p = pool()
    p.probed("http://a", up=False)
    assert p.replicas[0].ejected
    assert all(p.pick().url != "http://a" for _ in range(50))


def test_pick_avoids_the_replica_that_just_failed_when_retrying():
    """A retry goes to another replica when one exists."""
    p = pool()
    first = p.replicas[0]
    assert all(p.pick(exclude=first) is not first for _ in range(50))
    single = UpstreamPool("auth", ["http://only"], clock=ManualClock())
    assert single.pick(exclude=single.replicas[0]) is single.replicas[0]


def test_readmit_all_clears_every_ejection():
    """An operator's breaker reset gives every replica another chance."""
    p = pool(eject_after=1)
    for replica in p.replicas:
        p.failed(replica)
    p.readmit_all()
    assert p.pick() is not None
    assert p.snapshot()["healthy"] == 3

"""Replica selection, passive ejection, active readmission and panic routing (core/replicas.py)."""

from __future__ import annotations

import random

import pytest

from sensor_backend.core.replicas import ReplicaPool

URLS = ["http://a", "http://b", "http://c"]


def pool(**kw) -> ReplicaPool:
    return ReplicaPool("sensor", URLS, rng=random.Random(7), **kw)  # noqa: S311


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


def test_all_replicas_ejected_means_panic_routing():
    """With every replica ejected, traffic goes to all of them (Envoy's panic mode).

    Whether the service is down is the breaker's call from real outcomes; the pool never
    refuses on its own (that once shut a healthy single replica out for minutes).
    """
    p = pool(eject_after=1)
    for replica in p.replicas:
        p.failed(replica)
    assert p.panic
    assert {p.pick().url for _ in range(100)} == set(URLS)
    assert p.snapshot()["panic"] is True


def test_a_single_ejected_replica_is_still_picked():
    """One replica, ejected by a few bad requests, still gets the other clients' traffic."""
    single = ReplicaPool("sensor", ["http://only"], eject_after=1)
    single.failed(single.replicas[0])
    assert single.replicas[0].ejected
    assert single.pick() is single.replicas[0]


def test_a_passing_health_check_readmits_at_once():
    """A ready probe readmits an ejected replica immediately, however often it was ejected."""
    p = pool(eject_after=1)
    b = p.replicas[1]
    for ejections in range(1, 51):
        p.failed(b)
        assert b.ejected
        assert b.ejections == ejections
        p.probed("http://b", up=True)
        assert not b.ejected
        assert b.consecutive_failures == 0
    assert b.readmissions == 50


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
    single = ReplicaPool("auth", ["http://only"])
    assert single.pick(exclude=single.replicas[0]) is single.replicas[0]


def test_readmit_all_clears_every_ejection():
    """An operator's breaker reset gives every replica another chance."""
    p = pool(eject_after=1)
    for replica in p.replicas:
        p.failed(replica)
    p.readmit_all()
    assert p.pick() is not None
    assert p.snapshot()["healthy"] == 3


def test_a_probe_says_when_a_replica_came_back():
    """probed() is True only on the not-ready -> ready transition (queues resume on it)."""
    p = pool()
    assert p.probed("http://b", up=True) is False  # it never left
    assert p.probed("http://b", up=False) is False
    assert p.probed("http://b", up=True) is True
    assert p.probed("http://b", up=True) is False

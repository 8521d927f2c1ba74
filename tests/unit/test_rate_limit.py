"""Per-client token buckets at the gateway (gateway/rate_limit.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sensor_backend.gateway import rate_limit
from sensor_backend.gateway.rate_limit import Policy, RateLimiter

if TYPE_CHECKING:
    from sensor_backend.core.clock import ManualClock


def limiter(clock: ManualClock, limit: int = 10, window_s: float = 60.0) -> RateLimiter:
    return RateLimiter(Policy("tests", limit, window_s), clock)


def test_a_burst_up_to_the_limit_passes_then_429(clock):
    """``limit`` requests pass at once; the next is refused with Retry-After."""
    rl = limiter(clock)
    decisions = [rl.take("alice") for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:3]] == [9, 8, 7]
    refused = decisions[-1]
    assert refused.retry_after_s == 6  # one token per 6 s at 10 per minute
    assert refused.reset_s == 60
    assert rl.limited == 1


def test_tokens_come_back_over_the_window(clock):
    """After Retry-After one more request passes; after the window the burst is back."""
    rl = limiter(clock)
    for _ in range(10):
        rl.take("alice")
    clock.advance(6.0)
    assert rl.take("alice").allowed
    assert not rl.take("alice").allowed
    clock.advance(60.0)
    assert [rl.take("alice").allowed for _ in range(10)] == [True] * 10


def test_clients_are_counted_apart(clock):
    """One client's burst never uses another client's tokens."""
    rl = limiter(clock, limit=2)
    assert [rl.take("alice").allowed for _ in range(3)] == [True, True, False]
    assert rl.take("bob").allowed
    assert rl.snapshot()["clients"] == 2


def test_headers_follow_the_ietf_draft(clock):
    """RateLimit-Policy and RateLimit as structured fields; Retry-After only when refused."""
    rl = limiter(clock, limit=2)
    ok = dict(rl.take("alice").headers(rl.policy))
    assert ok == {b"ratelimit-policy": b'"tests";q=2;w=60', b"ratelimit": b'"tests";r=1;t=30'}
    rl.take("alice")
    refused = dict(rl.take("alice").headers(rl.policy))
    assert refused[b"retry-after"] == b"30"
    assert refused[b"ratelimit"] == b'"tests";r=0;t=60'


def test_tracked_clients_are_bounded(clock, monkeypatch):
    """Memory stays bounded: the least recently seen client is forgotten first."""
    monkeypatch.setattr(rate_limit, "MAX_TRACKED_KEYS", 3)
    rl = limiter(clock, limit=1)
    for key in ("a", "b", "c"):
        rl.take(key)
    rl.take("a")  # a is refused, and now the most recently seen
    rl.take("d")
    assert rl.snapshot()["clients"] == 3
    assert rl.take("b").allowed  # b was forgotten: a fresh bucket
    assert not rl.take("a").allowed


@pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (5, 0.0)])
def test_a_policy_must_allow_something(limit, window):
    """A zero limit or window is a configuration error, not a silent block."""
    with pytest.raises(ValueError, match="rate limit"):
        Policy("x", limit, window)


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_clients_count_by_their_64(address, bucket):
    """A host cannot pick a fresh bucket from its /64 for every request."""
    from sensor_backend.gateway.gateway import _bucket  # noqa: PLC0415

    assert _bucket(address) == bucket

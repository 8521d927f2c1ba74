"""Per-client rate limits at the gateway: a token bucket per (route group, client).

The client is the authenticated subject (a user or a rig's client id) on protected routes and
the client address on anonymous ones (Kong's rate-limiting plugin limits by consumer, else by
IP; Envoy's local rate limit is a token bucket too). Each route group has its own policy:
``limit`` requests per ``window_s`` seconds, refilled continuously, with a burst of
``limit``. Over the limit the gateway answers 429 with ``Retry-After`` (when one request's
worth of tokens is back) without calling any service.

Every answer on a limited route carries the IETF httpapi draft's fields
(draft-ietf-httpapi-ratelimit-headers-10, Structured Fields, RFC 9651)::

    RateLimit-Policy: "tests";q=120;w=60
    RateLimit: "tests";r=117;t=2

``q`` is the quota, ``w`` its window in seconds, ``r`` the quota units left and ``t`` the
seconds until the bucket is full again.

Counts live in this gateway process (one dict, LRU-bounded, O(1) per request). Several
gateways each count on their own: with N of them a client gets up to N times the limit. The
README's Scaling section says how to share the count and what that costs.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.errors import TooManyRequests

MAX_TRACKED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Policy:
    """``limit`` requests per ``window_s``, as a bucket of ``limit`` tokens refilled evenly."""

    name: str
    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0:
            raise ValueError(f"rate limit {self.name!r}: need limit >= 1 and window_s > 0")

    @property
    def header(self) -> bytes:
        return f'"{self.name}";q={self.limit};w={math.ceil(self.window_s)}'.encode()


def parse_policies(spec: str) -> dict[str, Policy]:
    """``"login=600/60,tests=600/60"``: route group, then requests per window in seconds."""
    policies: dict[str, Policy] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, quota = item.partition("=")
        limit, _, window = quota.partition("/")
        try:
            policies[name.strip()] = Policy(name.strip(), int(limit), float(window))
        except ValueError as exc:
            msg = f"rate limit {item!r}: expected group=requests/window_seconds ({exc})"
            raise ValueError(msg) from exc
    return policies


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    reset_s: int  # until the bucket is full again
    retry_after_s: int  # until one request is allowed (0 when allowed now)

    def headers(self, policy: Policy) -> list[tuple[bytes, bytes]]:
        state = f'"{policy.name}";r={self.remaining};t={self.reset_s}'.encode()
        headers = [(b"ratelimit-policy", policy.header), (b"ratelimit", state)]
        if not self.allowed:
            headers.append((b"retry-after", str(self.retry_after_s).encode()))
        return headers


class RateLimited(TooManyRequests):
    """429 with Retry-After and the draft's RateLimit-Policy and RateLimit fields."""

    def __init__(self, policy: Policy, decision: Decision) -> None:
        super().__init__(
            f"rate limit {policy.name!r} reached: {policy.limit} requests per"
            f" {policy.window_s:g} s for each client",
            retry_after_s=decision.retry_after_s,
            limit=policy.name,
        )
        self._rate_headers = decision.headers(policy)

    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self._rate_headers}


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """Token buckets for one policy, one per client key."""

    def __init__(self, policy: Policy, clock: Clock | None = None) -> None:
        self.policy = policy
        self._rate = policy.limit / policy.window_s  # tokens per second
        self._clock = clock or SystemClock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.limited = 0

    def admit(self, key: str) -> list[tuple[bytes, bytes]]:
        """Spend one of ``key``'s tokens: the headers for the answer, or `RateLimited`."""
        decision = self.take(key)
        if not decision.allowed:
            raise RateLimited(self.policy, decision)
        return decision.headers(self.policy)

    def take(self, key: str) -> Decision:
        """Spend one token of ``key``'s bucket if it has one."""
        now = self._clock.monotonic()
        capacity = self.policy.limit
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(capacity), now)
            if len(self._buckets) > MAX_TRACKED_KEYS:
                # The least recently seen client: its bucket had long refilled anyway.
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        else:
            self.limited += 1
        missing = capacity - bucket.tokens
        return Decision(
            allowed=allowed,
            remaining=int(bucket.tokens),
            reset_s=math.ceil(missing / self._rate),
            retry_after_s=0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / self._rate)),
        )

    def snapshot(self) -> dict[str, object]:
        return {
            "limit": self.policy.limit,
            "window_s": self.policy.window_s,
            "clients": len(self._buckets),
            "limited": self.limited,
        }

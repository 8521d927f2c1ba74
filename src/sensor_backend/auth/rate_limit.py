"""Login rate limiting: failures per username and per client address in a sliding window.

After ``max_failures`` failed logins for one username (credential stuffing on one account) or
``max_client_failures`` from one address (spraying many accounts) within ``window_s``, further
attempts get 429 with ``Retry-After`` until the oldest failure leaves the window (OWASP
Authentication Cheat Sheet). A success clears the username's failures. State is per process;
with several auth replicas the effective limit is that many times higher.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from sensor_backend.core.clock import Clock, SystemClock

MAX_TRACKED_KEYS = 50_000


class SlidingWindow:
    """Timestamps of recent failures per key; bounded in keys (LRU) and per key."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and now - events[0] >= self.window_s:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str, now: float) -> float | None:
        events = self._recent(key, now)
        if events is None or len(events) < self.limit:
            return None
        return self.window_s - (now - events[0])

    def add(self, key: str, now: float) -> None:
        events = self._recent(key, now)
        if events is None:
            events = self._events[key] = deque(maxlen=self.limit)
            if len(self._events) > MAX_TRACKED_KEYS:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        events.append(now)

    def clear(self, key: str) -> None:
        self._events.pop(key, None)


class LoginLimiter:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        max_client_failures: int = 20,
        window_s: float = 300.0,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._users = SlidingWindow(max_failures, window_s)
        self._clients = SlidingWindow(max_client_failures, window_s)

    def retry_after(self, username: str, client: str) -> int | None:
        """Whole seconds to wait before trying again, or None when an attempt is allowed."""
        now = self._clock.monotonic()
        waits = [
            w
            for w in (
                self._users.retry_after(username.lower(), now),
                self._clients.retry_after(client, now),
            )
            if w is not None
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, username: str, client: str) -> None:
        now = self._clock.monotonic()
        self._users.add(username.lower(), now)
        self._clients.add(client, now)

    def succeeded(self, username: str) -> None:
        self._users.clear(username.lower())

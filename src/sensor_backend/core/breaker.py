"""An asyncio-friendly circuit breaker modelled on resilience4j's semantics.

Why not a library
-----------------
No Python breaker fits DESIGN.md §5: ``pybreaker`` has no asyncio support and serialises
every call through one global lock; ``aiobreaker`` (its asyncio fork) is abandoned; and
``purgatory`` lets every call through while half-open instead of a bounded number of
probes. This module follows resilience4j's CircuitBreaker
(https://resilience4j.readme.io/docs/circuitbreaker) where that fits:

* a count-based sliding window of the last ``window_size`` outcomes
  (``slidingWindowType=COUNT_BASED``) with ``min_calls`` before the failure rate is
  judged (``minimumNumberOfCalls``) and ``failure_rate`` as the threshold
  (``failureRateThreshold``, "equal or greater than" opens);
* a lazy open -> half-open transition on the next call once the wait is over
  (resilience4j's default, ``automaticTransitionFromOpenToHalfOpenEnabled=false``);
* an open wait that grows with repeated trips (resilience4j's
  ``waitIntervalFunctionInOpenState`` with an exponential interval function), capped at
  ``max_open_wait_s`` (300 s, Envoy's ejection cap);
* a bounded number of half-open probes (``permittedNumberOfCallsInHalfOpenState``).

Deliberate differences
----------------------
* It *also* opens on ``consecutive_failures`` failures in a row (DESIGN.md: "5, or 3 for the
  auth database"), which the rate window alone cannot express before ``min_calls``.
* A slow *successful* call (``duration_s > slow_call_s``) simply counts as a failure instead
  of feeding a separate slow-call-rate threshold.
* Half-open is strict: all ``half_open_max_calls`` probes must succeed to close, and any
  probe failure reopens at once (with 1 to 3 probes a "rate" is meaningless).
* A probe that never completes must not wedge the breaker (resilience4j issues #903 and
  #935: a stuck half-open call kept the breaker half-open forever until
  ``maxWaitDurationInHalfOpenState`` was added). resilience4j's answer is to go back to
  *open* after that wait. Here, when every probe slot is taken and the newest outstanding
  probe was granted ``half_open_max_wait_s`` ago or more, the outstanding probes are
  *forgotten* (their results will be ignored) and new probes are admitted. Reason: every
  outgoing call already has its own timeout (5 s by default), far below the 30 s default
  here, so a probe that is still outstanding after that long is almost certainly a leaked
  permit (a caller that never reported, e.g. a task torn down outside :meth:`call`), which
  says nothing about the downstream; reopening would add another, doubled, open wait
  against a service that may be healthy. A downstream that really hangs is still caught,
  because its calls end in a timeout error, which is a failure.
* Results carry the *generation* (state epoch) they were admitted under. A result from an
  earlier epoch, e.g. a slow call started while closed that completes after the breaker
  opened, updates the counters but never the state machine.

Concurrency model
-----------------
All state lives on one asyncio event loop thread, so there are no locks. The hot path,
:meth:`CircuitBreaker.acquire` and :meth:`CircuitBreaker.record_success` in the closed
state, allocates nothing and reads no clock. Do not share one breaker between threads.

Timeouts belong *inside* the guarded call: ``await breaker.call(lambda: fetch())`` where
``fetch`` applies its own timeout, so the timeout surfaces as an exception (a failure). A
timeout *around* :meth:`CircuitBreaker.call` cancels it, and cancellation is deliberately
neither a success nor a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from sensor_backend.core.checks import check_int, check_positive
from sensor_backend.core.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Iterator

__all__ = [
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "StateListener",
]

T = TypeVar("T")

_log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN

StateListener: TypeAlias = Callable[[str, BreakerState, BreakerState], None]
"""Called as ``listener(breaker_name, old_state, new_state)`` on every transition."""


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Breaker knobs; defaults are DESIGN.md §5's starting points.

    Attributes:
        consecutive_failures: open after this many failures in a row (3 for the auth DB).
        window_size: the count-based sliding window holds the last N call outcomes.
        min_calls: the failure rate is judged only once the window holds this many.
        failure_rate: open when failures / window calls >= this (0 < rate <= 1).
        slow_call_s: a successful call slower than this counts as a failure (None: off).
        open_wait_s: time open after the first trip of a streak.
        open_wait_multiplier: each further trip in a row multiplies the wait (>= 1).
        max_open_wait_s: cap on the open wait.
        half_open_max_calls: concurrent probes permitted in half-open; all must succeed.
        half_open_max_wait_s: after this long with every probe slot taken by an
            outstanding probe, those probes are forgotten and new ones are admitted.

    """

    consecutive_failures: int = 5
    window_size: int = 20
    min_calls: int = 10
    failure_rate: float = 0.5
    slow_call_s: float | None = None
    open_wait_s: float = 30.0
    open_wait_multiplier: float = 2.0
    max_open_wait_s: float = 300.0
    half_open_max_calls: int = 1
    half_open_max_wait_s: float = 30.0

    def __post_init__(self) -> None:
        """Reject nonsensical settings early (ValueError)."""
        check_int("consecutive_failures", self.consecutive_failures, 1)
        check_int("window_size", self.window_size, 1)
        check_int("min_calls", self.min_calls, 1)
        if self.min_calls > self.window_size:
            raise ValueError(
                f"min_calls ({self.min_calls}) cannot exceed window_size ({self.window_size})"
            )
        check_positive("failure_rate", self.failure_rate)
        if self.failure_rate > 1:
            raise ValueError(f"failure_rate must be in (0, 1], got {self.failure_rate!r}")
        if self.slow_call_s is not None:
            check_positive("slow_call_s", self.slow_call_s)
        check_positive("open_wait_s", self.open_wait_s)
        check_positive("open_wait_multiplier", self.open_wait_multiplier)
        if self.open_wait_multiplier < 1:
            raise ValueError(
                f"open_wait_multiplier must be >= 1, got {self.open_wait_multiplier!r}"
            )
        check_positive("max_open_wait_s", self.max_open_wait_s)
        if self.max_open_wait_s < self.open_wait_s:
            raise ValueError(
                f"max_open_wait_s ({self.max_open_wait_s}) must be >= "
                f"open_wait_s ({self.open_wait_s})"
            )
        check_int("half_open_max_calls", self.half_open_max_calls, 1)
        check_positive("half_open_max_wait_s", self.half_open_max_wait_s)

    def open_wait_for(self, consecutive_trips: int) -> float:
        """Open wait after the ``consecutive_trips``-th trip in a row (1-based).

        ``min(max_open_wait_s, open_wait_s * open_wait_multiplier ** (trips - 1))``,
        computed without overflowing for any streak length. `CircuitBreaker` trips with it,
        so this is the one place the open wait's arithmetic lives.
        """
        if consecutive_trips < 1:
            raise ValueError(f"consecutive_trips must be >= 1, got {consecutive_trips!r}")
        wait = self.open_wait_s
        if self.open_wait_multiplier == 1:
            return min(wait, self.max_open_wait_s)
        for _ in range(consecutive_trips - 1):
            wait *= self.open_wait_multiplier
            if wait >= self.max_open_wait_s:
                return self.max_open_wait_s
        return min(wait, self.max_open_wait_s)


_DEFAULT_CONFIG = BreakerConfig()
_SYSTEM_CLOCK = SystemClock()


class CircuitOpenError(Exception):
    """Raised by :meth:`CircuitBreaker.acquire` when a call is not permitted.

    ``retry_after_s`` is the time until the breaker will admit a probe (>= 0): the rest of
    the open wait, or 0.0 when it is half-open and its probe slots are taken (a verdict
    is imminent). Callers turning this into ``Retry-After`` should round up to >= 1 s.
    """

    def __init__(self, name: str, retry_after_s: float) -> None:
        retry_after_s = max(0.0, retry_after_s)
        super().__init__(f"circuit breaker {name!r} is open; retry after {retry_after_s:.3f} s")
        self.name = name
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float]]:
        return (CircuitOpenError, (self.name, self.retry_after_s))


class CircuitBreaker:
    """A single-event-loop circuit breaker (closed, open, half-open).

    Raw API for hot paths::

        generation = breaker.acquire()  # raises CircuitOpenError
        try:
            response = await do_call()
        except asyncio.CancelledError:
            breaker.release(generation)
            raise
        except Exception:
            breaker.record_failure(generation, elapsed)
            raise
        breaker.record_success(generation, elapsed)

    or simply ``await breaker.call(do_call, is_failure=lambda r: r.status >= 500)``.

    The int attributes ``calls``, ``successes``, ``failure_count``, ``slow_calls``,
    ``rejected``, ``trips``, ``stale_results`` and ``stale_probe_resets`` are monotonically
    increasing totals (``reset()`` keeps them) for a metrics collector to read at scrape
    time.
    """

    __slots__ = (
        "_clock",
        "_config",
        "_consecutive_failures",
        "_consecutive_trips",
        "_epoch",
        "_half_open_max",
        "_half_open_max_wait",
        "_last_probe_at",
        "_last_trip_at",
        "_max_consecutive",
        "_min_calls",
        "_on_state_change",
        "_open_until",
        "_open_wait",
        "_probe_permits",
        "_probe_successes",
        "_rate",
        "_slow_s",
        "_state",
        "_win",
        "_win_failures",
        "_win_len",
        "_win_pos",
        "_window_size",
        "calls",
        "failure_count",
        "name",
        "rejected",
        "slow_calls",
        "stale_probe_resets",
        "stale_results",
        "successes",
        "trips",
    )

    def __init__(
        self,
        name: str,
        config: BreakerConfig = _DEFAULT_CONFIG,
        *,
        clock: Clock = _SYSTEM_CLOCK,
        on_state_change: StateListener | None = None,
    ) -> None:
        if not name:
            raise ValueError("a circuit breaker needs a non-empty name")
        self.name = name
        self._config = config
        self._clock = clock
        self._on_state_change = on_state_change
        # Config copied into slots: one attribute lookup on the hot path, not two.
        self._max_consecutive = config.consecutive_failures
        self._window_size = config.window_size
        self._min_calls = config.min_calls
        self._rate = config.failure_rate
        self._slow_s = config.slow_call_s
        self._half_open_max = config.half_open_max_calls
        self._half_open_max_wait = config.half_open_max_wait_s

        self._state = _CLOSED
        self._epoch = 0
        # Count-based sliding window: a preallocated ring of outcomes (True = failure).
        self._win: list[bool] = [False] * config.window_size
        self._win_pos = 0
        self._win_len = 0
        self._win_failures = 0
        self._consecutive_failures = 0
        self._consecutive_trips = 0
        self._open_wait = 0.0
        self._open_until = 0.0
        self._last_trip_at: float | None = None
        self._probe_permits = 0  # half-open permits granted and not released
        self._probe_successes = 0
        self._last_probe_at = 0.0

        self.calls = 0
        self.successes = 0
        self.failure_count = 0
        self.slow_calls = 0
        self.rejected = 0
        self.trips = 0
        self.stale_results = 0
        self.stale_probe_resets = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state.value!r})"

    # ------------------------------------------------------------------ read-only views

    @property
    def config(self) -> BreakerConfig:
        """The configuration this breaker was built with."""
        return self._config

    @property
    def state(self) -> BreakerState:
        """Current state; an open breaker whose wait is over becomes half-open here."""
        if self._state is _OPEN:
            now = self._clock.monotonic()
            if now >= self._open_until:
                self._to_half_open(now)
        return self._state

    @property
    def retry_after_s(self) -> float:
        """Seconds until an open breaker admits a probe; 0.0 when not open."""
        if self.state is _OPEN:
            return max(0.0, self._open_until - self._clock.monotonic())
        return 0.0

    @property
    def consecutive_failures(self) -> int:
        """Failures in a row (reset by a success in the closed state, or a close)."""
        return self._consecutive_failures

    @property
    def consecutive_trips(self) -> int:
        """Trips since the breaker last closed (drives the open-wait growth)."""
        return self._consecutive_trips

    @property
    def window_calls(self) -> int:
        """Outcomes currently held in the sliding window."""
        return self._win_len

    @property
    def failure_rate(self) -> float | None:
        """Failure share of the window, or None while it holds fewer than ``min_calls``."""
        if self._win_len < self._min_calls:
            return None
        return self._win_failures / self._win_len

    # ------------------------------------------------------------------ hot path

    def acquire(self) -> int:
        """Ask to make a call; return its permit generation or raise CircuitOpenError."""
        if self._state is _CLOSED:
            self.calls += 1
            return self._epoch
        return self._acquire_not_closed()

    def _acquire_not_closed(self) -> int:
        now = self._clock.monotonic()
        if self._state is _OPEN:
            if now < self._open_until:
                self.rejected += 1
                raise CircuitOpenError(self.name, self._open_until - now)
            self._to_half_open(now)
        # Half-open: a bounded number of probes.
        if self._probe_permits >= self._half_open_max:
            if now - self._last_probe_at < self._half_open_max_wait:
                self.rejected += 1
                raise CircuitOpenError(self.name, 0.0)
            self._forget_stale_probes()
        self._probe_permits += 1
        self._last_probe_at = now
        self.calls += 1
        return self._epoch

    def record_success(self, generation: int, duration_s: float) -> None:
        """Report a completed call; a slow one (> ``slow_call_s``) counts as a failure."""
        slow = self._slow_s
        if slow is not None and duration_s > slow:
            self.slow_calls += 1
            self._failed(generation)
            return
        self.successes += 1
        if generation != self._epoch:
            self.stale_results += 1
            return
        state = self._state
        if state is _CLOSED:
            self._consecutive_failures = 0
            pos = self._win_pos
            win = self._win
            if self._win_len == self._window_size:
                if win[pos]:
                    win[pos] = False
                    self._win_failures -= 1
                self._win_pos = 0 if pos + 1 == self._window_size else pos + 1
            else:
                win[pos] = False
                self._win_len += 1
                self._win_pos = 0 if pos + 1 == self._window_size else pos + 1
                # A growing window can reach min_calls on a success with the rate already
                # over the threshold (resilience4j also judges after successes).
                if (
                    self._win_len >= self._min_calls
                    and self._win_failures / self._win_len >= self._rate
                ):
                    self._trip()
        elif state is _HALF_OPEN:
            self._probe_successes += 1
            if self._probe_successes >= self._half_open_max:
                self._close()

    def record_failure(self, generation: int, duration_s: float = 0.0) -> None:
        """Report a failed call (exception, 5xx, timeout...)."""
        slow = self._slow_s
        if slow is not None and duration_s > slow:
            self.slow_calls += 1
        self._failed(generation)

    def release(self, generation: int) -> None:
        """Give a permit back without a verdict (cancellation): frees a half-open slot."""
        if (
            generation == self._epoch
            and self._state is _HALF_OPEN
            and self._probe_permits > self._probe_successes
        ):
            self._probe_permits -= 1

    def _failed(self, generation: int) -> None:
        self.failure_count += 1
        if generation != self._epoch:
            self.stale_results += 1
            return
        state = self._state
        if state is _CLOSED:
            self._consecutive_failures += 1
            pos = self._win_pos
            win = self._win
            if self._win_len == self._window_size:
                if not win[pos]:
                    win[pos] = True
                    self._win_failures += 1
            else:
                win[pos] = True
                self._win_failures += 1
                self._win_len += 1
            self._win_pos = 0 if pos + 1 == self._window_size else pos + 1
            if self._consecutive_failures >= self._max_consecutive or (
                self._win_len >= self._min_calls
                and self._win_failures / self._win_len >= self._rate
            ):
                self._trip()
        elif state is _HALF_OPEN:
            self._consecutive_failures += 1
            self._trip()

    # ------------------------------------------------------------------ convenience

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        is_failure: Callable[[T], bool] | None = None,
    ) -> T:
        """Run ``fn()`` under the breaker and return its result.

        An exception is a failure and is re-raised. A result for which ``is_failure`` is
        true (e.g. an HTTP 5xx) is a failure but is still returned. Cancellation (and any
        other BaseException) gives the permit back without a verdict.

        Raises:
            CircuitOpenError: the breaker does not permit the call.

        """
        generation = self.acquire()
        clock = self._clock
        start = clock.monotonic()
        try:
            result = await fn()
        except Exception:
            self.record_failure(generation, clock.monotonic() - start)
            raise
        except BaseException:
            self.release(generation)
            raise
        duration = clock.monotonic() - start
        try:
            failed = is_failure is not None and is_failure(result)
        except BaseException:
            self.release(generation)
            raise
        if failed:
            self.record_failure(generation, duration)
        else:
            self.record_success(generation, duration)
        return result

    # ------------------------------------------------------------------ admin

    def reset(self) -> None:
        """Close the breaker by hand: clears the window, failure count and trip streak.

        Results of calls admitted before the reset are ignored; totals are kept.
        """
        self._clear_window()
        self._consecutive_failures = 0
        self._consecutive_trips = 0
        self._open_wait = 0.0
        self._open_until = 0.0
        self._transition(_CLOSED, force_epoch=True)

    def health_check_passed(self) -> bool:
        """An active health check saw the dependency answer: end the open wait now.

        The next call is let through as a half-open probe instead of waiting out an open
        time that may have doubled many times during a long outage (Envoy's active health
        checking readmits a host the same way). The trip streak is kept, so if the probe
        call fails the breaker reopens with the longer wait. True if the wait was ended.
        """
        if self._state is not _OPEN:
            return False
        self._open_until = min(self._open_until, self._clock.monotonic())
        return True

    def snapshot(self) -> dict[str, object]:
        """JSON-serialisable view for ``/health`` and admin endpoints."""
        state = self.state
        last_trip = self._last_trip_at
        return {
            "name": self.name,
            "state": state.value,
            "open": state is _OPEN,
            "failures": self._consecutive_failures,
            "failure_rate": self.failure_rate,
            "window_calls": self._win_len,
            "window_failures": self._win_failures,
            "trips": self.trips,
            "consecutive_trips": self._consecutive_trips,
            "last_trip_at": (
                None if last_trip is None else datetime.fromtimestamp(last_trip, UTC).isoformat()
            ),
            "retry_after_s": self.retry_after_s,
            "open_wait_s": self._open_wait if state is not _CLOSED else None,
            "half_open_probes": (
                self._probe_permits - self._probe_successes if state is _HALF_OPEN else 0
            ),
            "calls": self.calls,
            "successes": self.successes,
            "failure_count": self.failure_count,
            "slow_calls": self.slow_calls,
            "rejected": self.rejected,
            "stale_results": self.stale_results,
            "stale_probe_resets": self.stale_probe_resets,
        }

    # ------------------------------------------------------------------ transitions

    def _clear_window(self) -> None:
        win = self._win
        for i in range(len(win)):
            win[i] = False
        self._win_pos = 0
        self._win_len = 0
        self._win_failures = 0

    def _trip(self) -> None:
        clock = self._clock
        self.trips += 1
        self._consecutive_trips += 1
        wait = self._config.open_wait_for(self._consecutive_trips)
        self._open_wait = wait
        self._open_until = clock.monotonic() + wait
        self._last_trip_at = clock.time()
        self._transition(_OPEN)

    def _to_half_open(self, now: float) -> None:
        self._last_probe_at = now
        self._transition(_HALF_OPEN)

    def _close(self) -> None:
        self._clear_window()
        self._consecutive_failures = 0
        self._consecutive_trips = 0
        self._transition(_CLOSED)

    def _forget_stale_probes(self) -> None:
        # Every probe still outstanding was granted >= half_open_max_wait_s ago: new
        # epoch so their late results are ignored, keep the successes already counted.
        self._epoch += 1
        self._probe_permits = self._probe_successes
        self.stale_probe_resets += 1
        _log.warning(
            "circuit breaker %r: half-open probes outstanding for >= %.1f s, admitting new ones",
            self.name,
            self._half_open_max_wait,
        )

    def _transition(self, new: BreakerState, *, force_epoch: bool = False) -> None:
        old = self._state
        if old is new and not force_epoch:
            return
        self._state = new
        self._epoch += 1
        self._probe_permits = 0
        self._probe_successes = 0
        if old is not new and self._on_state_change is not None:
            try:
                self._on_state_change(self.name, old, new)
            except Exception:  # noqa: BLE001 - a broken listener must not break the call path
                _log.exception("circuit breaker %r: state listener failed", self.name)


class BreakerRegistry:
    """The breakers of one service, by name (iteration yields the breakers)."""

    __slots__ = ("_breakers",)

    def __init__(self, breakers: Iterable[CircuitBreaker] = ()) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        for breaker in breakers:
            self.add(breaker)

    def add(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Register ``breaker`` (names are unique) and return it."""
        if breaker.name in self._breakers:
            raise ValueError(f"a circuit breaker named {breaker.name!r} is already registered")
        self._breakers[breaker.name] = breaker
        return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """Return the breaker called ``name``, or None."""
        return self._breakers.get(name)

    def __getitem__(self, name: str) -> CircuitBreaker:
        return self._breakers[name]

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self._breakers.values())

    def __len__(self) -> int:
        return len(self._breakers)

    def names(self) -> list[str]:
        """Return the registered names, in registration order."""
        return list(self._breakers)

    def snapshots(self) -> dict[str, dict[str, object]]:
        """``{name: breaker.snapshot()}`` for ``/health``."""
        return {name: breaker.snapshot() for name, breaker in self._breakers.items()}

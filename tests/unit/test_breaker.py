"""Circuit breaker semantics (DESIGN.md §5), driven by a ManualClock: no real sleeping."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from sensor_backend.core.breaker import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from sensor_backend.core.clock import Clock, ManualClock, SystemClock

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN

# Rate-only configuration: consecutive failures never trip it first.
RATE_ONLY = {"consecutive_failures": 1000, "window_size": 20, "min_calls": 10}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(clock: ManualClock, transitions: list[Any] | None = None, **cfg: Any) -> CircuitBreaker:
    listener = None if transitions is None else (lambda *args: transitions.append(args))
    return CircuitBreaker("svc", BreakerConfig(**cfg), clock=clock, on_state_change=listener)


def succeed(breaker: CircuitBreaker, duration_s: float = 0.0) -> None:
    breaker.record_success(breaker.acquire(), duration_s)


def fail(breaker: CircuitBreaker, duration_s: float = 0.0) -> None:
    breaker.record_failure(breaker.acquire(), duration_s)


def run(breaker: CircuitBreaker, outcomes: str) -> None:
    """Feed outcomes: 'S' success, 'F' failure."""
    for outcome in outcomes:
        if outcome == "S":
            succeed(breaker)
        else:
            fail(breaker)


def trip(breaker: CircuitBreaker) -> None:
    while breaker.state is CLOSED:
        fail(breaker)


async def ok() -> str:
    return "ok"


# ---------------------------------------------------------------------------- closed -> open


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_opens_after_n_consecutive_failures(clock: ManualClock, threshold: int) -> None:
    """N consecutive failures open the breaker, N-1 do not."""
    breaker = make(clock, consecutive_failures=threshold)
    run(breaker, "F" * (threshold - 1))
    assert breaker.state is CLOSED
    fail(breaker)
    assert breaker.state is OPEN
    assert breaker.consecutive_failures == threshold


def test_success_resets_consecutive_failures(clock: ManualClock) -> None:
    """A success in between restarts the consecutive-failure count."""
    breaker = make(clock, consecutive_failures=3, window_size=20, min_calls=20)
    run(breaker, "FFSFFSFF")
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 2


@pytest.mark.parametrize(
    ("outcomes", "opens_at"),
    [
        ("SF" * 5, 10),  # 50 % exactly at the 10th call: >= threshold opens
        ("S" * 20 + "F" * 10, 30),  # full window: 10 of the last 20 failed
        ("FSFSFSFSF", None),  # 5/9 but below min_calls
    ],
)
def test_opens_on_failure_rate_with_min_calls(
    clock: ManualClock, outcomes: str, opens_at: int | None
) -> None:
    """The failure rate opens the breaker only once the window holds min_calls outcomes."""
    breaker = make(clock, **RATE_ONLY, failure_rate=0.5)
    for index, outcome in enumerate(outcomes, start=1):
        run(breaker, outcome)
        if opens_at is not None and index >= opens_at:
            assert breaker.state is OPEN, index
            break
        assert breaker.state is CLOSED, index


def test_below_min_calls_rate_does_not_open(clock: ManualClock) -> None:
    """8 failures out of 9 calls stay closed when min_calls is 10 (rate not judged)."""
    breaker = make(clock, **RATE_ONLY)
    run(breaker, "FFFFSFFFF")
    assert breaker.state is CLOSED
    assert breaker.failure_rate is None
    assert breaker.window_calls == 9


def test_success_reaching_min_calls_can_open_on_rate(clock: ManualClock) -> None:
    """A success that brings the window to min_calls opens it if the rate is already over."""
    breaker = make(clock, **RATE_ONLY, failure_rate=0.5)
    run(breaker, "FSFSFSFSF")  # 5 failures in 9: not judged yet
    assert breaker.state is CLOSED
    succeed(breaker)  # 5/10 = 50 %
    assert breaker.state is OPEN


def test_window_slides_over_last_n_outcomes(clock: ManualClock) -> None:
    """Only the last window_size outcomes count toward the failure rate."""
    breaker = make(clock, consecutive_failures=1000, window_size=4, min_calls=4, failure_rate=0.75)
    run(breaker, "FFSS")
    assert breaker.failure_rate == 0.5
    run(breaker, "SS")  # the two failures slide out
    assert breaker.failure_rate == 0.0
    assert breaker.window_calls == 4
    run(breaker, "FF")
    assert breaker.failure_rate == 0.5
    assert breaker.state is CLOSED
    fail(breaker)  # S F F F
    assert breaker.state is OPEN


# ---------------------------------------------------------------------------- open


def test_open_rejects_with_retry_after(clock: ManualClock) -> None:
    """An open breaker rejects calls with CircuitOpenError carrying the time left."""
    breaker = make(clock, consecutive_failures=1, open_wait_s=30.0)
    fail(breaker)
    clock.advance(10.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.name == "svc"
    assert info.value.retry_after_s == pytest.approx(20.0)
    assert breaker.retry_after_s == pytest.approx(20.0)
    assert breaker.rejected == 1
    assert breaker.calls == 1


async def test_open_call_rejects_without_running_fn(clock: ManualClock) -> None:
    """call() on an open breaker raises CircuitOpenError and never invokes fn."""
    breaker = make(clock, consecutive_failures=1)
    fail(breaker)
    invoked = False

    async def fn() -> str:
        nonlocal invoked
        invoked = True
        return "x"

    with pytest.raises(CircuitOpenError):
        await breaker.call(fn)
    assert not invoked


def test_open_to_half_open_after_wait(clock: ManualClock) -> None:
    """After open_wait_s the breaker turns half-open lazily and admits a probe."""
    transitions: list[Any] = []
    breaker = make(clock, transitions, consecutive_failures=1, open_wait_s=30.0)
    fail(breaker)
    clock.advance(29.999)
    assert breaker.state is OPEN
    clock.advance(0.001)
    assert breaker.retry_after_s == 0.0
    assert breaker.state is HALF_OPEN
    breaker.acquire()
    assert transitions == [("svc", CLOSED, OPEN), ("svc", OPEN, HALF_OPEN)]


def test_acquire_itself_moves_open_to_half_open(clock: ManualClock) -> None:
    """acquire() alone (without reading state) performs the open -> half-open transition."""
    breaker = make(clock, consecutive_failures=1, open_wait_s=5.0)
    fail(breaker)
    clock.advance(5.0)
    breaker.acquire()
    assert breaker._state is HALF_OPEN


# ---------------------------------------------------------------------------- half-open


def half_open(clock: ManualClock, breaker: CircuitBreaker) -> None:
    trip(breaker)
    clock.advance(breaker.retry_after_s)
    assert breaker.state is HALF_OPEN


@pytest.mark.parametrize("probes", [1, 2, 3])
def test_half_open_closes_after_all_probes_succeed(clock: ManualClock, probes: int) -> None:
    """Half-open closes only when all half_open_max_calls probes have succeeded."""
    breaker = make(clock, consecutive_failures=1, half_open_max_calls=probes)
    half_open(clock, breaker)
    generations = [breaker.acquire() for _ in range(probes)]
    for generation in generations[:-1]:
        breaker.record_success(generation, 0.0)
        assert breaker.state is HALF_OPEN
    breaker.record_success(generations[-1], 0.0)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.window_calls == 0


@pytest.mark.parametrize(("probes", "failing"), [(1, 0), (3, 0), (3, 2)])
def test_half_open_reopens_on_probe_failure(clock: ManualClock, probes: int, failing: int) -> None:
    """Any probe failure in half-open reopens the breaker at once."""
    breaker = make(clock, consecutive_failures=1, half_open_max_calls=probes)
    half_open(clock, breaker)
    generations = [breaker.acquire() for _ in range(probes)]
    for generation in generations[:failing]:
        breaker.record_success(generation, 0.0)
    breaker.record_failure(generations[failing])
    assert breaker.state is OPEN
    assert breaker.trips == 2


@pytest.mark.parametrize("probes", [1, 2, 3])
def test_half_open_probe_limit_rejects_extra_calls(clock: ManualClock, probes: int) -> None:
    """Half-open admits half_open_max_calls concurrent probes and rejects the next one."""
    breaker = make(clock, consecutive_failures=1, half_open_max_calls=probes)
    half_open(clock, breaker)
    for _ in range(probes):
        breaker.acquire()
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after_s == 0.0
    assert breaker.state is HALF_OPEN


async def test_half_open_concurrent_call_rejected_while_probe_runs(clock: ManualClock) -> None:
    """While a probe runs through call(), a concurrent call() is rejected."""
    breaker = make(clock, consecutive_failures=1)
    half_open(clock, breaker)
    release = asyncio.Event()

    async def slow_probe() -> str:
        await release.wait()
        return "probe"

    task = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    release.set()
    assert await task == "probe"
    assert breaker.state is CLOSED
    assert await breaker.call(ok) == "ok"


def test_stuck_probe_does_not_wedge_half_open(clock: ManualClock) -> None:
    """After half_open_max_wait_s a never-finishing probe is forgotten and a new one admitted."""
    breaker = make(clock, consecutive_failures=1, half_open_max_wait_s=30.0)
    half_open(clock, breaker)
    stuck = breaker.acquire()
    clock.advance(29.9)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(0.1)
    fresh = breaker.acquire()
    assert fresh != stuck
    assert breaker.stale_probe_resets == 1
    breaker.record_failure(stuck)  # the forgotten probe's late verdict is ignored
    assert breaker.state is HALF_OPEN
    breaker.record_success(fresh, 0.0)
    assert breaker.state is CLOSED


def test_stuck_probe_timer_counts_from_newest_probe(clock: ManualClock) -> None:
    """Probe slots are only recycled once the newest outstanding probe is that old."""
    breaker = make(clock, consecutive_failures=1, half_open_max_calls=2, half_open_max_wait_s=30.0)
    half_open(clock, breaker)
    breaker.acquire()
    clock.advance(20.0)
    breaker.acquire()
    clock.advance(15.0)  # oldest is 35 s old, newest only 15 s
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(15.0)
    breaker.acquire()
    assert breaker.stale_probe_resets == 1


# ---------------------------------------------------------------------------- open wait growth


@pytest.mark.parametrize(
    ("trips", "expected"),
    [(1, 30.0), (2, 60.0), (3, 120.0), (4, 240.0), (5, 300.0), (6, 300.0), (10_000, 300.0)],
)
def test_open_wait_for_doubles_and_caps(trips: int, expected: float) -> None:
    """open_wait_for follows min(max, base * multiplier ** (trips - 1)) without overflow."""
    assert BreakerConfig().open_wait_for(trips) == expected


def test_open_wait_doubles_on_repeated_trips_up_to_cap(clock: ManualClock) -> None:
    """Each failed half-open probe reopens with a doubled wait, capped at max_open_wait_s."""
    breaker = make(clock, consecutive_failures=1)
    fail(breaker)
    waits = [breaker.retry_after_s]
    for _ in range(5):
        clock.advance(breaker.retry_after_s)
        fail(breaker)  # the probe fails
        waits.append(breaker.retry_after_s)
    assert waits == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    assert breaker.consecutive_trips == 6
    assert breaker.trips == 6


def test_streak_resets_after_close(clock: ManualClock) -> None:
    """A successful close resets the trip streak: the next trip waits open_wait_s again."""
    breaker = make(clock, consecutive_failures=1)
    fail(breaker)
    clock.advance(breaker.retry_after_s)
    fail(breaker)
    assert breaker.retry_after_s == 60.0
    clock.advance(60.0)
    succeed(breaker)
    assert breaker.state is CLOSED
    assert breaker.consecutive_trips == 0
    fail(breaker)
    assert breaker.retry_after_s == 30.0


# ---------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize(
    ("duration", "slow"),
    [(0.5, False), (1.0, False), (1.0001, True), (5.0, True)],
)
def test_slow_success_counts_as_failure(clock: ManualClock, duration: float, *, slow: bool) -> None:
    """A success over slow_call_s is a failure and slow; exactly at the limit it is not."""
    breaker = make(clock, consecutive_failures=2, slow_call_s=1.0)
    succeed(breaker, duration)
    succeed(breaker, duration)
    assert breaker.state is (OPEN if slow else CLOSED)
    assert breaker.slow_calls == (2 if slow else 0)
    assert breaker.failure_count == (2 if slow else 0)
    assert breaker.successes == (0 if slow else 2)


async def test_call_times_fn_with_clock_for_slow_calls(clock: ManualClock) -> None:
    """call() measures duration with the injected clock, so a slow fn is a failure."""
    breaker = make(clock, consecutive_failures=1, slow_call_s=2.0)

    async def slow() -> str:
        clock.advance(3.0)
        return "late"

    assert await breaker.call(slow) == "late"
    assert breaker.state is OPEN
    assert breaker.slow_calls == 1


@pytest.mark.parametrize(
    ("status", "failed"), [(200, False), (404, False), (500, True), (503, True)]
)
async def test_is_failure_result_counts_as_failure_but_is_returned(
    clock: ManualClock, status: int, *, failed: bool
) -> None:
    """A result flagged by is_failure (HTTP 5xx) is a failure, yet call() still returns it."""
    breaker = make(clock, consecutive_failures=1)

    async def respond() -> int:
        return status

    assert await breaker.call(respond, is_failure=lambda s: s >= 500) == status
    assert breaker.state is (OPEN if failed else CLOSED)
    assert breaker.failure_count == int(failed)
    assert breaker.successes == int(not failed)


async def test_call_exception_is_failure_and_reraised(clock: ManualClock) -> None:
    """An exception from fn counts as a failure and propagates unchanged."""
    breaker = make(clock, consecutive_failures=2)
    error = ConnectionError("down")

    async def boom() -> None:
        raise error

    with pytest.raises(ConnectionError) as info:
        await breaker.call(boom)
    assert info.value is error
    assert breaker.consecutive_failures == 1


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_stale_generation_result_ignored(clock: ManualClock, outcome: str) -> None:
    """A result admitted under an older epoch changes counters but never the state."""
    breaker = make(clock, consecutive_failures=2)
    slow_call = breaker.acquire()  # started while closed
    run(breaker, "FF")  # breaker opens meanwhile
    clock.advance(breaker.retry_after_s)
    assert breaker.state is HALF_OPEN
    probe = breaker.acquire()
    if outcome == "success":
        breaker.record_success(slow_call, 0.0)
    else:
        breaker.record_failure(slow_call)
    assert breaker.state is HALF_OPEN
    assert breaker.stale_results == 1
    breaker.record_success(probe, 0.0)
    assert breaker.state is CLOSED


def test_stale_failure_does_not_trip_closed_breaker(clock: ManualClock) -> None:
    """Failures from calls admitted before a close do not count against the new closed epoch."""
    breaker = make(clock, consecutive_failures=1)
    old = [breaker.acquire() for _ in range(3)]
    breaker.record_failure(old[0])
    clock.advance(breaker.retry_after_s)
    succeed(breaker)
    assert breaker.state is CLOSED
    for generation in old[1:]:
        breaker.record_failure(generation)
    assert breaker.state is CLOSED
    assert breaker.failure_count == 3


async def test_cancellation_releases_probe_slot(clock: ManualClock) -> None:
    """A cancelled half-open probe is neither success nor failure and frees its slot."""
    breaker = make(clock, consecutive_failures=1)
    half_open(clock, breaker)
    started = asyncio.Event()

    async def hang() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(breaker.call(hang))
    await started.wait()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    failures, successes = breaker.failure_count, breaker.successes
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (breaker.failure_count, breaker.successes) == (failures, successes)
    assert breaker.state is HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


async def test_cancellation_in_closed_state_is_not_counted(clock: ManualClock) -> None:
    """Cancelling a call while closed records no outcome at all."""
    breaker = make(clock)

    async def hang() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (breaker.successes, breaker.failure_count, breaker.window_calls) == (0, 0, 0)


def test_release_of_unknown_or_stale_permit_is_harmless(clock: ManualClock) -> None:
    """release() with a stale generation does not free a current probe slot."""
    breaker = make(clock, consecutive_failures=1)
    old = breaker.acquire()
    breaker.record_failure(old)
    clock.advance(breaker.retry_after_s)
    breaker.acquire()
    breaker.release(old)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()


# ---------------------------------------------------------------------------- admin and views


def test_reset_closes_and_clears_everything(clock: ManualClock) -> None:
    """reset() closes, clears window and failures, resets the streak, ignores in-flight calls."""
    transitions: list[Any] = []
    breaker = make(clock, transitions, consecutive_failures=1)
    in_flight = breaker.acquire()
    fail(breaker)
    clock.advance(30.0)
    fail(breaker)  # second trip in a row: 60 s
    breaker.reset()
    assert breaker.state is CLOSED
    assert transitions[-1] == ("svc", OPEN, CLOSED)
    assert (breaker.consecutive_failures, breaker.consecutive_trips, breaker.window_calls) == (
        0,
        0,
        0,
    )
    assert breaker.trips == 2  # totals survive
    breaker.record_failure(in_flight)
    assert breaker.state is CLOSED
    fail(breaker)
    assert breaker.retry_after_s == 30.0


def test_snapshot_fields(clock: ManualClock) -> None:
    """snapshot() is JSON-serialisable and reports state, failures, trips and counters."""
    breaker = make(clock, consecutive_failures=5)
    run(breaker, "S" + "F" * 5)
    clock.advance(12.5)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    snap = breaker.snapshot()
    json.dumps(snap)
    assert {
        "name",
        "state",
        "open",
        "failures",
        "failure_rate",
        "window_calls",
        "trips",
        "consecutive_trips",
        "last_trip_at",
        "retry_after_s",
        "calls",
        "successes",
        "failure_count",
        "slow_calls",
        "rejected",
    } <= snap.keys()
    assert snap["name"] == "svc"
    assert snap["state"] == "open"
    assert snap["open"] is True
    assert snap["failures"] == 5
    assert snap["failure_rate"] is None  # 6 calls < min_calls 10
    assert snap["window_calls"] == 6
    assert (snap["trips"], snap["consecutive_trips"]) == (1, 1)
    assert snap["last_trip_at"] == "2023-11-14T22:13:20+00:00"
    assert snap["retry_after_s"] == pytest.approx(17.5)
    assert (snap["calls"], snap["successes"], snap["failure_count"]) == (6, 1, 5)
    assert (snap["slow_calls"], snap["rejected"]) == (0, 1)


def test_snapshot_of_fresh_breaker(clock: ManualClock) -> None:
    """A fresh breaker's snapshot is closed, with no trip time and zero counters."""
    snap = make(clock).snapshot()
    assert snap["state"] == "closed"
    assert snap["open"] is False
    assert snap["last_trip_at"] is None
    assert snap["retry_after_s"] == 0.0
    assert snap["trips"] == snap["calls"] == snap["rejected"] == 0


def test_snapshot_reports_failure_rate_once_min_calls(clock: ManualClock) -> None:
    """failure_rate is the window's failure share once it holds min_calls outcomes."""
    breaker = make(clock, **RATE_ONLY)
    run(breaker, "SSSSSSSFFS")
    assert breaker.snapshot()["failure_rate"] == pytest.approx(0.2)


def test_listener_sees_every_transition_and_cannot_break_calls(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The listener is told of every transition; an exception in it is logged, not raised."""
    seen: list[tuple[BreakerState, BreakerState]] = []

    def listener(name: str, old: BreakerState, new: BreakerState) -> None:
        seen.append((old, new))
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker(
        "svc", BreakerConfig(consecutive_failures=1), clock=clock, on_state_change=listener
    )
    with caplog.at_level(logging.ERROR):
        fail(breaker)
        clock.advance(30.0)
        fail(breaker)
        clock.advance(60.0)
        succeed(breaker)
    assert seen == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    assert "listener failed" in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"consecutive_failures": 0},
        {"consecutive_failures": 1.5},
        {"consecutive_failures": True},
        {"window_size": 0},
        {"min_calls": 0},
        {"min_calls": 21},
        {"failure_rate": 0.0},
        {"failure_rate": 1.01},
        {"failure_rate": float("nan")},
        {"slow_call_s": 0.0},
        {"slow_call_s": float("inf")},
        {"open_wait_s": -1.0},
        {"open_wait_multiplier": 0.5},
        {"max_open_wait_s": 10.0},
        {"half_open_max_calls": 0},
        {"half_open_max_wait_s": 0.0},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    """Nonsensical breaker settings raise ValueError."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BreakerConfig(**kwargs)


def test_config_defaults_match_design() -> None:
    """The defaults are DESIGN.md §5's starting points."""
    config = BreakerConfig()
    assert (config.consecutive_failures, config.window_size, config.min_calls) == (5, 20, 10)
    assert (config.failure_rate, config.slow_call_s) == (0.5, None)
    assert (config.open_wait_s, config.open_wait_multiplier, config.max_open_wait_s) == (
        30.0,
        2.0,
        300.0,
    )
    assert (config.half_open_max_calls, config.half_open_max_wait_s) == (1, 30.0)


def test_circuit_open_error_attributes() -> None:
    """CircuitOpenError carries the breaker name and a non-negative retry_after_s."""
    error = CircuitOpenError("auth", -0.5)
    assert (error.name, error.retry_after_s) == ("auth", 0.0)
    assert "auth" in str(error)


def test_registry_lists_and_snapshots_breakers(clock: ManualClock) -> None:
    """The registry holds unique names, iterates breakers and snapshots them all."""
    auth = CircuitBreaker("auth", clock=clock)
    sensor = CircuitBreaker("sensor", clock=clock)
    registry = BreakerRegistry([auth])
    assert registry.add(sensor) is sensor
    with pytest.raises(ValueError, match="already registered"):
        registry.add(CircuitBreaker("auth"))
    assert registry.get("auth") is auth
    assert registry.get("missing") is None
    assert registry["sensor"] is sensor
    assert "auth" in registry
    assert len(registry) == 2
    assert list(registry) == [auth, sensor]
    assert registry.names() == ["auth", "sensor"]
    snaps = registry.snapshots()
    assert set(snaps) == {"auth", "sensor"}
    assert snaps["auth"]["state"] == "closed"


def test_empty_name_rejected() -> None:
    """A breaker needs a name (it labels metrics and /health)."""
    with pytest.raises(ValueError, match="name"):
        CircuitBreaker("")


def test_clocks() -> None:
    """ManualClock moves both readings only forward; SystemClock satisfies the Clock protocol."""
    manual = ManualClock(start_monotonic=5.0, start_time=100.0)
    manual.advance(2.5)
    assert (manual.monotonic(), manual.time()) == (7.5, 102.5)
    with pytest.raises(ValueError, match="forward"):
        manual.advance(-1.0)
    assert isinstance(manual, Clock)
    assert isinstance(SystemClock(), Clock)
    assert SystemClock().monotonic() > 0


def test_a_passed_health_check_ends_the_open_wait_but_keeps_the_streak() -> None:
    """health_check_passed lets the next call probe at once; a failed probe still doubles."""
    clock = ManualClock()
    config = BreakerConfig(consecutive_failures=1, open_wait_s=10.0, max_open_wait_s=100.0)
    breaker = CircuitBreaker("dep", config, clock=clock)
    breaker.record_failure(breaker.acquire())
    assert breaker.state is BreakerState.OPEN
    assert breaker.health_check_passed() is True
    probe = breaker.acquire()  # no CircuitOpenError: half-open now
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure(probe)
    assert breaker.retry_after_s == pytest.approx(20.0)
    assert breaker.health_check_passed() is True
    breaker.record_success(breaker.acquire(), 0.01)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.health_check_passed() is False

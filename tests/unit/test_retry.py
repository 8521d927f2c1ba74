"""Retry loop, full-jitter backoff and retry budget (DESIGN.md §5), with no real sleeping."""

from __future__ import annotations

import asyncio
import json
import random
from typing import TYPE_CHECKING, Any

import pytest

from sensor_backend.core.clock import ManualClock
from sensor_backend.core.retry import RetryBudget, RetryPolicy, backoff_s, retry_async

if TYPE_CHECKING:
    from collections.abc import Iterator

POLICY = RetryPolicy()  # Envoy: 4 attempts, base 25 ms, cap 250 ms


class FakeSleep:
    """An async sleep that only records the delays it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Script:
    """An async callable that plays back outcomes: exceptions are raised, values returned."""

    def __init__(self, *outcomes: Any) -> None:
        self._outcomes: Iterator[Any] = iter(outcomes)
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        outcome = next(self._outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def seeded(seed: int) -> random.Random:
    """Return a reproducible jitter source (not security-sensitive)."""
    return random.Random(seed)  # noqa: S311


def always(_: BaseException) -> bool:
    return True


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# ---------------------------------------------------------------------------- backoff


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 5, 10])
def test_backoff_within_full_jitter_bounds(attempt: int) -> None:
    """Every delay lies in [0, min(cap, base * 2**n)] and spreads over that range."""
    rng = seeded(attempt)
    ceiling = min(POLICY.cap_s, POLICY.base_s * 2**attempt)
    delays = [backoff_s(attempt, POLICY, rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > 0.9 * ceiling
    assert min(delays) < 0.1 * ceiling


def test_backoff_survives_huge_attempt_numbers() -> None:
    """A huge attempt number is capped instead of overflowing."""
    assert 0.0 <= backoff_s(100_000, POLICY, seeded(1)) <= POLICY.cap_s


def test_backoff_rejects_negative_attempt() -> None:
    """Attempt numbers start at 0 (the first retry)."""
    with pytest.raises(ValueError, match="attempt"):
        backoff_s(-1, POLICY, seeded(1))


async def test_sleeps_use_growing_full_jitter_bounds(sleep: FakeSleep) -> None:
    """retry_async sleeps backoff_s(n) before retry n, each within its own bound."""
    fn = Script(*[ConnectionError()] * 3, "ok")
    result = await retry_async(
        fn,
        safe=True,
        policy=POLICY,
        budget=None,
        retry_on=always,
        sleep=sleep,
        rng=seeded(7),
    )
    assert result == "ok"
    assert len(sleep.delays) == 3
    for n, delay in enumerate(sleep.delays):
        assert 0.0 <= delay <= min(POLICY.cap_s, POLICY.base_s * 2**n)
    expected_rng = seeded(7)
    assert sleep.delays == [backoff_s(n, POLICY, expected_rng) for n in range(3)]


# ---------------------------------------------------------------------------- retry loop


async def test_retries_until_success(sleep: FakeSleep) -> None:
    """Transient failures are retried and the eventual result is returned."""
    fn = Script(ConnectionError(), TimeoutError(), 42)
    result = await retry_async(
        fn, safe=True, policy=POLICY, budget=None, retry_on=always, sleep=sleep
    )
    assert result == 42
    assert fn.calls == 3


@pytest.mark.parametrize("max_attempts", [1, 2, 4, 6])
async def test_attempts_exhausted_reraises_last_error(sleep: FakeSleep, max_attempts: int) -> None:
    """After max_attempts tries the last exception propagates."""
    errors = [ConnectionError(f"try {n}") for n in range(max_attempts)]
    fn = Script(*errors)
    with pytest.raises(ConnectionError) as info:
        await retry_async(
            fn,
            safe=True,
            policy=RetryPolicy(max_attempts=max_attempts),
            budget=None,
            retry_on=always,
            sleep=sleep,
        )
    assert info.value is errors[-1]
    assert fn.calls == max_attempts
    assert len(sleep.delays) == max_attempts - 1


@pytest.mark.parametrize("outcome", [ConnectionError("down"), 503])
async def test_unsafe_calls_never_retried(sleep: FakeSleep, outcome: Any) -> None:
    """A call that is not safe to repeat gets exactly one try, for errors and results alike."""
    fn = Script(outcome, "unused")
    kwargs: dict[str, Any] = {
        "safe": False,
        "policy": POLICY,
        "budget": None,
        "retry_on": always,
        "retry_on_result": lambda r: r == 503,
        "sleep": sleep,
    }
    if isinstance(outcome, BaseException):
        with pytest.raises(ConnectionError):
            await retry_async(fn, **kwargs)
    else:
        assert await retry_async(fn, **kwargs) == 503
    assert fn.calls == 1
    assert sleep.delays == []


@pytest.mark.parametrize(
    ("error", "retried"),
    [(ConnectionError(), True), (TimeoutError(), True), (ValueError(), False)],
)
async def test_retry_on_predicate_respected(
    sleep: FakeSleep, error: Exception, *, retried: bool
) -> None:
    """Only exceptions accepted by retry_on are retried; others propagate at once."""
    fn = Script(error, "ok")

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, (ConnectionError, TimeoutError))

    if retried:
        result = await retry_async(
            fn, safe=True, policy=POLICY, budget=None, retry_on=transient, sleep=sleep
        )
        assert result == "ok"
    else:
        with pytest.raises(ValueError):  # noqa: PT011 - the exact instance is what matters
            await retry_async(
                fn, safe=True, policy=POLICY, budget=None, retry_on=transient, sleep=sleep
            )
    assert fn.calls == (2 if retried else 1)


async def test_cancelled_error_never_retried(sleep: FakeSleep) -> None:
    """CancelledError propagates on the first try even if retry_on would accept anything."""
    fn = Script(asyncio.CancelledError(), "ok")
    with pytest.raises(asyncio.CancelledError):
        await retry_async(fn, safe=True, policy=POLICY, budget=None, retry_on=always, sleep=sleep)
    assert fn.calls == 1


async def test_retry_on_result_until_good(sleep: FakeSleep) -> None:
    """A result flagged by retry_on_result (503) is retried until a good one arrives."""
    fn = Script(503, 503, 200)
    result = await retry_async(
        fn,
        safe=True,
        policy=POLICY,
        budget=None,
        retry_on=always,
        retry_on_result=lambda status: status == 503,
        sleep=sleep,
    )
    assert result == 200
    assert fn.calls == 3


async def test_retry_on_result_exhausted_returns_last_result(sleep: FakeSleep) -> None:
    """When retries run out on flagged results, the last result is returned, not raised."""
    fn = Script(503, 502, 504, 500)
    result = await retry_async(
        fn,
        safe=True,
        policy=POLICY,
        budget=None,
        retry_on=always,
        retry_on_result=lambda status: status >= 500,
        sleep=sleep,
    )
    assert result == 500
    assert fn.calls == 4


# ---------------------------------------------------------------------------- budget


async def test_budget_exhaustion_stops_retries(sleep: FakeSleep, clock: ManualClock) -> None:
    """Once the budget is spent, failing calls get one try and the error propagates."""
    budget = RetryBudget(ratio=0.0, min_retries=2, clock=clock)
    first = Script(*[ConnectionError()] * 4)
    with pytest.raises(ConnectionError):
        await retry_async(
            first, safe=True, policy=POLICY, budget=budget, retry_on=always, sleep=sleep
        )
    assert first.calls == 3  # 1 try + the 2 retries the budget allows
    second = Script(ConnectionError(), "unused")
    with pytest.raises(ConnectionError):
        await retry_async(
            second, safe=True, policy=POLICY, budget=budget, retry_on=always, sleep=sleep
        )
    assert second.calls == 1
    assert budget.exhausted == 2
    assert budget.total_calls == 2


@pytest.mark.parametrize(
    ("calls", "ratio", "min_retries", "allowed"),
    [
        (0, 0.2, 3, 3),
        (10, 0.2, 3, 3),
        (15, 0.2, 3, 3),
        (20, 0.2, 3, 4),
        (50, 0.2, 3, 10),
        (50, 0.5, 0, 25),
        (7, 0.0, 0, 0),
        (100, 0.07, 0, 7),
    ],
)
def test_budget_allows_max_of_min_and_ratio(
    clock: ManualClock, calls: int, ratio: float, min_retries: int, allowed: int
) -> None:
    """Retries are allowed while retries < max(min_retries, ratio * calls) in the window."""
    budget = RetryBudget(ratio=ratio, min_retries=min_retries, clock=clock)
    for _ in range(calls):
        budget.record_call()
    granted = sum(budget.try_withdraw() for _ in range(allowed + 5))
    assert granted == allowed


def test_budget_window_slides_with_the_clock(clock: ManualClock) -> None:
    """Retries and calls older than window_s leave the budget (1 s buckets)."""
    budget = RetryBudget(ratio=0.0, min_retries=1, window_s=10.0, clock=clock)
    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    clock.advance(9.5)
    assert not budget.try_withdraw()  # the retry at t=0 is still in the window
    clock.advance(0.5)
    assert budget.try_withdraw()  # t=10: it left
    assert not budget.try_withdraw()


def test_budget_deposits_expire(clock: ManualClock) -> None:
    """Calls older than the window no longer earn retries."""
    budget = RetryBudget(ratio=0.5, min_retries=0, window_s=10.0, clock=clock)
    for _ in range(4):
        budget.record_call()
    clock.advance(5.0)
    assert budget.snapshot()["window_calls"] == 4
    clock.advance(5.0)
    assert budget.snapshot()["window_calls"] == 0
    assert not budget.try_withdraw()


def test_budget_window_after_long_idle(clock: ManualClock) -> None:
    """After more than a whole window of silence nothing old is counted (ring wrap-around)."""
    budget = RetryBudget(ratio=0.0, min_retries=2, window_s=10.0, clock=clock)
    assert budget.try_withdraw()
    assert budget.try_withdraw()
    clock.advance(1000.0)
    assert budget.snapshot()["window_retries"] == 0
    assert budget.try_withdraw()


async def test_budget_charged_only_for_real_retries(sleep: FakeSleep, clock: ManualClock) -> None:
    """A retry refused for another reason (predicate, unsafe, last attempt) costs no budget."""
    budget = RetryBudget(clock=clock)
    with pytest.raises(ValueError):  # noqa: PT011
        await retry_async(
            Script(ValueError()),
            safe=True,
            policy=POLICY,
            budget=budget,
            retry_on=lambda e: isinstance(e, ConnectionError),
            sleep=sleep,
        )
    with pytest.raises(ConnectionError):
        await retry_async(
            Script(ConnectionError()),
            safe=False,
            policy=POLICY,
            budget=budget,
            retry_on=always,
            sleep=sleep,
        )
    assert budget.total_retries == 0
    assert budget.total_calls == 2


def test_budget_snapshot(clock: ManualClock) -> None:
    """snapshot() is JSON-serialisable and reports window and total counters."""
    budget = RetryBudget(ratio=0.2, min_retries=3, clock=clock)
    for _ in range(30):
        budget.record_call()
    budget.try_withdraw()
    snap = budget.snapshot()
    json.dumps(snap)
    assert snap["window_calls"] == 30
    assert snap["window_retries"] == 1
    assert snap["limit"] == 6.0
    assert snap["available"] == 5
    assert (snap["total_calls"], snap["total_retries"], snap["exhausted"]) == (30, 1, 0)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"base_s": -0.1},
        {"cap_s": float("inf")},
        {"base_s": 1.0, "cap_s": 0.5},
    ],
)
def test_policy_validation(kwargs: dict[str, Any]) -> None:
    """Nonsensical retry policies raise ValueError."""
    with pytest.raises(ValueError, match=r"max_attempts|base_s|cap_s"):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ratio": -0.1},
        {"ratio": float("nan")},
        {"min_retries": -1},
        {"window_s": 0.0},
        {"buckets": 0},
    ],
)
def test_budget_validation(kwargs: dict[str, Any]) -> None:
    """Nonsensical budgets raise ValueError."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryBudget(**kwargs)


def test_policy_defaults_match_envoy() -> None:
    """Defaults: 1 try + 3 retries, base 25 ms, cap 10x base."""
    assert (POLICY.max_attempts, POLICY.base_s, POLICY.cap_s) == (4, 0.025, 0.25)


def test_equal_and_no_jitter_bounds() -> None:
    """Equal jitter waits at least half the ceiling; no jitter waits the ceiling itself."""
    equal = RetryPolicy(max_attempts=None, base_s=0.25, cap_s=5.0, jitter="equal")
    none = RetryPolicy(max_attempts=None, base_s=0.25, cap_s=5.0, jitter="none")
    rng = seeded(3)
    for attempt in range(8):
        ceiling = min(5.0, 0.25 * 2**attempt)
        assert equal.ceiling_s(attempt) == none.ceiling_s(attempt) == ceiling
        assert ceiling / 2 <= backoff_s(attempt, equal, rng) <= ceiling
        assert backoff_s(attempt, none, rng) == ceiling


async def test_unbounded_policy_retries_until_success_and_reports_each_retry(
    sleep: FakeSleep,
) -> None:
    """max_attempts=None: a reconnect loop; on_retry sees each failure and its delay."""
    failures = [ConnectionError(str(n)) for n in range(12)]
    fn = Script(*failures, "up")
    seen: list[tuple[str, float]] = []
    policy = RetryPolicy(max_attempts=None, base_s=0.25, cap_s=5.0, jitter="none")
    result = await retry_async(
        fn,
        safe=True,
        policy=policy,
        budget=None,
        retry_on=always,
        on_retry=lambda outcome, delay: seen.append((str(outcome), delay)),
        sleep=sleep,
    )
    assert result == "up"
    assert fn.calls == 13
    assert [delay for _, delay in seen] == sleep.delays
    assert sleep.delays == [min(5.0, 0.25 * 2**n) for n in range(12)]
    assert [text for text, _ in seen] == [str(n) for n in range(12)]


def test_policy_rejects_unknown_jitter() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter="some")  # type: ignore[arg-type]

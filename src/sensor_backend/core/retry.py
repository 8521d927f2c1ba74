"""The one retry mechanism: capped exponential backoff, jitter and a retry budget.

Every loop that retries calls :func:`retry_async` with a named :class:`RetryPolicy`
(the service client's calls, the database's reconnect, the broker's connect, the event
consumer, auth's bootstrap); loops that wait between rounds for other reasons (the spool
drainer, the job queue, the journal, the outbox relay) take their delay from
:func:`backoff_s` with a policy of their own. ``grep -rn "retry_async(" src`` lists them.

DESIGN.md §5: retry only where safe (idempotent methods, or POST with ``Idempotency-Key``),
Envoy's numbers (1 try + 3 retries, base 25 ms, cap 10x base), and a budget so retries
never multiply load during an outage. ``stamina`` and ``tenacity`` handle the backoff loop
well but have no retry budget, and the budget has to see every call (not only the retried
ones), so the loop is a few lines here.

* Backoff is "full jitter" from the AWS Architecture Blog post *Exponential Backoff And
  Jitter* (Marc Brooker, 2015): ``uniform(0, min(cap, base * 2 ** attempt))``; "equal
  jitter" (at least half the ceiling, so an outage never turns into a tight loop) and no
  jitter are there for the background loops that used them.
* The budget follows Finagle's ``RetryBudget``: every call deposits, every retry withdraws,
  and a retry is allowed while the retries in the last ``window_s`` stay below
  ``max(min_retries, ratio * calls in the last window_s)``. Envoy's retry budget has the
  same shape (20 % of active requests, minimum 3) over concurrent rather than recent
  requests.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from sensor_backend.core.checks import check_int
from sensor_backend.core.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Jitter", "RetryBudget", "RetryPolicy", "backoff_s", "retry_async"]

T = TypeVar("T")

_SYSTEM_CLOCK = SystemClock()
# Jitter only spreads retries out; it is not security-sensitive.
_RNG = random.Random()  # noqa: S311
# 2.0 ** 60 * any sane base is far above any cap; keeps the power finite for huge attempts.
_MAX_EXPONENT = 60

Jitter = Literal["full", "equal", "none"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry (Envoy's defaults).

    Attributes:
        max_attempts: total tries including the first one (4 = 1 try + 3 retries);
            None: until it succeeds (background reconnect loops).
        base_s: backoff base; the n-th retry (0-based) waits up to ``base_s * 2 ** n``.
        cap_s: upper bound of any single backoff (Envoy: 10x base).
        jitter: ``full`` uniform in ``[0, ceiling]``, ``equal`` in ``[ceiling / 2,
            ceiling]``, ``none`` the ceiling itself.

    """

    max_attempts: int | None = 4
    base_s: float = 0.025
    cap_s: float = 0.25
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        """Reject nonsensical settings early (ValueError)."""
        if self.max_attempts is not None:
            check_int("max_attempts", self.max_attempts, 1)
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter must be full, equal or none, got {self.jitter!r}")
        for name, value in (("base_s", self.base_s), ("cap_s", self.cap_s)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.cap_s < self.base_s:
            raise ValueError(f"cap_s ({self.cap_s}) must be >= base_s ({self.base_s})")

    def ceiling_s(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt``: ``min(cap_s, base_s * 2 ** n)``."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt, _MAX_EXPONENT))


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random = _RNG) -> float:
    """The jittered delay before retry number ``attempt`` (0 = the first retry).

    Full jitter: uniform in ``[0, ceiling]``; equal: in ``[ceiling / 2, ceiling]``; none:
    the ceiling, where ceiling is :meth:`RetryPolicy.ceiling_s`.
    """
    ceiling = policy.ceiling_s(attempt)
    if policy.jitter == "full":
        return rng.uniform(0.0, ceiling)
    if policy.jitter == "equal":
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
    return ceiling


class RetryBudget:
    """Finagle-style retry budget over a sliding time window.

    Every logical call deposits with :meth:`record_call` (``retry_async`` does it for
    you); a retry may happen only if :meth:`try_withdraw` returns True, which is the case
    while ``retries < max(min_retries, ratio * calls)`` over the last ``window_s``.

    Counts live in a ring of ``buckets`` time buckets (``window_s / buckets`` seconds
    each, 1 s by default), so memory is constant and :meth:`record_call` is O(1). The
    window is therefore bucket-granular: an event leaves it between
    ``window_s - window_s / buckets`` and ``window_s`` after it happened.
    """

    __slots__ = (
        "_bucket_s",
        "_calls",
        "_clock",
        "_ids",
        "_n",
        "_retries",
        "exhausted",
        "min_retries",
        "ratio",
        "total_calls",
        "total_retries",
        "window_s",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_retries: int = 3,
        window_s: float = 10.0,
        clock: Clock = _SYSTEM_CLOCK,
        *,
        buckets: int = 10,
    ) -> None:
        if not math.isfinite(ratio) or ratio < 0:
            raise ValueError(f"ratio must be a finite number >= 0, got {ratio!r}")
        check_int("min_retries", min_retries, 0)
        if not math.isfinite(window_s) or window_s <= 0:
            raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
        check_int("buckets", buckets, 1)
        self.ratio = ratio
        self.min_retries = min_retries
        self.window_s = window_s
        self._clock = clock
        self._n = buckets
        self._bucket_s = window_s / buckets
        self._ids = [-1] * buckets  # absolute bucket number held by each slot
        self._calls = [0] * buckets
        self._retries = [0] * buckets
        self.total_calls = 0
        self.total_retries = 0
        self.exhausted = 0  # retries refused by the budget

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, min_retries={self.min_retries!r}, "
            f"window_s={self.window_s!r})"
        )

    def _current(self) -> tuple[int, int]:
        """Return (absolute bucket number, slot) for now, recycling a stale slot."""
        number = math.floor(self._clock.monotonic() / self._bucket_s)
        slot = number % self._n
        if self._ids[slot] != number:
            self._ids[slot] = number
            self._calls[slot] = 0
            self._retries[slot] = 0
        return number, slot

    def _window(self, number: int) -> tuple[int, int]:
        oldest = number - self._n + 1
        calls = retries = 0
        ids = self._ids
        for i in range(self._n):
            if ids[i] >= oldest:
                calls += self._calls[i]
                retries += self._retries[i]
        return calls, retries

    def _limit(self, calls: int) -> float:
        # round(): 0.07 * 100 is 7.000000000000001, which would allow an 8th retry.
        return max(float(self.min_retries), round(self.ratio * calls, 9))

    def record_call(self) -> None:
        """Deposit: one logical call was made (its retries are not calls)."""
        _, slot = self._current()
        self._calls[slot] += 1
        self.total_calls += 1

    def try_withdraw(self) -> bool:
        """Take one retry from the budget if it allows one; False means do not retry."""
        number, slot = self._current()
        calls, retries = self._window(number)
        if retries < self._limit(calls):
            self._retries[slot] += 1
            self.total_retries += 1
            return True
        self.exhausted += 1
        return False

    def snapshot(self) -> dict[str, object]:
        """JSON-serialisable view for ``/health`` and metrics."""
        number, _ = self._current()
        calls, retries = self._window(number)
        limit = self._limit(calls)
        return {
            "ratio": self.ratio,
            "min_retries": self.min_retries,
            "window_s": self.window_s,
            "window_calls": calls,
            "window_retries": retries,
            "limit": limit,
            "available": max(0, math.ceil(limit) - retries),
            "total_calls": self.total_calls,
            "total_retries": self.total_retries,
            "exhausted": self.exhausted,
        }


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    safe: bool,
    policy: RetryPolicy,
    budget: RetryBudget | None,
    retry_on: Callable[[BaseException], bool],
    retry_on_result: Callable[[T], bool] | None = None,
    on_retry: Callable[[T | BaseException, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` and retry it while that is safe, useful and affordable.

    A retry happens only if ``safe`` is true (idempotent request), attempts remain
    (``policy.max_attempts`` counts the first try), the outcome asks for one (an
    ``Exception`` for which ``retry_on`` is true, or a result for which ``retry_on_result``
    is true) and the budget, if any, grants a withdrawal (asked last, so a refused retry
    for another reason costs no budget). Between tries it awaits ``sleep(backoff_s(...))``,
    after ``on_retry(outcome, delay)`` (log it, release a discarded response).

    When no retry happens the last exception is re-raised, or the last result returned.
    ``asyncio.CancelledError`` and other non-``Exception`` errors are never retried. The
    call deposits into ``budget`` once, whatever the number of tries.
    """
    if budget is not None:
        budget.record_call()
    jitter = _RNG if rng is None else rng
    if not safe:
        retries_allowed: float = 0
    elif policy.max_attempts is None:
        retries_allowed = math.inf
    else:
        retries_allowed = policy.max_attempts - 1
    attempt = 0  # retries made so far; also the backoff exponent of the next retry
    while True:
        outcome: T | BaseException
        try:
            outcome = await fn()
        except Exception as exc:
            if not (
                attempt < retries_allowed
                and retry_on(exc)
                and (budget is None or budget.try_withdraw())
            ):
                raise
            outcome = exc
        else:
            if not (
                retry_on_result is not None
                and attempt < retries_allowed
                and retry_on_result(outcome)
                and (budget is None or budget.try_withdraw())
            ):
                return outcome
        delay = backoff_s(attempt, policy, jitter)
        if on_retry is not None:
            on_retry(outcome, delay)
        await sleep(delay)
        attempt += 1

"""Draining a spool downstream, in order, acking only what was delivered.

The other half of :mod:`sensor_backend.core.spool`: the event service drains its spool to
the broker, the gateway drains its spool to the event service.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from typing import TYPE_CHECKING

from sensor_backend.core.checks import check_int, check_seconds
from sensor_backend.core.clock import Clock, SystemClock
from sensor_backend.core.event_limits import batch_body_bytes
from sensor_backend.core.retry import RetryPolicy, backoff_s

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sensor_backend.core.spool import Spool, SpooledItem

__all__ = ["Drainer"]

_log = logging.getLogger(__name__)
_SYSTEM_CLOCK = SystemClock()
_RNG = random.Random()  # noqa: S311 - jitter, not cryptography


class _Outcome(enum.Enum):
    IDLE = "idle"  # nothing to send
    PROGRESS = "progress"  # delivered something; go again at once
    FAILED = "failed"  # back off before the next round


class Drainer:
    """Sends a spool's items downstream in order and acks what was delivered.

    ``send`` gets a batch (oldest first, at most ``batch`` items and, with ``max_bytes``, at
    most that many bytes once framed as a JSON array, :func:`~.event_limits.batch_body`; an
    item larger than that alone still goes alone, so its sender can dead-letter it instead
    of it blocking the spool) and returns the seqs the downstream acknowledged; exactly
    those (if they were in the batch) are acked, the rest stay for the next round, so with
    a ``send`` that stops at its first failure and returns the delivered prefix, order is
    preserved. ``send`` may also return the seq of an item the downstream refused for good,
    once it has recorded it durably elsewhere (:mod:`.dead_letter`): a returned seq means
    "done with it", so returning one without such a record would lose the item.

    A round that raises, or delivers nothing, is a failure: the batch's ``attempts`` are
    incremented and the drainer backs off ``min(max_backoff_s, base_backoff_s * 2 ** n)``
    times a jitter factor in ``[0.5, 1]`` (n = consecutive failures - 1) before trying
    again; :meth:`wake` does not cut a backoff short (appends during an outage would
    otherwise defeat it), :meth:`stop` does. When the spool is empty it sleeps ``idle_s``
    or until :meth:`wake`.
    """

    def __init__(
        self,
        spool: Spool,
        send: Callable[[list[SpooledItem]], Awaitable[list[int]]],
        *,
        batch: int = 100,
        max_bytes: int | None = None,
        idle_s: float = 0.5,
        max_backoff_s: float = 10.0,
        base_backoff_s: float = 0.1,
        name: str = "drainer",
        rng: random.Random | None = None,
        clock: Clock = _SYSTEM_CLOCK,
    ) -> None:
        check_int("batch", batch, 1)
        if max_bytes is not None:
            check_int("max_bytes", max_bytes, 1)
        check_seconds("idle_s", idle_s, positive=True)
        check_seconds("base_backoff_s", base_backoff_s)
        check_seconds("max_backoff_s", max_backoff_s)
        if max_backoff_s < base_backoff_s:
            raise ValueError(
                f"max_backoff_s ({max_backoff_s}) must be >= base_backoff_s ({base_backoff_s})"
            )
        self.spool = spool
        self.name = name
        self.batch = batch
        self.max_bytes = max_bytes
        self.idle_s = idle_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        # Equal jitter: at least half the ceiling, so an outage never becomes a tight loop.
        self._policy = RetryPolicy(
            max_attempts=None, base_s=base_backoff_s, cap_s=max_backoff_s, jitter="equal"
        )
        self._send = send
        self._rng = rng or _RNG
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._retry_now = asyncio.Event()
        self.delivered = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.rounds = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_backoff_s: float | None = None

    def __repr__(self) -> str:
        return (
            f"Drainer({self.name!r}, running={self.running}, delivered={self.delivered}, "
            f"failures={self.failures})"
        )

    @property
    def running(self) -> bool:
        """True while the background task is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the background task (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._wake.set()  # look at the spool at once: it may hold items from before a crash
        self._task = asyncio.create_task(self._loop(), name=f"drainer-{self.name}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current round; cancel it if that takes over ``timeout_s``.

        A round cancelled mid-send acks nothing, so its items are sent again later.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        self._wake.set()
        self._retry_now.set()
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            _log.error("drainer %s ended with %r", self.name, task.exception())

    def wake(self) -> None:
        """Drain promptly (call after an append); a no-op during a failure backoff."""
        self._wake.set()

    def retry_now(self) -> None:
        """The destination is back (its health check passed): end a failure backoff now.

        Unlike `wake`, this cuts the backoff short, so queued items go within a probe
        interval of the destination's return instead of after a backoff grown during the
        outage (docs/resilience.md).
        """
        self._retry_now.set()

    def snapshot(self) -> dict[str, object]:
        """Counters for ``/health`` and metrics."""
        return {
            "name": self.name,
            "running": self.running,
            "delivered": self.delivered,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "rounds": self.rounds,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_backoff_s": self.last_backoff_s,
        }

    # -- internals ---------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stop.is_set():
            outcome = await self._round()
            if self._stop.is_set():
                return
            if outcome is _Outcome.IDLE:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_s)
            elif outcome is _Outcome.FAILED:
                delay = self._backoff_s()
                self.last_backoff_s = delay
                self._retry_now.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._retry_now.wait(), delay)

    def _backoff_s(self) -> float:
        return backoff_s(max(self.consecutive_failures - 1, 0), self._policy, self._rng)

    def _failed(self, error: str) -> _Outcome:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = error
        self.last_error_at = self._clock.time()
        if self.consecutive_failures == 1:
            _log.warning(
                "drainer %s: %s; %d items waiting, backing off", self.name, error, self.spool.depth
            )
        return _Outcome.FAILED

    async def _note_attempt(self, seqs: list[int]) -> None:
        try:
            await self.spool.record_attempt(seqs)
        except Exception:  # noqa: BLE001 (bookkeeping only; the round failed already)
            _log.warning("drainer %s: could not record a delivery attempt", self.name)

    async def _peek(self) -> list[SpooledItem]:
        if self.max_bytes is None:
            return await self.spool.peek(self.batch)
        # The spool bounds the payload bytes; the framing (brackets, commas) is trimmed here.
        items = await self.spool.peek_within(self.batch, self.max_bytes)
        while len(items) > 1 and batch_body_bytes(len(i.payload) for i in items) > self.max_bytes:
            items.pop()
        return items

    async def _round(self) -> _Outcome:
        self._wake.clear()  # a wake() from here on means "look again after this round"
        self.rounds += 1
        try:
            items = await self._peek()
        except Exception as exc:  # noqa: BLE001 (the drainer must outlive any failure)
            return self._failed(f"spool peek failed: {exc!r}")
        if not items:
            return _Outcome.IDLE
        seqs = [item.seq for item in items]
        try:
            returned = await self._send(items)
        except Exception as exc:  # noqa: BLE001 (the drainer must outlive any failure)
            await self._note_attempt(seqs)
            return self._failed(f"send failed: {exc!r}")
        in_batch = set(seqs)
        done = [seq for seq in dict.fromkeys(returned) if seq in in_batch]
        if not done:
            await self._note_attempt(seqs)
            return self._failed(f"send delivered none of {len(items)} items")
        if done != seqs[: len(done)]:
            _log.warning(
                "drainer %s: send returned seqs that are not a prefix of the batch; "
                "acking exactly those (the rest will be re-sent after them)",
                self.name,
            )
        try:
            await self.spool.ack(done)
        except Exception as exc:  # noqa: BLE001 (the drainer must outlive any failure)
            # Delivered but not removed: they will be sent again (consumers dedupe by key).
            return self._failed(f"spool ack failed: {exc!r}")
        self.delivered += len(done)
        if self.consecutive_failures:
            _log.info(
                "drainer %s: delivering again after %d failed rounds",
                self.name,
                self.consecutive_failures,
            )
        self.consecutive_failures = 0
        return _Outcome.PROGRESS

"""The outbox relay: delivers ``sensor.outbox`` rows to the event service's ``/send-event``.

Every replica runs one relay; claims (SKIP LOCKED plus a lease, :mod:`.outbox`) keep them
from posting the same rows at once. A round: check the ``events`` breaker, get the service
account's token (:mod:`sensor_backend.core.service_token`), claim a batch, POST it as one
JSON array through the events `ServiceClient` (:mod:`sensor_backend.core.service_client`:
replica choice, breaker bookkeeping, a retry on another replica when a try got no answer or
a 502/503/504), then act on the answer:

======================  ==========================================================
answer                  what happens to the rows
======================  ==========================================================
200, 201, 202           ``sent`` (201 produced, 202 spooled by the event service,
                        200 all duplicates: it had them already)
401                     token invalidated, rows retried soon with a fresh token
5xx, no answer, a 4xx   retried with capped exponential backoff and full jitter
retrying can fix        (``core.retry.backoff_s``); 502/503/504 and errors count against
(408, 429, 403, ...)    the breaker, which stops all delivery while the service is down
413, 400, 422 ...       a batch is halved and each half sent (a batch too large goes
                        in parts, one bad event cannot hold back the others); a single
                        refused event is ``dead`` (the outbox's dead letter) with the
                        status and body as the reason
======================  ==========================================================

Claims follow the event contract (:mod:`sensor_backend.core.event_limits`): at most the
batch count and byte limits, and a row whose event is over the per-event limit is dead at
once instead of being posted to a service that must refuse it.

Delivery is at least once (a relay can die between the POST and marking the rows sent);
the event id is the event service's dedup key, so a redelivery is answered "duplicate" and
counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from typing import TYPE_CHECKING, Any

from sensor_backend.core import tracing
from sensor_backend.core.breaker import BreakerState, CircuitOpenError
from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.event_limits import batch_body, is_permanent_refusal
from sensor_backend.core.log import get_logger
from sensor_backend.core.retry import RetryPolicy, backoff_s
from sensor_backend.core.service_client import UpstreamUnreachableError
from sensor_backend.core.service_token import ServiceTokenError, ServiceTokenProvider
from sensor_backend.core.spans import EventSpans

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from sensor_backend.core.http_client import SessionHolder
    from sensor_backend.core.service_client import ServiceClient
    from sensor_backend.sensor.metrics import SensorMetrics
    from sensor_backend.sensor.outbox import Outbox, OutboxRow
    from sensor_backend.sensor.settings import SensorSettings

log = get_logger("sensor.relay")
DELIVERED = frozenset({200, 201, 202})
MAX_ANSWER_BYTES = 64 * 1024
NO_TOKEN_WAIT_S = 2.0
IDLE_WAIT_S = 1.0
_RNG = random.Random()  # noqa: S311 - backoff jitter, not cryptography


class Relay:
    def __init__(
        self,
        settings: SensorSettings,
        outbox: Outbox,
        events: ServiceClient,
        http: SessionHolder,
        metrics: SensorMetrics,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.events = events
        self.breaker = events.breaker
        self.http = http
        self.metrics = metrics
        self.name = f"{settings.instance_id}/{os.getpid()}/relay"
        self.limits = settings.event_limits()
        self.policy = RetryPolicy(
            max_attempts=1_000_000, base_s=0.5, cap_s=settings.relay_max_backoff_s
        )
        self._tokens: ServiceTokenProvider | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._due_now = False
        self.state = "stopped"
        self.counts = {"delivered": 0, "dead": 0, "retried": 0}
        self.last_error: str | None = None

    async def start(self) -> None:
        self._tokens = self._token_provider()
        self._task = asyncio.create_task(self._loop(), name="sensor-outbox-relay")

    def _token_provider(self) -> ServiceTokenProvider:
        return ServiceTokenProvider(
            self.http.session,
            self.settings.auth_service_urls,
            username=self.settings.service_account_username,
            password=self.settings.service_account_password,
            timeout_s=self.settings.http_total_timeout_s,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.state = "stopped"

    def wake(self) -> None:
        """An event was written: deliver now rather than at the next poll."""
        self._wake.set()

    def events_back(self) -> None:
        """The event service is back (a health check saw it): deliver what waits, now.

        Rows released with a backoff during the outage become due at once, so delivery
        resumes within a probe interval of the return, in order.
        """
        self._due_now = True
        self._wake.set()

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, **self.counts, "last_error": self.last_error}

    async def run_once(self) -> float | None:
        """One claim-and-deliver round of the loop, without the loop (tests drive this).

        Returns the wait the loop would take before the next round (None: at once); the
        outbox and ``counts`` show what happened to the rows.
        """
        if self._tokens is None:
            self._tokens = self._token_provider()
        return await self._round()

    # ------------------------------------------------------------------ loop

    async def _loop(self) -> None:
        while True:
            try:
                wait = await self._round()
            except Exception as exc:
                log.exception("relay round failed")
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                wait = IDLE_WAIT_S
            if wait is None:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def _round(self) -> float | None:
        """One claim-and-deliver round; the wait before the next (None: at once)."""
        tokens = self._tokens
        assert tokens is not None  # noqa: S101 - set by start()
        if not tokens.configured:
            self.state = "no service account (SERVICE_ACCOUNT_PASSWORD unset): events wait"
            return NO_TOKEN_WAIT_S * 5
        if self.breaker.state is BreakerState.OPEN:
            self.state = "events breaker open"
            return max(self.breaker.retry_after_s, 0.05)
        try:
            authorization = await tokens.authorization()
        except ServiceTokenError as exc:
            self.state = "waiting for a service token"
            self.last_error = str(exc)
            return NO_TOKEN_WAIT_S
        if self._due_now:
            self._due_now = False
            await self._db(self.outbox.due_now())
        try:
            claimed = await self.outbox.claim(
                self.name, self.limits.max_batch_events, self.limits.max_batch_bytes
            )
        except DatabaseUnavailable as exc:
            self.state = "waiting for database"
            self.last_error = exc.message
            return min(exc.retry_after_s, 5.0)
        if not claimed:
            self.state = "idle"
            return min(IDLE_WAIT_S, self.settings.poll_interval_s * 2)
        self.state = "delivering"
        rows = await self._screen(claimed)
        if rows:
            await self._deliver(rows, authorization)
        return None if len(claimed) == self.limits.max_batch_events else 0.0

    async def _screen(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Dead-letter rows over the per-event limit; the rest, to post."""
        fit: list[OutboxRow] = []
        for row in rows:
            size = len(encode(row.event))
            if size <= self.limits.max_event_bytes:
                fit.append(row)
                continue
            reason = (
                f"event is {size} bytes encoded, over the {self.limits.max_event_bytes}-byte "
                "limit for one event: the event service would refuse it (413)"
            )
            await self._dead(row, reason, None)
        return fit

    async def _dead(self, row: OutboxRow, reason: str, status: int | None) -> None:
        await self._db(self.outbox.mark_dead(row.seq, reason, status=status))
        self.counts["dead"] += 1
        self.metrics.dead.inc()
        self.last_error = reason[:300]
        log.error("outbox event dead-lettered", event_id=row.event_id, status=status)

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, rows: list[OutboxRow], authorization: str) -> None:
        seqs = [row.seq for row in rows]
        try:
            status, text = await self._post([row.event for row in rows], authorization)
        except CircuitOpenError as exc:
            await self._retry(rows, "breaker_open", "events breaker open", exc.retry_after_s)
            return
        except UpstreamUnreachableError as exc:
            await self._retry(rows, "unreachable", f"event service unreachable: {exc}")
            return
        if status in DELIVERED:
            await self._db(self.outbox.mark_sent(seqs))
            self.counts["delivered"] += len(rows)
            self.metrics.delivered.inc(len(rows))
            self.last_error = None
        elif status == 401:  # noqa: PLR2004 - HTTP Unauthorized
            assert self._tokens is not None  # noqa: S101 - set by start()
            self._tokens.invalidate()
            await self._retry(rows, "unauthorized", "401 from the event service", 0.2)
        elif not is_permanent_refusal(status):
            kind = "server_error" if status >= 500 else "throttled"  # noqa: PLR2004 - HTTP 5xx
            await self._retry(rows, kind, f"event service answered {status}: {text[:300]}")
        elif len(rows) > 1:
            # Too large for the service (a limit lowered) or one bad event: halves go
            # separately, down to single events, so the others are delivered.
            half = len(rows) // 2
            await self._deliver(rows[:half], authorization)
            await self._deliver(rows[half:], authorization)
        else:
            reason = f"refused by the event service: {status} {text[:700]}"
            await self._dead(rows[0], reason, status)

    async def _post(self, events: list[dict[str, Any]], authorization: str) -> tuple[int, str]:
        """One POST through the events client (core/service_client.py).

        The client picks the replica, records the outcome in the events breaker and the
        replica pool, and retries a try without an answer (or with a 502/503/504) on
        another replica: safe, the event id dedups a resend.
        """
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        spans = None
        if tracing.state.tracer is not None:
            spans, events = relay_spans(events)
        body = batch_body([encode(event) for event in events])
        call = self.events.call("POST", "/send-event", data=body, headers=headers, retryable=True)
        try:
            async with call as resp:
                raw = await resp.content.read(MAX_ANSWER_BYTES)
        except BaseException as exc:
            if spans is not None:
                spans.end(exc)
            raise
        if spans is not None:
            for index in range(len(events)):
                spans.set(index, {"http.response.status_code": resp.status})
            spans.end(None if resp.status in DELIVERED else f"HTTP {resp.status}")
        return resp.status, raw.decode("utf-8", "replace")

    async def _retry(
        self, rows: list[OutboxRow], kind: str, reason: str, delay_s: float | None = None
    ) -> None:
        """Release rows for a later attempt: after ``delay_s``, or a backoff on attempts."""
        if delay_s is None:
            attempt = max(row.attempts for row in rows) - 1
            delay_s = backoff_s(min(attempt, 30), self.policy, _RNG)
        self.counts["retried"] += len(rows)
        self.metrics.delivery_failures.labels(kind).inc(len(rows))
        self.last_error = reason[:300]
        await self._db(self.outbox.release([r.seq for r in rows], reason, delay_s=delay_s))

    async def _db(self, call: Awaitable[None]) -> None:
        """Outbox bookkeeping; if the database is away, the lease runs out and rows retry."""
        try:
            await call
        except DatabaseUnavailable as exc:
            self.last_error = exc.message
            log.warning("outbox update lost; rows retry after their lease", reason=exc.message)


def relay_spans(
    events: list[dict[str, Any]],
) -> tuple[EventSpans, list[dict[str, Any]]]:
    """A span per event, child of the span that wrote it; the events re-stamped with it.

    The event service's receive span then continues the relay's span (README "Traces").
    Only an event that carries a traceparent is re-stamped, so its size does not change.
    """
    spans = EventSpans(
        "outbox relay",
        "producer",
        [event.get("traceparent") for event in events],
        [
            {"cloudevents.event_id": str(e.get("id")), "cloudevents.event_type": str(e.get("type"))}
            for e in events
        ],
    )
    stamped = [
        event if parent is None else {**event, "traceparent": parent}
        for event, parent in zip(events, spans.traceparents, strict=True)
    ]
    return spans, stamped


def encode(event: dict[str, Any]) -> bytes:
    """An outbox event as compact JSON, the size the event contract measures."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()

"""Events accepted by the gateway while the event service is down, durably.

The original notes' "queue events for later processing", made durable. ``POST /events``
is validated against the event contract (:mod:`sensor_backend.core.event_limits`: 413 for
an event or body over the limits, 422 for an invalid event, nothing stored) whether the
event service is up or not, so the gateway never accepts what the event service would
refuse. It is then proxied when the event service answers; when it cannot (breaker open,
no healthy replica, connect error, timeout, 5xx) or while older events still wait, the
events are appended to the gateway's fsynced, bounded spool: 202 ``queued``.

A drainer sends the spool in order to the event service as the service account, in
batches bounded by count and bytes (the same contract). What the answer means:

======================  ==========================================================
answer                  what happens to the batch
======================  ==========================================================
2xx                     delivered: acked in the spool
401                     token renewed, the batch sent again at once (once)
5xx, no answer, other   kept in the spool, retried with backoff (5xx and errors
retryable 4xx           count against the events breaker); see
                        :func:`~sensor_backend.core.event_limits.is_permanent_refusal`
413, 400, 422 ...       a batch is halved and each half sent (so a batch too large
                        after a limit change still goes, and one bad event cannot
                        hold back the others); a single refused event is written to
                        the dead-letter store (:mod:`sensor_backend.core.dead_letter`)
                        *before* it is acked, so nothing leaves the spool unrecorded
======================  ==========================================================

The event id dedups any resend at the event service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from sensor_backend.core.breaker import CircuitOpenError
from sensor_backend.core.dead_letter import NewDeadLetter
from sensor_backend.core.errors import NotFound, PayloadTooLarge, Unavailable
from sensor_backend.core.event_limits import batch_body, is_permanent_refusal
from sensor_backend.core.log import get_logger
from sensor_backend.core.service_client import UpstreamUnreachableError
from sensor_backend.core.service_token import ServiceTokenError
from sensor_backend.core.spool import SpoolFullError
from sensor_backend.gateway.settings import public_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import Receive, Scope

    from sensor_backend.core.cloudevents import CloudEvent
    from sensor_backend.core.dead_letter import DeadLetter, DeadLetterStore
    from sensor_backend.core.event_limits import EventLimits
    from sensor_backend.core.service_client import ServiceClient
    from sensor_backend.core.service_token import ServiceTokenProvider
    from sensor_backend.core.spool import Spool, SpooledItem

log = get_logger("gateway.events")
ORIGIN = "gateway-spool"
# Bodies larger than this are parsed in a thread: validating megabytes of JSON with
# pydantic takes tens of milliseconds, which must not stall the event loop.
PARSE_INLINE_BYTES = 256 * 1024
MAX_DETAIL_CHARS = 700


class EventQueue:
    def __init__(
        self,
        spool: Spool,
        client: ServiceClient,
        token: ServiceTokenProvider,
        *,
        limits: EventLimits,
        dead_letters: DeadLetterStore,
    ) -> None:
        self.spool = spool
        self.client = client
        self.token = token
        self.limits = limits
        self.dead_letters = dead_letters
        self.accepted = 0
        self.forwarded = 0
        self.dead_lettered = 0
        self.splits = 0
        self.refused_too_large = 0
        # Replayed dead letters until they are delivered or dead again, so a second refusal
        # continues their record (times dead, attempts). In memory: after a restart a
        # replayed event refused again starts a new record, which loses no event.
        self._replayed: dict[str, DeadLetter] = {}
        self.wake: Callable[[], None] = lambda: None

    async def parse(self, raw: bytes) -> tuple[list[CloudEvent], list[bytes], bool]:
        """Validate a body against the event contract (413, 422, 400 as the service would)."""
        try:
            if len(raw) <= PARSE_INLINE_BYTES:
                return self.limits.parse(raw)
            return await asyncio.to_thread(self.limits.parse, raw)
        except PayloadTooLarge:
            self.refused_too_large += 1
            raise

    async def accept(
        self, events: list[CloudEvent], payloads: list[bytes], *, is_batch: bool
    ) -> dict[str, Any]:
        """Spool validated events; the 202 answer."""
        try:
            stored = await self.spool.append(
                [(e.id, payload) for e, payload in zip(events, payloads, strict=True)]
            )
        except SpoolFullError as exc:
            raise Unavailable(
                "event service down and the gateway's event spool is full",
                retry_after_s=exc.retry_after_s,
                service=public_name("events"),
            ) from exc
        self.accepted += sum(stored)
        self.wake()
        results = [
            {"id": e.id, "status": "queued" if ok else "duplicate"}
            for e, ok in zip(events, stored, strict=True)
        ]
        doc: dict[str, Any] = {
            "status": "queued",
            "queue_depth": self.spool.depth,
            "via": "gateway",
        }
        if is_batch:
            doc["results"] = results
        else:
            doc.update(results[0])
        return doc

    # -- delivery (the drainer's send) -------------------------------------------------

    async def forward(self, items: list[SpooledItem]) -> list[int]:
        """Send a batch; the seqs done with (delivered or dead-lettered), an ordered prefix.

        Stops at the first event that must be retried, so the rest keep their order. Raises
        when nothing at all could be done (the drainer then backs off).
        """
        done: list[int] = []
        try:
            await self._deliver(items, done)
        except (ConnectionError, CircuitOpenError, ServiceTokenError):
            if not done:
                raise
        return done

    async def _deliver(self, items: list[SpooledItem], done: list[int]) -> None:
        status, detail = await self._post(items)
        if status < 300:  # noqa: PLR2004 - 2xx: the event service has them
            done.extend(item.seq for item in items)
            self.forwarded += len(items)
            if self._replayed:
                for item in items:
                    self._replayed.pop(item.key, None)
            return
        if not is_permanent_refusal(status):
            raise ConnectionError(f"event service answered {status}: {detail[:200]}")
        if len(items) > 1:
            # Too large (a limit lowered since these were accepted) or one bad event in the
            # batch: halves go separately, down to single events.
            self.splits += 1
            half = len(items) // 2
            await self._deliver(items[:half], done)
            await self._deliver(items[half:], done)
            return
        await self._dead_letter(items[0], status, detail)
        done.append(items[0].seq)

    async def _dead_letter(self, item: SpooledItem, status: int, detail: str) -> None:
        before = self._replayed.pop(item.key, None)
        # Recorded (fsynced) before the caller acks it in the spool: never in neither.
        await self.dead_letters.add(
            [
                NewDeadLetter(
                    key=item.key,
                    payload=item.payload,
                    origin=ORIGIN,
                    status=status,
                    reason=f"refused by the event service: {status} {detail}",
                    attempts=item.attempts + 1 + (before.attempts if before else 0),
                    first_seen_at=before.first_seen_at if before else item.created_at,
                    times_dead_before=before.times_dead if before else 0,
                )
            ]
        )
        self.dead_lettered += 1
        log.error(
            "event dead-lettered",
            event_id=item.key,
            status=status,
            size=len(item.payload),
            detail=detail[:300],
        )

    async def _post(self, items: list[SpooledItem], *, renewed: bool = False) -> tuple[int, str]:
        """One POST of a batch through the events client: its status and the answer's start.

        The client (core/service_client.py) picks the replica, records the outcome and
        retries a try that got no answer (or a 502/503/504) on another replica: safe, since
        the event id dedups a resend. Raises when no answer came.
        """
        authorization = await self.token.authorization()
        body = batch_body([item.payload for item in items])
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        call = self.client.call("POST", "/send-event", data=body, headers=headers, retryable=True)
        try:
            async with call as resp:
                status = resp.status
                detail = (await resp.content.read(MAX_DETAIL_CHARS)).decode("utf-8", "replace")
        except UpstreamUnreachableError as exc:
            raise ConnectionError(f"event service unreachable: {exc}") from exc
        if status >= 500:  # noqa: PLR2004 - server error: keep the batch, retry later
            raise ConnectionError(f"event service answered {status}")
        if status == 401:  # noqa: PLR2004 - the service token expired or was revoked
            self.token.invalidate()
            if not renewed:
                return await self._post(items, renewed=True)
            raise ConnectionError("event service refused a freshly issued service token")
        return status, detail

    # -- operator actions --------------------------------------------------------------

    async def replay(self, event_id: str) -> dict[str, Any]:
        """Put a dead letter back into the spool for delivery; 404 if there is none."""
        entry = await self.dead_letters.get(event_id)
        if entry is None or entry.payload is None:
            raise NotFound(f"no dead-lettered event {event_id}")
        # Known as replayed before the drainer can see it, so a refusal continues its record.
        self._replayed[entry.key] = dataclasses.replace(entry, payload=None)
        try:
            (stored,) = await self.spool.append([(entry.key, entry.payload)])
        except SpoolFullError as exc:
            self._replayed.pop(entry.key, None)
            raise Unavailable(
                "the gateway's event spool is full; replay later",
                retry_after_s=exc.retry_after_s,
                service=public_name("events"),
            ) from exc
        # Spooled (fsynced) first, removed second: a crash in between leaves it in both,
        # and the event service dedups the id if both ever send it. Only this record is
        # removed: if the drainer already sent and dead-lettered it again, that one stays.
        await self.dead_letters.remove(entry.key, times_dead=entry.times_dead)
        self.dead_letters.replayed += 1
        self.wake()
        log.info("dead letter replayed", event_id=entry.key, already_spooled=not stored)
        return {
            "id": entry.key,
            "status": "queued" if stored else "already_queued",
            "queue_depth": self.spool.depth,
        }

    async def replay_oldest(self, limit: int) -> dict[str, Any]:
        """Replay the ``limit`` oldest dead letters, in order (after their cause is fixed).

        Stops early when the spool is full; 503 only if nothing could be replayed.
        """
        replayed: list[str] = []
        for entry in await self.dead_letters.oldest(limit):
            try:
                await self.replay(entry.key)
            except NotFound:
                continue  # discarded or replayed by another request meanwhile
            except Unavailable:
                if not replayed:
                    raise
                break
            replayed.append(entry.key)
        return {"replayed": replayed, "count": len(replayed), "remaining": self.dead_letters.count}

    async def discard(self, event_id: str, *, by: str) -> dict[str, Any]:
        """Delete a dead letter for good (an operator's decision, logged); 404 if none."""
        entry = await self.dead_letters.get(event_id)
        if entry is None or not await self.dead_letters.remove(event_id):
            raise NotFound(f"no dead-lettered event {event_id}")
        self.dead_letters.discarded += 1
        # The log line is the record of a deliberate discard, with the event itself.
        log.warning(
            "dead letter discarded",
            event_id=event_id,
            by=by,
            reason=entry.reason,
            payload=(entry.payload or b"").decode("utf-8", "replace")[:2000],
        )
        return {"id": event_id, "status": "discarded"}

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.spool.snapshot(),
            "accepted": self.accepted,
            "forwarded": self.forwarded,
            "dead_lettered": self.dead_lettered,
            "splits": self.splits,
            "refused_too_large": self.refused_too_large,
            "limits": self.limits.as_dict(),
        }


def decode_event(payload: bytes | None) -> Any:  # noqa: ANN401 - any JSON document
    """A stored payload as JSON for the admin API (raw text if it is not JSON)."""
    if payload is None:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


async def read_event_body(scope: Scope, receive: Receive, limits: EventLimits) -> bytes:
    """The body of ``POST /events``, refused with 413 past the batch byte limit.

    Checked on Content-Length before reading anything, and again while a chunked body
    streams in, so an oversized body is never buffered beyond the limit.
    """
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit():
            limits.check_body_length(int(value))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        limits.check_body_length(size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)

"""Accepting events: produce to the broker, or spool durably when it is down.

- Broker healthy, its breaker closed and the spool empty: each event is produced with
  ``acks=all`` (pipelined for a batch) before the answer, which is then ``sent``.
- Otherwise the events are appended to the fsynced local spool and answered ``queued``;
  while the spool is non-empty new events queue behind it, so per-subject order holds.
- The spool is bounded: when full the request gets 503 with Retry-After and nothing of it is
  stored (never silent loss). The drainer sends the spool in order when the broker is back,
  removing each event only after the broker acknowledged it.
- An event id seen recently (an LRU of ids, and the spool's unique key) is answered
  ``duplicate`` and not stored twice; the consumer dedups on the id in PostgreSQL anyway.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError

from sensor_backend.core.breaker import CircuitOpenError
from sensor_backend.core.errors import Unavailable
from sensor_backend.core.spool import SpoolFullError

if TYPE_CHECKING:
    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.cloudevents import CloudEvent
    from sensor_backend.core.spool import Spool, SpooledItem
    from sensor_backend.events.broker import BrokerConnection

RECENT_IDS = 200_000
LATENCY_SAMPLES = 4096


@dataclass
class ProducerStats:
    received: int = 0
    sent: int = 0
    queued: int = 0
    duplicates: int = 0
    drained: int = 0
    refused_spool_full: int = 0
    # Accepted events that were lost. Nothing deletes an event before the broker acked it,
    # so this stays 0; it is reported so that a regression would show.
    dropped: int = 0

    def __post_init__(self) -> None:
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "sent": self.sent,
            "queued": self.queued,
            "duplicates": self.duplicates,
            "drained": self.drained,
            "refused_spool_full": self.refused_spool_full,
            "dropped": self.dropped,
            **percentiles(self.latencies, "produce"),
        }


def percentiles(samples: deque[float], label: str) -> dict[str, float | None]:
    if not samples:
        return {f"{label}_p50_ms": None, f"{label}_p99_ms": None}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {f"{label}_p50_ms": pick(0.5), f"{label}_p99_ms": pick(0.99)}


class Publisher:
    def __init__(
        self,
        *,
        broker: BrokerConnection,
        spool: Spool,
        breaker: CircuitBreaker,
        topic: str,
        timeout_s: float,
    ) -> None:
        self.broker = broker
        self.spool = spool
        self.breaker = breaker
        self.topic = topic
        self.timeout_s = timeout_s
        self.stats = ProducerStats()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.on_queued: list[Any] = []  # callbacks (drainer.wake)

    def _seen(self, event_id: str) -> bool:
        return event_id in self._recent

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    async def publish(self, events: list[CloudEvent]) -> list[dict[str, Any]]:
        """Results in request order: ``{"id", "status": sent|queued|duplicate, ...}``."""
        self.stats.received += len(events)
        ordered: list[dict[str, Any]] = []
        results: dict[str, dict[str, Any]] = {}  # first occurrence of each fresh id
        fresh: list[CloudEvent] = []
        for event in events:
            if event.id in results or self._seen(event.id):
                ordered.append({"id": event.id, "status": "duplicate"})
                self.stats.duplicates += 1
                continue
            entry: dict[str, Any] = {"id": event.id, "status": "pending"}
            results[event.id] = entry
            ordered.append(entry)
            fresh.append(event.stamped())
        leftover = await self._produce(fresh, results) if fresh else []
        if leftover:
            await self._queue(leftover, results)
        for event in fresh:
            if results[event.id]["status"] in {"sent", "queued"}:
                self._remember(event.id)
        return ordered

    async def _produce(
        self, events: list[CloudEvent], results: dict[str, dict[str, Any]]
    ) -> list[CloudEvent]:
        """Produce what can be produced now; returns the events left for the spool, in order."""
        producer = self.broker.producer
        if producer is None or not self.broker.ready or self.spool.depth > 0:
            return events
        try:
            generation = self.breaker.acquire()
        except CircuitOpenError:
            return events
        started = time.perf_counter()
        outcomes = await self._send_all(producer, [(e.encode(), e.key) for e in events])
        elapsed = time.perf_counter() - started
        failed_from = next(
            (i for i, o in enumerate(outcomes) if isinstance(o, BaseException)), None
        )
        if failed_from is None:
            self.breaker.record_success(generation, elapsed)
        else:
            self.breaker.record_failure(generation, elapsed)
            self.broker.mark_down(f"produce failed: {outcomes[failed_from]!r}")
        for event, outcome in zip(events, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                results[event.id].update(
                    status="sent", partition=outcome.partition, offset=outcome.offset
                )
                self.stats.sent += 1
                self.stats.latencies.append(elapsed)
        return [e for e, o in zip(events, outcomes, strict=True) if isinstance(o, BaseException)]

    async def _send_all(
        self,
        producer: Any,  # noqa: ANN401 - aiokafka is untyped
        records: list[tuple[bytes, bytes | None]],
    ) -> list[Any]:
        """Send a batch pipelined (acks=all); one outcome (metadata or exception) per record."""
        try:
            async with asyncio.timeout(self.timeout_s):
                futures = [
                    await producer.send(self.topic, value, key=key) for value, key in records
                ]
                return list(await asyncio.gather(*futures, return_exceptions=True))
        except (KafkaError, OSError, TimeoutError) as exc:
            return [exc] * len(records)

    async def _queue(self, events: list[CloudEvent], results: dict[str, dict[str, Any]]) -> None:
        try:
            stored = await self.spool.append([(e.id, e.encode()) for e in events])
        except SpoolFullError as exc:
            self.stats.refused_spool_full += len(events)
            raise Unavailable(
                "event spool is full; nothing of this request was stored",
                retry_after_s=exc.retry_after_s,
                queue_depth=exc.depth,
            ) from exc
        for event, ok in zip(events, stored, strict=True):
            if ok:
                results[event.id].update(status="queued", queue_depth=self.spool.depth)
                self.stats.queued += 1
            else:
                results[event.id]["status"] = "duplicate"
                self.stats.duplicates += 1
        for wake in self.on_queued:
            wake()

    async def drain(self, items: list[SpooledItem]) -> list[int]:
        """The drainer's send: produce spooled events in order; returns the acked prefix."""
        producer = self.broker.producer
        if producer is None or not self.broker.ready:
            raise ConnectionError(f"broker not ready ({self.broker.status})")
        generation = self.breaker.acquire()  # CircuitOpenError makes the drainer back off
        started = time.perf_counter()
        records = [(item.payload, _subject_key(item.payload)) for item in items]
        outcomes = await self._send_all(producer, records)
        elapsed = time.perf_counter() - started
        delivered: list[int] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                break
            delivered.append(item.seq)
        if len(delivered) == len(items):
            self.breaker.record_success(generation, elapsed)
        else:
            self.breaker.record_failure(generation, elapsed)
            self.broker.mark_down(f"produce failed: {outcomes[len(delivered)]!r}")
        self.stats.drained += len(delivered)
        if not delivered:
            raise ConnectionError(f"broker refused the spooled batch: {outcomes[0]!r}")
        return delivered


def _subject_key(payload: bytes) -> bytes | None:
    subject = json.loads(payload).get("subject")
    return subject.encode() if isinstance(subject, str) else None

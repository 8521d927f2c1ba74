"""Accepting events: journal them durably, produce them, keep them until they are stored.

- Every accepted event is first appended to the fsynced local journal (group-committed:
  one fsync for many concurrent requests), and stays there until the consumer side has
  stored it in PostgreSQL (DESIGN.md §7), not merely until the broker acknowledged it.
- Broker healthy, its breaker closed and nothing waiting in the journal: the events are
  then produced with ``acks=all`` (pipelined for a batch) before the answer, ``sent``.
- Otherwise they wait in the journal, answered ``queued``; while anything waits, new events
  queue behind it, so per-subject order holds. The drainer produces them in order when the
  broker is back.
- The journal is bounded: when full the request gets 503 with Retry-After and nothing of it
  is stored (never silent loss).
- When the broker lost what it held (its topic had to be recreated, or a partition's
  offsets went backwards), every produced but unconfirmed event is produced again; the
  event id makes the copy harmless (the consumer's store dedups on it).
- An event id seen recently (an LRU of ids, and the journal's unique key) is answered
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

from sensor_backend.core import tracing
from sensor_backend.core.breaker import CircuitOpenError
from sensor_backend.core.errors import Unavailable
from sensor_backend.core.log import get_logger
from sensor_backend.core.spool import SpoolFullError
from sensor_backend.events.spans import (
    end_produce_spans,
    produce_spans,
    receive_spans,
    record_headers,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.cloudevents import CloudEvent
    from sensor_backend.core.journal import Journal
    from sensor_backend.core.spool import SpooledItem
    from sensor_backend.events.broker import BrokerConnection

log = get_logger("events.publisher")

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
    # Times a produce acknowledgement showed the broker had lost a partition's records.
    offset_regressions: int = 0
    # Accepted events that were lost. Nothing deletes an event before it is stored in
    # PostgreSQL, so this stays 0; it is reported so that a regression would show.
    dropped: int = 0

    def __post_init__(self) -> None:
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.journal_latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "sent": self.sent,
            "queued": self.queued,
            "duplicates": self.duplicates,
            "drained": self.drained,
            "refused_spool_full": self.refused_spool_full,
            "offset_regressions": self.offset_regressions,
            "dropped": self.dropped,
            **percentiles(self.latencies, "produce"),
            **percentiles(self.journal_latencies, "journal"),
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
        journal: Journal,
        breaker: CircuitBreaker,
        topic: str,
        timeout_s: float,
    ) -> None:
        self.broker = broker
        self.journal = journal
        self.breaker = breaker
        self.topic = topic
        self.timeout_s = timeout_s
        self.stats = ProducerStats()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.on_queued: list[Callable[[], object]] = []  # drainer.wake
        # Called when an acknowledgement shows the broker lost records (see _watch).
        self.on_broker_lost_data: list[Callable[[], object]] = []
        # Per partition: (send number, offset) of the latest-sent acknowledged record.
        self._high: dict[int, tuple[int, int]] = {}
        self._sends = 0  # records handed to the producer so far

    def _seen(self, event_id: str) -> bool:
        return event_id in self._recent

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    def forget_offsets(self) -> None:
        """The broker restarted empty: offsets start again from 0."""
        self._high.clear()

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
        if fresh and tracing.state.tracer is not None:
            await self._accept_traced(fresh, results)
        elif fresh:
            await self._accept(fresh, results)
        for event in fresh:
            if results[event.id]["status"] in {"sent", "queued"}:
                self._remember(event.id)
        return ordered

    async def _accept_traced(
        self, events: list[CloudEvent], results: dict[str, dict[str, Any]]
    ) -> None:
        """`_accept` inside a receive span per event, each continuing the event's trace.

        The event is journaled and produced carrying its receive span's traceparent, so the
        produce span (`_send_all`, now or from the journal later) continues it.
        """
        spans, stamped = receive_spans(events, self.topic)
        try:
            await self._accept(stamped, results)
        except BaseException as exc:
            spans.end(exc)
            raise
        for index, event in enumerate(stamped):
            spans.set(index, {"event.status": results[event.id]["status"]})
        spans.end()

    def _direct(self) -> bool:
        """Produce before answering: broker verified and nothing waiting ahead in the journal."""
        return self.broker.producer is not None and self.broker.ready and self.journal.backlog == 0

    async def _accept(self, events: list[CloudEvent], results: dict[str, dict[str, Any]]) -> None:
        """Journal the events (durable before any answer) and produce them, or queue them.

        On the direct path the produce runs while the journal commits: the answer waits for
        the slower of the two, not for one after the other. The journal's room is checked
        first, so a full journal refuses before anything is produced.
        """
        direct = self._direct()
        # Encoded once: the journal keeps these bytes and the producer sends them.
        encoded = [(e.id, e.encode()) for e in events]
        try:
            self.journal.check_room(encoded)
        except SpoolFullError as exc:
            raise self._full(exc, len(events)) from exc
        epoch = self.journal.epoch
        started = time.perf_counter()
        appending = asyncio.ensure_future(self.journal.append(encoded, claim=direct))
        appending.add_done_callback(
            lambda _: self.stats.journal_latencies.append(time.perf_counter() - started)
        )
        # If the produce fails unexpectedly or the request is cancelled, the append still
        # ends; rows it claimed then wait for Journal.requeue_overdue.
        outcomes = await self._produce(events, encoded) if direct else None
        try:
            stored = await appending
        except SpoolFullError as exc:
            # Only a full disk gets here (the room was checked); what was produced anyway
            # is stored once by the consumer, and the client's retry is a duplicate.
            raise self._full(exc, len(events)) from exc
        self._settle(events, stored, outcomes, results, epoch=epoch, claimed=direct)

    def _settle(
        self,
        events: list[CloudEvent],
        stored: list[bool],
        outcomes: list[Any] | None,
        results: dict[str, dict[str, Any]],
        *,
        epoch: int,
        claimed: bool,
    ) -> None:
        """Answer each journaled event: sent, duplicate, or queued for the drainer."""
        sent: list[str] = []
        leftover: list[CloudEvent] = []
        for index, (event, ok) in enumerate(zip(events, stored, strict=True)):
            if not ok:  # still unconfirmed in the journal from an earlier request
                results[event.id]["status"] = "duplicate"
                self.stats.duplicates += 1
            elif outcomes is None or isinstance(outcomes[index], BaseException):
                leftover.append(event)
            else:
                meta = outcomes[index]
                results[event.id].update(
                    status="sent", partition=meta.partition, offset=meta.offset
                )
                sent.append(event.id)
        if sent:
            # Acknowledged, and kept in the journal until the consumer side confirms it.
            self.journal.mark_sent(sent, epoch)
            self.stats.sent += len(sent)
        if not leftover:
            return
        if claimed:
            self.journal.release([e.id for e in leftover])
        for event in leftover:
            results[event.id].update(status="queued", queue_depth=self.journal.backlog)
            self.stats.queued += 1
        for wake in self.on_queued:
            wake()

    def _full(self, exc: SpoolFullError, count: int) -> Unavailable:
        self.stats.refused_spool_full += count
        return Unavailable(
            "event journal is full; nothing of this request was stored",
            retry_after_s=exc.retry_after_s,
            queue_depth=exc.depth,
        )

    async def _produce(
        self, events: list[CloudEvent], encoded: list[tuple[str, bytes]]
    ) -> list[Any]:
        """Produce now; one outcome per event (metadata, or the exception that stopped it)."""
        producer = self.broker.producer
        if producer is None or not self.broker.ready:
            return [ConnectionError("broker not ready")] * len(events)
        try:
            generation = self.breaker.acquire()
        except CircuitOpenError as exc:
            return [exc] * len(events)
        started = time.perf_counter()
        outcomes = await self._send_all(
            producer, [(payload, e.key) for e, (_, payload) in zip(events, encoded, strict=True)]
        )
        elapsed = time.perf_counter() - started
        failed_from = next(
            (i for i, o in enumerate(outcomes) if isinstance(o, BaseException)), None
        )
        if failed_from is None:
            self.breaker.record_success(generation, elapsed)
            self.stats.latencies.append(elapsed)
        else:
            self.breaker.record_failure(generation, elapsed)
            self.broker.mark_down(f"produce failed: {outcomes[failed_from]!r}")
        return outcomes

    def _watch(self, numbers: list[int], outcomes: list[Any]) -> None:
        """Notice a broker that lost records: a later send got a lower offset.

        Offsets of a partition only grow while the broker keeps its log, so a record sent
        after another but acknowledged at a lower offset of the same partition means the
        broker restarted empty (the embedded broker) or truncated its log. The health probe
        notices a missing topic too, but only once per interval, and not at all when a
        produce made the broker create the topic again first. ``numbers`` number the sends
        in the order they entered the producer's buffer.
        """
        acked = [
            (number, o.partition, o.offset)
            for number, o in zip(numbers, outcomes, strict=True)
            if not isinstance(o, BaseException)
        ]
        regressed = False
        for number, partition, offset in acked:
            seen = self._high.get(partition)
            if seen is not None and number > seen[0] and offset < seen[1]:
                regressed = True
                break
            if seen is None or number > seen[0]:
                self._high[partition] = (number, offset)
        if regressed:
            # Every partition restarted, not only this one: forget them all, or each
            # partition's first acknowledgement would report the same loss again.
            self._high = {}
            for number, partition, offset in acked:
                self._high[partition] = max(self._high.get(partition, (-1, -1)), (number, offset))
            self.stats.offset_regressions += 1
            log.warning("broker offsets went backwards: it lost records; resending")
            for callback in self.on_broker_lost_data:
                callback()

    async def _send_all(
        self,
        producer: Any,  # noqa: ANN401 - aiokafka is untyped
        records: list[tuple[bytes, bytes | None]],
    ) -> list[Any]:
        """Send a batch pipelined (acks=all); one outcome (metadata or exception) per record."""
        numbers: list[int] = []
        spans = produce_spans(records, self.topic) if tracing.state.tracer is not None else None
        try:
            async with asyncio.timeout(self.timeout_s):
                futures = []
                for index, (value, key) in enumerate(records):
                    headers = record_headers(spans, index)
                    futures.append(await producer.send(self.topic, value, key=key, headers=headers))
                    # Numbered once in the producer's buffer (no await in between): the
                    # order a partition assigns offsets in.
                    numbers.append(self._sends)
                    self._sends += 1
                outcomes = list(await asyncio.gather(*futures, return_exceptions=True))
        except (KafkaError, OSError, TimeoutError) as exc:
            if spans is not None:
                spans.end(exc)
            return [exc] * len(records)
        if spans is not None:
            end_produce_spans(spans, outcomes)
        self._watch(numbers, outcomes)
        return outcomes

    async def drain(self, items: list[SpooledItem]) -> list[int]:
        """The drainer's send: produce journal rows in order; returns the acked prefix.

        The journal keeps what this returns (as produced, awaiting confirmation).
        """
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
            raise ConnectionError(f"broker refused the journal batch: {outcomes[0]!r}")
        return delivered


def _subject_key(payload: bytes) -> bytes | None:
    subject = json.loads(payload).get("subject")
    return subject.encode() if isinstance(subject, str) else None

"""The consumer group on the events topic: stats and the processing log, exactly once in effect.

Each polled batch is parsed and stored in one PostgreSQL transaction (`EventStore.record`),
then its offsets are committed: at-least-once delivery plus idempotent storage on the event
id. With PostgreSQL down the consumer seeks back to the batch's first offsets and waits with
backoff, committing nothing, then resumes by itself. A record that is not a valid event is
logged as ``rejected`` (never retried forever: a poison pill must not stop the partition).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from sensor_backend.core import tracing
from sensor_backend.core.cloudevents import CloudEvent
from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.log import get_logger
from sensor_backend.core.retry import RetryPolicy, retry_async
from sensor_backend.events.spans import process_spans
from sensor_backend.events.store import ConsumedRow, EventStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensor_backend.events.settings import EventsSettings

log = get_logger("events.consumer")
POLL_MS = 500
MAX_RECORDS = 500
# A failed poll (broker or database away): 0.25 s doubling to 5 s, no jitter.
CONSUMER_RETRY = RetryPolicy(max_attempts=None, base_s=0.25, cap_s=5.0, jitter="none")


def to_row(record: Any) -> ConsumedRow:  # noqa: ANN401 - an aiokafka ConsumerRecord
    produced_at = datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp else None
    try:
        event = CloudEvent.model_validate(json.loads(record.value))
    except (ValueError, ValidationError, TypeError) as exc:
        return ConsumedRow(
            id=f"invalid:{record.topic}:{record.partition}:{record.offset}",
            type="invalid",
            source="unknown",
            subject=None,
            sensor_type=None,
            verdict=None,
            outcome="rejected",
            detail=f"not a valid event: {type(exc).__name__}"[:200],
            event_time=None,
            produced_at=produced_at,
            partition=record.partition,
            offset=record.offset,
        )
    return ConsumedRow(
        id=event.id,
        type=event.type,
        source=event.source,
        subject=event.subject,
        sensor_type=event.sensor_type(),
        verdict=event.verdict(),
        outcome="processed",
        detail=None,
        event_time=event.time,
        produced_at=produced_at,
        partition=record.partition,
        offset=record.offset,
    )


class EventConsumer:
    def __init__(self, settings: EventsSettings, store: EventStore) -> None:
        self.settings = settings
        self.store = store
        self.status = "starting"
        self.last_error: str | None = None
        self.consumed = 0
        self.stored_new = 0
        self.lag: int | None = None
        self.partitions: list[int] = []  # assigned to this member of the group
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._reset = False
        self.resets = 0
        # Called with the ids of each batch once it is committed in PostgreSQL: the
        # journal's fast path to confirm events this process produced (DESIGN.md §7).
        self.on_stored: list[Callable[[list[str]], object]] = []

    def reset(self) -> None:
        """Reconnect from the committed offsets (after the broker lost its partitions).

        A consumer kept across a broker that restarted empty would wait at its old fetch
        positions, above the new records; a new one finds no committed offset and starts
        from the earliest record (``auto_offset_reset``). Effects are idempotent on the
        event id, so re-reading is harmless.
        """
        self._reset = True

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="events-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def _close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await self._consumer.stop()
            self._consumer = None

    async def _connect(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            self.settings.kafka_topic,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.consumer_group,
            client_id=f"{self.settings.instance_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000,
            # A SIGKILLed member is noticed after the session timeout; the embedded broker
            # rebalances only then, so a short one lets a restarted consumer resume sooner.
            session_timeout_ms=6_000,
            heartbeat_interval_ms=1_500,
        )
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()
            raise
        return consumer

    async def _run(self) -> None:
        # One retry_async per poll: a poll that works starts the next backoff from the base.
        while True:
            await retry_async(
                self._step,
                safe=True,
                policy=CONSUMER_RETRY,
                budget=None,
                retry_on=lambda exc: isinstance(exc, (DatabaseUnavailable, KafkaError, OSError)),
                on_retry=self._step_failed,
            )

    async def _step(self) -> None:
        """(Re)connect if needed, then poll once; a broker error closes the consumer."""
        try:
            if self._reset:
                self._reset = False
                self.resets += 1
                await self._close()
            if self._consumer is None:
                self._consumer = await self._connect()
                self.status = "up"
                self.last_error = None
            await self._poll_once(self._consumer)
        except DatabaseUnavailable as exc:
            self.status = "paused"
            self.last_error = f"database unavailable: {exc.message}"
            raise
        except (KafkaError, OSError) as exc:
            self.status = "down"
            self.last_error = f"{type(exc).__name__}: {exc}"
            await self._close()
            raise

    def _step_failed(self, outcome: object, delay_s: float) -> None:
        if not isinstance(outcome, DatabaseUnavailable):
            log.warning("consumer error; reconnecting", error=self.last_error, retry_in_s=delay_s)

    async def _poll_once(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
        if batches:
            polled = [record for records in batches.values() for record in records]
            rows = [to_row(record) for record in polled]
            spans = None
            if tracing.state.tracer is not None:
                spans = process_spans(polled, rows, self.settings.kafka_topic)
            try:
                try:
                    self.stored_new += await self.store.record(rows)
                except DatabaseUnavailable:
                    # Nothing committed: go back to the batch's first offsets and retry later.
                    for tp, records in batches.items():
                        consumer.seek(tp, records[0].offset)
                    raise
                # Stored, duplicates included: each of these ids is durable in PostgreSQL now.
                ids = [row.id for row in rows]
                for callback in self.on_stored:
                    callback(ids)
                await consumer.commit()
            except BaseException as exc:  # every span started is ended, whatever stopped it
                if spans is not None:
                    spans.end(exc)
                raise
            if spans is not None:
                spans.end()
            self.consumed += len(rows)
            self.status = "up"
        self.partitions = sorted(tp.partition for tp in consumer.assignment())
        self.lag = await self._lag(consumer)

    @staticmethod
    async def _lag(consumer: AIOKafkaConsumer) -> int | None:
        """Records on the broker not yet consumed: highwater minus position, summed."""
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                return None
            total += max(0, high - await consumer.position(tp))
        return total

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "group": self.settings.consumer_group,
            "consumed": self.consumed,
            "stored_new": self.stored_new,
            "lag": self.lag,
            "partitions": self.partitions,
            "resets": self.resets,
            "last_error": self.last_error,
        }

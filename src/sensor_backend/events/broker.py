"""The event service's connection to the Kafka-protocol broker.

aiokafka's ``start()`` raises when the broker is down (DESIGN.md §9), so the service starts
degraded and a background task keeps trying with capped exponential backoff. The embedded
broker keeps topics in memory and does not create them on a Metadata request, so the topic
is created with the admin API after every (re)connection and when a probe finds it missing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from sensor_backend.core.log import get_logger
from sensor_backend.core.retry import RetryPolicy, retry_async

if TYPE_CHECKING:
    from collections.abc import Callable

    from sensor_backend.events.settings import EventsSettings

log = get_logger("events.broker")
REQUEST_TIMEOUT_MS = 5000
# Until the broker answers: 0.25 s doubling to 5 s, no jitter (one producer per process).
BROKER_RECONNECT = RetryPolicy(max_attempts=None, base_s=0.25, cap_s=5.0, jitter="none")


class BrokerUnavailableError(ConnectionError):
    """The broker cannot be reached or the producer is not connected."""


class BrokerConnection:
    def __init__(self, settings: EventsSettings) -> None:
        self.settings = settings
        self.status = "connecting"
        self.last_error: str | None = None
        self.producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        # Called when the topic had to be recreated: the broker lost its data (the embedded
        # broker keeps it in memory), so consumer positions from before are meaningless.
        self.on_topic_recreated: list[Callable[[], None]] = []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_loop(), name="broker-connect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await self.producer.stop()
            self.producer = None

    def mark_down(self, reason: str) -> None:
        """A produce failed: stop producing until a probe has verified the broker again."""
        if self.status == "up":
            self.status = "down"
            self.last_error = reason

    @property
    def ready(self) -> bool:
        """Producing is safe: connected, and the topic verified since the last failure."""
        return self.producer is not None and self.status == "up"

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=self.settings.kafka_idempotence,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            client_id=self.settings.instance_id,
        )

    async def _renew_producer(self) -> None:
        """A new producer with fresh metadata (the old one knows the lost topic's layout)."""
        fresh = self._new_producer()
        await fresh.start()
        old, self.producer = self.producer, fresh
        if old is not None:
            with contextlib.suppress(KafkaError, OSError):
                await old.stop()

    async def _connect_loop(self) -> None:
        await retry_async(
            self._connect_once,
            safe=True,
            policy=BROKER_RECONNECT,
            budget=None,
            retry_on=lambda exc: isinstance(exc, (KafkaError, OSError)),
            on_retry=self._connect_failed,
        )
        self.status = "up"
        self.last_error = None
        log.info("connected to broker", bootstrap=self.settings.kafka_bootstrap_servers)

    async def _connect_once(self) -> None:
        producer = self._new_producer()
        try:
            await producer.start()
            await self.ensure_topic()
        except (KafkaError, OSError):
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            raise
        self.producer = producer

    def _connect_failed(self, outcome: object, delay_s: float) -> None:
        self.status = "down"
        self.last_error = f"{type(outcome).__name__}: {outcome}"
        log.warning("broker not reachable; retrying", error=self.last_error, retry_in_s=delay_s)

    async def ensure_topic(self) -> bool:
        """Create the events topic unless it exists; True when it was created."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(self.settings.kafka_topic, self.settings.kafka_partitions, 1)]
            )
        except TopicAlreadyExistsError:
            return False
        finally:
            await admin.close()
        log.info("created topic", topic=self.settings.kafka_topic)
        return True

    async def probe(self) -> dict[str, Any]:
        """Health probe: broker metadata answers and the topic exists (recreated if lost)."""
        if self.producer is None:
            raise BrokerUnavailableError(f"broker {self.status}: {self.last_error or 'connecting'}")
        try:
            metadata = await self.producer.client.fetch_all_metadata()
            topic = self.settings.kafka_topic
            if topic not in metadata.topics():
                # The embedded broker restarted with empty memory storage. Until the topic
                # is back and the producer has fresh metadata, events wait in the journal
                # (``ready`` is False): a produce racing the restart could land in a topic
                # the broker auto-creates with another layout, where no consumer reads it.
                self.status = "recovering"
                await self.ensure_topic()
                await self._renew_producer()
                log.warning("topic was missing: the broker lost its data; consumers reset")
                for callback in self.on_topic_recreated:
                    callback()
        except (KafkaError, OSError) as exc:
            self.status = "down"
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise BrokerUnavailableError(self.last_error) from exc
        self.status = "up"
        return {
            "bootstrap": self.settings.kafka_bootstrap_servers,
            "topic": topic,
            "brokers": len(metadata.brokers()),
        }

"""The event service's parts and their lifecycle: broker, spool, drainer, consumer, store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.drainer import Drainer

if TYPE_CHECKING:
    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.spool import Spool
    from sensor_backend.events.broker import BrokerConnection
    from sensor_backend.events.consumer import EventConsumer
    from sensor_backend.events.publisher import Publisher
    from sensor_backend.events.settings import EventsSettings
    from sensor_backend.events.store import EventStore


class EventService:
    def __init__(
        self,
        *,
        settings: EventsSettings,
        broker: BrokerConnection,
        breaker: CircuitBreaker,
        spool: Spool,
        publisher: Publisher,
        consumer: EventConsumer,
        store: EventStore,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.breaker = breaker
        self.spool = spool
        self.publisher = publisher
        self.consumer = consumer
        self.store = store
        self.drainer = Drainer(spool, publisher.drain, batch=200, idle_s=0.5, name="events-spool")
        publisher.on_queued.append(self.drainer.wake)

    async def start(self) -> None:
        await self.spool.open()
        await self.drainer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.drainer.stop()
        await self.spool.close()

    async def stats(self) -> dict[str, Any]:
        """Producer counters (this process), consumer counters (PostgreSQL, all time)."""
        doc: dict[str, Any] = {
            "produced": self.publisher.stats.as_dict(),
            "spool": self.spool.snapshot(),
            "drainer": self.drainer.snapshot(),
            "consumer": self.consumer.snapshot(),
            "breaker": self.breaker.snapshot(),
            # The DESIGN's top-level names, for quick reading.
            "received": self.publisher.stats.received,
            "sent": self.publisher.stats.sent,
            "queued": self.publisher.stats.queued,
            "queue_depth": self.spool.depth,
            "dropped": self.publisher.stats.dropped,
            "duplicates": self.publisher.stats.duplicates,
        }
        try:
            counters = await self.store.counters()
            latency = await self.store.latency_ms()
        except DatabaseUnavailable as exc:
            doc["processed"] = {"available": False, "reason": exc.message}
            return doc
        doc["processed"] = {
            "available": True,
            "total": counters.get("consumed", 0),
            "rejected": counters.get("outcome:rejected", 0),
            "by_type": _group(counters, "type:"),
            "by_sensor_type": _group(counters, "sensor_type:"),
            "verdicts": {v: counters.get(f"verdict:{v}", 0) for v in ("pass", "suspect", "fail")},
            **latency,
        }
        return doc


def _group(counters: dict[str, int], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): v for k, v in sorted(counters.items()) if k.startswith(prefix)}

"""The event service's parts and their lifecycle: broker, journal, drainer, consumer, store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.drainer import Drainer
from sensor_backend.core.log import get_logger
from sensor_backend.events.confirmer import Confirmer

if TYPE_CHECKING:
    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.journal import Journal
    from sensor_backend.events.broker import BrokerConnection
    from sensor_backend.events.consumer import EventConsumer
    from sensor_backend.events.publisher import Publisher
    from sensor_backend.events.settings import EventsSettings
    from sensor_backend.events.store import EventStore

log = get_logger("events.service")


class EventService:
    def __init__(
        self,
        *,
        settings: EventsSettings,
        broker: BrokerConnection,
        breaker: CircuitBreaker,
        journal: Journal,
        publisher: Publisher,
        consumer: EventConsumer,
        store: EventStore,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.breaker = breaker
        self.journal = journal
        self.publisher = publisher
        self.consumer = consumer
        self.store = store
        self.drainer = Drainer(journal, publisher.drain, batch=200, idle_s=0.5, name="events-spool")
        self.confirmer = Confirmer(
            journal,
            store,
            interval_s=settings.journal_confirm_interval_s,
            min_age_s=settings.journal_confirm_min_age_s,
            on_requeued=self.drainer.wake,
        )
        publisher.on_queued.append(self.drainer.wake)
        publisher.on_broker_lost_data.append(self.broker_lost_data)
        consumer.on_stored.append(self.confirmer.stored)
        broker.on_topic_recreated.append(self.topic_recreated)

    def broker_lost_data(self) -> None:
        """Produce every unconfirmed event again, in order; new events queue behind them."""
        requeued = self.journal.resend_all()
        log.warning("broker lost its data; producing unconfirmed events again", requeued=requeued)
        self.drainer.wake()

    def topic_recreated(self) -> None:
        """The broker restarted empty: offsets start from 0 and the consumer starts over."""
        self.publisher.forget_offsets()
        self.consumer.reset()
        self.broker_lost_data()

    async def start(self) -> None:
        await self.journal.open()
        await self.drainer.start()
        await self.consumer.start()
        await self.confirmer.start()

    async def stop(self) -> None:
        await self.confirmer.stop()
        await self.consumer.stop()
        await self.drainer.stop()
        await self.journal.close()

    def journal_facts(self) -> dict[str, Any]:
        """Journal depth, oldest unconfirmed age, resends: for /health and /stats."""
        return {**self.journal.snapshot(), "confirmer": self.confirmer.snapshot()}

    async def stats(self) -> dict[str, Any]:
        """Producer counters (this process), consumer counters (PostgreSQL, all time)."""
        journal = self.journal_facts()
        doc: dict[str, Any] = {
            "produced": self.publisher.stats.as_dict(),
            "journal": journal,
            "drainer": self.drainer.snapshot(),
            "consumer": self.consumer.snapshot(),
            "breaker": self.breaker.snapshot(),
            # The DESIGN's top-level names, for quick reading.
            "received": self.publisher.stats.received,
            "sent": self.publisher.stats.sent,
            "queued": self.publisher.stats.queued,
            # Waiting to be produced (broker down, or resending after it lost its data).
            "queue_depth": self.journal.backlog,
            # Accepted and not yet stored by a consumer: what a broker crash must not lose.
            "journal_depth": self.journal.unconfirmed,
            "oldest_unconfirmed_age_s": journal["oldest_unconfirmed_age_s"],
            "reproduced": self.journal.reproduced,
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

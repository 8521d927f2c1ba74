"""Event service composition root (:8003)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.db_attach import attach_database
from sensor_backend.core.http_client import SessionHolder
from sensor_backend.core.journal import Journal
from sensor_backend.core.metrics import SpoolCollector
from sensor_backend.core.security import AuthGuard
from sensor_backend.core.sqlite_files import adopt_legacy_file
from sensor_backend.events.breakers import events_breakers
from sensor_backend.events.broker import BrokerConnection
from sensor_backend.events.consumer import EventConsumer
from sensor_backend.events.metrics import JournalCollector
from sensor_backend.events.publisher import Publisher
from sensor_backend.events.routes import router
from sensor_backend.events.service import EventService
from sensor_backend.events.settings import EventsSettings
from sensor_backend.events.store import EventStore

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(settings: EventsSettings | None = None) -> FastAPI:
    settings = settings or EventsSettings()
    ctx = ServiceContext(settings, max_body_bytes=settings.max_body_bytes)
    # PostgreSQL down: producing and spooling keep working, consuming pauses, so the
    # database only degrades the event service.
    breakers = events_breakers(settings, ctx.breakers)
    db = attach_database(
        ctx,
        settings,
        breaker=breakers.database,
        schema="events",
        package="sensor_backend.events",
        essential=False,
    )
    http = SessionHolder(ctx)
    guard = AuthGuard(
        ctx,
        http,
        breaker=breakers.auth,
        auth_urls=settings.auth_service_urls,
        jwks_path=settings.spool_dir / "jwks.json",
    )
    broker = BrokerConnection(settings)
    breaker = breakers.broker
    # <spool_dir>/journal/events.sqlite3; before, <spool_dir>/events.sqlite3/events.sqlite3,
    # which is moved at startup so that rows left there are resent.
    journal = Journal(
        settings.spool_dir / "journal",
        max_items=settings.spool_max_items,
        max_bytes=settings.spool_max_bytes,
        name="events",
        resend_after_s=settings.journal_resend_after_s,
    )
    store = EventStore(db)
    events = EventService(
        settings=settings,
        broker=broker,
        breaker=breaker,
        journal=journal,
        publisher=Publisher(
            broker=broker,
            journal=journal,
            breaker=breaker,
            topic=settings.kafka_topic,
            timeout_s=settings.produce_timeout_s,
        ),
        consumer=EventConsumer(settings, store),
        store=store,
    )
    ctx.metrics.registry.register(JournalCollector(events))
    ctx.metrics.registry.register(SpoolCollector("events_journal", journal.snapshot))

    async def adopt_legacy_journal() -> None:
        legacy = settings.spool_dir / "events.sqlite3" / "events.sqlite3"
        await asyncio.to_thread(adopt_legacy_file, legacy, journal.file)

    ctx.on_startup.append(adopt_legacy_journal)
    ctx.on_startup.append(broker.start)
    ctx.on_startup.append(events.start)
    ctx.on_shutdown.append(broker.stop)
    ctx.on_shutdown.append(events.stop)

    async def broker_probe() -> dict[str, object]:
        details = await broker.probe()
        # The broker answers again: probe it with real sends now, not after an open wait
        # that doubled through a long outage, and drain the journal.
        if breaker.health_check_passed():
            events.drainer.wake()
        return details

    # Broker down is survivable (events wait in the journal), so it degrades, not fails.
    ctx.health.add_probe(
        "broker",
        broker_probe,
        capability="producing to the broker (accepted events wait in the local journal)",
    )
    ctx.health.add_extra(
        lambda: {
            "journal": events.journal_facts(),
            # The console's queue table (gateway/console) reads spool.depth.
            "spool": {"depth": journal.unconfirmed, "backlog": journal.backlog},
            "consumer": events.consumer.snapshot(),
        }
    )
    app = create_app(ctx, title="sensor-backend event service")
    app.include_router(router)
    app.state.db = db
    app.state.broker = broker
    app.state.events = events
    app.state.guard = guard
    return app

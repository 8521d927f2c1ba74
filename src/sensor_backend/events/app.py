"""Event service composition root (:8003)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.service import attach_database
from sensor_backend.events.broker import BrokerConnection
from sensor_backend.events.settings import EventsSettings

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(settings: EventsSettings | None = None) -> FastAPI:
    settings = settings or EventsSettings()
    ctx = ServiceContext(settings)
    # PostgreSQL down: producing and spooling keep working, consuming pauses, so the
    # database only degrades the event service.
    db = attach_database(
        ctx, settings, schema="events", package="sensor_backend.events", essential=False
    )
    broker = BrokerConnection(settings)
    ctx.on_startup.append(broker.start)
    ctx.on_shutdown.append(broker.stop)
    # Broker down is survivable (events spool durably), so it degrades rather than fails.
    ctx.health.add_probe("broker", broker.probe)
    app = create_app(ctx, title="sensor-backend event service")
    app.state.db = db
    app.state.broker = broker
    return app

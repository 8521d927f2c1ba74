"""Sensor service composition root (:8002)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.service import attach_database
from sensor_backend.core.upstreams import SessionHolder, add_service_probes
from sensor_backend.sensor.settings import SensorSettings

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(settings: SensorSettings | None = None) -> FastAPI:
    settings = settings or SensorSettings()
    ctx = ServiceContext(settings)
    db = attach_database(ctx, settings, schema="sensor", package="sensor_backend.sensor")
    http = SessionHolder(ctx)
    # Auth and events are soft dependencies: JWKS fallback and the outbox keep the sensor
    # service working without them (DESIGN.md §4, §5), so they only degrade its status.
    add_service_probes(ctx, http, "auth", settings.auth_service_urls)
    add_service_probes(ctx, http, "events", settings.events_service_urls)
    app = create_app(ctx, title="sensor-backend sensor service")
    app.state.db = db
    app.state.http = http
    return app

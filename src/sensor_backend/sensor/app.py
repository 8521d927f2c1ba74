"""Sensor service composition root (:8002)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.db_attach import attach_database
from sensor_backend.core.http_client import SessionHolder
from sensor_backend.core.security import AuthGuard
from sensor_backend.core.service_probes import add_service_probes
from sensor_backend.sensor.breakers import sensor_breakers
from sensor_backend.sensor.dead_letter_routes import dead_letter_router
from sensor_backend.sensor.readings_csv import readings_csv_router
from sensor_backend.sensor.routes import router
from sensor_backend.sensor.service import SensorService
from sensor_backend.sensor.settings import SensorSettings

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(settings: SensorSettings | None = None) -> FastAPI:
    settings = settings or SensorSettings()
    # The body limit is sized for a million readings (settings.py); only POST /test needs
    # it, and every body is read after the token check.
    ctx = ServiceContext(settings, max_body_bytes=settings.max_body_bytes)
    breakers = sensor_breakers(settings, ctx.breakers)
    db = attach_database(
        ctx, settings, breaker=breakers.database, schema="sensor", package="sensor_backend.sensor"
    )
    http = SessionHolder(ctx)
    guard = AuthGuard(
        ctx,
        http,
        breaker=breakers.auth,
        auth_urls=settings.auth_service_urls,
        jwks_path=settings.spool_dir / "jwks.json",
    )
    # Auth and events are soft dependencies (DESIGN.md §4, §5). Without auth every route
    # keeps working through the JWKS fallback: nothing is lost, so the status stays
    # healthy. Without events, tests still run but their events wait in the outbox: a
    # delayed capability, so degraded.
    add_service_probes(
        ctx,
        http,
        "auth",
        settings.auth_service_urls,
        capability="token checks (revocation, user still exists)",
        fallback=guard.fallback_in_use,
    )
    sensor = SensorService(ctx, settings, db, http, events_breaker=breakers.events)
    # The relay's client readmits replicas and ends its breaker's wait on these probes.
    add_service_probes(
        ctx,
        http,
        "events",
        settings.events_service_urls,
        sensor.events.probed,
        capability="event delivery (completed tests' events wait in the outbox)",
    )
    ctx.on_startup.append(sensor.start)
    ctx.on_shutdown.append(sensor.stop)
    ctx.health.add_extra(sensor.facts)
    app = create_app(ctx, title="sensor-backend sensor service")
    app.include_router(router)
    app.include_router(readings_csv_router)
    app.include_router(dead_letter_router)
    app.state.db = db
    app.state.http = http
    app.state.guard = guard
    app.state.sensor = sensor
    return app

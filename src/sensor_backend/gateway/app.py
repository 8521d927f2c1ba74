"""API gateway composition root (:8000)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.breaker import BreakerConfig, CircuitBreaker
from sensor_backend.core.upstreams import SessionHolder, add_service_probes
from sensor_backend.gateway.health import GatewayHealth
from sensor_backend.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    ctx = ServiceContext(settings)
    http = SessionHolder(ctx)
    upstreams = settings.upstreams()
    for service, urls in upstreams.items():
        ctx.breakers.add(
            CircuitBreaker(
                service,
                BreakerConfig(
                    consecutive_failures=settings.breaker_failures,
                    open_wait_s=settings.breaker_open_s,
                ),
            )
        )
        add_service_probes(ctx, http, service, urls)
    aggregated = GatewayHealth(ctx.health, ctx.breakers, upstreams)
    app = create_app(ctx, title="sensor-backend API gateway", health_report=aggregated.report)
    app.state.http = http
    return app

"""API gateway composition root (:8000)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.dead_letter import DeadLetterCollector, DeadLetterStore
from sensor_backend.core.drainer import Drainer
from sensor_backend.core.http_client import SessionHolder
from sensor_backend.core.metrics import SpoolCollector, templated
from sensor_backend.core.openapi import install_openapi
from sensor_backend.core.replicas import ReplicaPool
from sensor_backend.core.retry import RetryBudget
from sensor_backend.core.security import AuthGuard
from sensor_backend.core.service_client import ServiceClient
from sensor_backend.core.service_probes import add_service_probes
from sensor_backend.core.service_token import ServiceTokenProvider
from sensor_backend.core.spool import Spool
from sensor_backend.gateway.breakers import gateway_breakers
from sensor_backend.gateway.console_routes import console_router
from sensor_backend.gateway.dead_letter_routes import dead_letter_router
from sensor_backend.gateway.event_queue import EventQueue
from sensor_backend.gateway.gateway import Gateway
from sensor_backend.gateway.health import GatewayHealth
from sensor_backend.gateway.routes import EVENT_PATHS, openapi_paths, proxy_routes, router
from sensor_backend.gateway.service_openapi import service_schemas
from sensor_backend.gateway.settings import GatewaySettings, public_name
from sensor_backend.gateway.slo import prime_submission_series, slo_router

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sensor_backend.core.breaker import CircuitBreaker


def _service_client(
    http: SessionHolder,
    settings: GatewaySettings,
    name: str,
    urls: list[str],
    breaker: CircuitBreaker,
) -> ServiceClient:
    return ServiceClient(
        name,
        ReplicaPool(name, urls, eject_after=settings.eject_after),
        breaker,
        RetryBudget(),
        lambda: http.session,
        timeout_s=settings.http_total_timeout_s,
        connect_timeout_s=settings.http_connect_timeout_s,
    )


def build_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    ctx = ServiceContext(
        settings, max_body_bytes=settings.max_body_bytes, body_scan_paths=frozenset(EVENT_PATHS)
    )
    http = SessionHolder(ctx)
    breakers = gateway_breakers(settings, ctx.breakers)
    clients = {
        name: _service_client(http, settings, name, urls, breakers[name])
        for name, urls in settings.service_urls().items()
    }
    for client in clients.values():
        add_service_probes(ctx, http, client.name, client.pool.urls, client.probed)
    # Token checks share the auth service's breaker: "is auth down?" is one question.
    guard = AuthGuard(
        ctx,
        http,
        breaker=breakers["auth"],
        auth_urls=settings.auth_service_urls,
        jwks_path=settings.spool_dir / "jwks.json",
    )
    spool = Spool(
        settings.spool_dir,
        max_items=settings.spool_max_items,
        max_bytes=settings.spool_max_bytes,
        name="events",
    )
    # Beside the spool, as durable: events the event service refused for good.
    dead_letters = DeadLetterStore(settings.spool_dir, name="events-dead-letters")
    limits = settings.event_limits()
    events = EventQueue(
        spool,
        clients["events"],
        ServiceTokenProvider(
            lambda: http.session,
            settings.auth_service_urls,
            username=settings.service_account_username,
            password=settings.service_account_password,
        ),
        limits=limits,
        dead_letters=dead_letters,
    )
    # Batches the event service accepts: the contract's count and bytes (core/event_limits).
    drainer = Drainer(
        spool,
        events.forward,
        batch=limits.max_batch_events,
        max_bytes=limits.max_batch_bytes,
        idle_s=0.5,
        name="gateway-events",
    )
    events.wake = drainer.wake
    clients["events"].on_ready.append(drainer.retry_now)

    async def start_queue() -> None:
        await spool.open()
        await dead_letters.open()
        await drainer.start()

    async def stop_queue() -> None:
        await drainer.stop()
        await dead_letters.close()
        await spool.close()

    ctx.on_startup.append(start_queue)
    ctx.on_shutdown.append(stop_queue)
    gateway = Gateway(settings=settings, ctx=ctx, clients=clients, guard=guard, events=events)
    aggregated = GatewayHealth(ctx.health, ctx.breakers, settings.service_urls())
    aggregated.extras.append(
        lambda: {
            "event_spool": events.snapshot(),
            "drainer": drainer.snapshot(),
            "dead_letters": dead_letters.snapshot(),
        }
    )
    ctx.metrics.registry.register(DeadLetterCollector("gateway", dead_letters.snapshot))
    ctx.metrics.registry.register(SpoolCollector("gateway", events.snapshot))
    aggregated.extras.append(
        lambda: {"upstreams": {public_name(n): c.pool.snapshot() for n, c in clients.items()}}
    )
    aggregated.extras.append(gateway.snapshot)
    app = create_app(ctx, title="sensor-backend API gateway", health_report=aggregated.report)
    app.include_router(router)
    app.include_router(console_router)
    app.include_router(dead_letter_router)
    app.include_router(slo_router)
    prime_submission_series(ctx.metrics)
    app.router.routes.extend(templated(proxy_routes(gateway)))
    app.state.gateway = gateway
    app.state.guard = guard
    app.state.http = http
    app.state.prometheus_url = settings.prometheus_url

    def add_proxied(schema: dict[str, Any]) -> None:
        schema["paths"].update(openapi_paths())
        schema.setdefault("components", {}).setdefault("schemas", {}).update(service_schemas())

    install_openapi(app, extend=add_proxied)
    return app

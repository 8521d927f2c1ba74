"""`attach_database`: a service's database, its breaker and its health probe, wired into the app."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Any

from sensor_backend.core.breaker import BreakerState
from sensor_backend.core.db import Database, server_answers

if TYPE_CHECKING:
    from sensor_backend.core.app import ServiceContext
    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.settings import DatabaseSettingsMixin


def attach_database(
    ctx: ServiceContext,
    settings: DatabaseSettingsMixin,
    *,
    breaker: CircuitBreaker,
    schema: str,
    package: str,
    essential: bool = True,
) -> Database:
    """A `Database` for ``schema`` behind ``breaker``, started and stopped with the app.

    Its migrations live in ``<package>/migrations`` and ship inside the wheel.
    """
    db = Database(
        dsn=settings.database_url,
        schema=schema,
        migrations=files(package).joinpath("migrations"),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        command_timeout_s=settings.db_command_timeout_s,
        breaker=breaker,
    )

    async def probe() -> dict[str, Any]:
        if breaker.state is BreakerState.OPEN and await server_answers(
            settings.database_url, timeout_s=1.0
        ):
            # The breaker would refuse our ping; the server answers a direct one, so let
            # real calls probe now instead of after an open wait doubled by a long outage.
            breaker.health_check_passed()
        if db.status != "up":
            raise ConnectionError(f"database {db.status}: {db.last_error or 'not connected'}")
        latency = await db.ping()
        return {"schema": schema, "ping_ms": round(latency * 1000, 3)}

    ctx.on_startup.append(db.start)
    ctx.on_shutdown.append(db.stop)
    ctx.health.add_probe(
        "database", probe, essential=essential, capability=f"the {schema} schema (PostgreSQL)"
    )
    return db

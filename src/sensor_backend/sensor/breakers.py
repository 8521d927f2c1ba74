"""The sensor service's circuit breakers, the only place they are built, from its settings.

database  its PostgreSQL schema (core/db.py), ``db_breaker_*``
auth      auth's ``/verify`` for token checks (core/token_auth.py), ``auth_breaker_*``
events    the relay's calls to the event service (sensor/relay.py), ``relay_breaker_*``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensor_backend.core.breaker import CircuitBreaker

if TYPE_CHECKING:
    from sensor_backend.core.breaker import BreakerRegistry
    from sensor_backend.sensor.settings import SensorSettings

__all__ = ["SensorBreakers", "sensor_breakers"]


@dataclass(frozen=True, slots=True)
class SensorBreakers:
    database: CircuitBreaker
    auth: CircuitBreaker
    events: CircuitBreaker


def sensor_breakers(settings: SensorSettings, registry: BreakerRegistry) -> SensorBreakers:
    """Build the service's breakers and register them (for ``/health`` and metrics)."""
    return SensorBreakers(
        database=registry.add(CircuitBreaker("database", settings.db_breaker_config())),
        auth=registry.add(CircuitBreaker("auth", settings.auth_breaker_config())),
        events=registry.add(CircuitBreaker("events", settings.relay_breaker_config())),
    )

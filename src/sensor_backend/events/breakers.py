"""The event service's circuit breakers, the only place they are built, from its settings.

database  its PostgreSQL schema (core/db.py), ``db_breaker_*``
auth      auth's ``/verify`` for token checks (core/token_auth.py), ``auth_breaker_*``
broker    producing to the broker (events/publisher.py), ``broker_breaker_*``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensor_backend.core.breaker import CircuitBreaker

if TYPE_CHECKING:
    from sensor_backend.core.breaker import BreakerRegistry
    from sensor_backend.events.settings import EventsSettings

__all__ = ["EventsBreakers", "events_breakers"]


@dataclass(frozen=True, slots=True)
class EventsBreakers:
    database: CircuitBreaker
    auth: CircuitBreaker
    broker: CircuitBreaker


def events_breakers(settings: EventsSettings, registry: BreakerRegistry) -> EventsBreakers:
    """Build the service's breakers and register them (for ``/health`` and metrics)."""
    return EventsBreakers(
        database=registry.add(CircuitBreaker("database", settings.db_breaker_config())),
        auth=registry.add(CircuitBreaker("auth", settings.auth_breaker_config())),
        broker=registry.add(CircuitBreaker("broker", settings.broker_breaker_config())),
    )

"""The auth service's circuit breaker, the only place it is built, from its settings.

database  its PostgreSQL schema (core/db.py), ``db_breaker_*``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensor_backend.core.breaker import CircuitBreaker

if TYPE_CHECKING:
    from sensor_backend.auth.settings import AuthSettings
    from sensor_backend.core.breaker import BreakerRegistry

__all__ = ["AuthBreakers", "auth_breakers"]


@dataclass(frozen=True, slots=True)
class AuthBreakers:
    database: CircuitBreaker


def auth_breakers(settings: AuthSettings, registry: BreakerRegistry) -> AuthBreakers:
    """Build the service's breaker and register it (for ``/health`` and metrics)."""
    return AuthBreakers(
        database=registry.add(CircuitBreaker("database", settings.db_breaker_config())),
    )

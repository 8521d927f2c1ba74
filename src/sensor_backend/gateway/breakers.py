"""The gateway's circuit breakers, the only place they are built: one per service it calls.

Every breaker is configured from `GatewaySettings.service_breaker_config` (Kong's model: one
breaker per service, docs/resilience.md) and handed explicitly to what uses it: the
service's `ServiceClient`, and for auth also the `AuthGuard` that checks tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.breaker import CircuitBreaker

if TYPE_CHECKING:
    from sensor_backend.core.breaker import BreakerRegistry
    from sensor_backend.gateway.settings import GatewaySettings

__all__ = ["gateway_breakers"]


def gateway_breakers(
    settings: GatewaySettings, registry: BreakerRegistry
) -> dict[str, CircuitBreaker]:
    """``{service: breaker}`` for every service in ``settings.service_urls()``, registered."""
    config = settings.service_breaker_config()
    return {name: registry.add(CircuitBreaker(name, config)) for name in settings.service_urls()}

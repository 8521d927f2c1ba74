"""Each service's breakers are built in its breakers.py, from its settings, once."""

from __future__ import annotations

import pytest

from sensor_backend.auth.breakers import auth_breakers
from sensor_backend.auth.settings import AuthSettings
from sensor_backend.core.breaker import BreakerConfig, BreakerRegistry
from sensor_backend.events.breakers import events_breakers
from sensor_backend.events.settings import EventsSettings
from sensor_backend.gateway.breakers import gateway_breakers
from sensor_backend.gateway.settings import GatewaySettings
from sensor_backend.sensor.breakers import sensor_breakers
from sensor_backend.sensor.settings import SensorSettings


def test_gateway_one_breaker_per_service_from_settings() -> None:
    settings = GatewaySettings(breaker_failures=7, breaker_open_s=3.0, breaker_max_open_s=9.0)
    registry = BreakerRegistry()
    breakers = gateway_breakers(settings, registry)
    assert list(breakers) == ["auth", "sensor", "events"] == registry.names()
    config = breakers["events"].config
    assert (config.consecutive_failures, config.open_wait_s, config.max_open_wait_s) == (
        7,
        3.0,
        9.0,
    )


def test_sensor_and_events_breakers_keep_the_former_timings() -> None:
    """The values that were hard-coded are the settings' defaults now."""
    registry = BreakerRegistry()
    sensor = sensor_breakers(SensorSettings(), registry)
    assert registry.names() == ["database", "auth", "events"]
    assert sensor.auth.config == BreakerConfig(open_wait_s=10.0, max_open_wait_s=60.0)
    assert sensor.database.config.max_open_wait_s == 60.0
    assert sensor.events.config.open_wait_s == SensorSettings().relay_breaker_open_s
    events = events_breakers(EventsSettings(), BreakerRegistry())
    assert events.broker.config.max_open_wait_s == 60.0
    assert events.broker.config.half_open_max_wait_s == EventsSettings().produce_timeout_s * 2


def test_a_name_is_built_once() -> None:
    """A second construction under a taken name is an error, never a silent reuse."""
    registry = BreakerRegistry()
    auth_breakers(AuthSettings(), registry)
    with pytest.raises(ValueError, match="already registered"):
        auth_breakers(AuthSettings(), registry)

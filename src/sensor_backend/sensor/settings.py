"""Sensor service settings (env prefix ``SENSOR_``; shared names unprefixed, DESIGN.md §3).

Why these defaults:

* ``max_readings`` 1,000,000 and ``max_body_bytes`` 64 MiB: a million readings with
  timestamps and reference values is about 25 MB of JSON, so the body limit leaves room
  for long number formats while still bounding what one request can make us buffer.
* ``lease_s`` 30 and ``max_attempts`` 3: an analysis of a million readings takes well under
  a second (``bench/sensor_analysis.py``), so 30 s is generous, and the lease is renewed
  every third of it while a job runs; a job whose worker dies three times in a row (a
  poison job that crashes its process) ends ``failed`` instead of looping forever.
* The relay's breaker opens after 3 failed deliveries for 2 s, doubling to 30 s: it guards
  a background loop, not a user's request, so probing often costs nothing and drains the
  outbox soon after the event service returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from sensor_backend.core.breaker import BreakerConfig
from sensor_backend.core.event_limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    EventLimits,
)
from sensor_backend.core.settings import (
    DatabaseSettingsMixin,
    Environment,
    ServiceSettings,
    UrlList,
    database_url_field,
    shared,
    split_urls,
)

PREFIX = "SENSOR_"
MIB = 1024 * 1024


class SensorSettings(DatabaseSettingsMixin, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")
    service_name: ClassVar[str] = "sensor"
    default_port: ClassVar[int] = 8002

    database_url: str = database_url_field(PREFIX)

    auth_service_urls: UrlList = Field(
        default=["http://127.0.0.1:8001"], validation_alias=shared("AUTH_SERVICE_URLS", PREFIX)
    )
    events_service_urls: UrlList = Field(
        default=["http://127.0.0.1:8003"], validation_alias=shared("EVENTS_SERVICE_URLS", PREFIX)
    )
    # Local state of this instance: the JWKS cache file (DESIGN.md §4).
    spool_dir: Path = Field(
        default=Path("var/spool/sensor"), validation_alias=shared("SPOOL_DIR", PREFIX)
    )

    # Requests.
    max_readings: int = Field(default=1_000_000, ge=1, le=10_000_000)
    max_body_bytes: int = Field(default=64 * MIB, ge=64 * 1024)
    # Index lists per check kept in a stored result (the counts are always complete).
    result_max_indices: int = Field(default=1000, ge=0)

    # The durable queue (sensor.tests).
    workers: int = Field(default=2, ge=0, le=64, description="0: this replica only serves")
    lease_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    poll_interval_s: float = Field(default=0.5, gt=0)
    retry_base_s: float = Field(default=1.0, gt=0, description="backoff before a retried job")
    max_job_s: float = Field(default=600.0, gt=0, description="give up waiting for one job")
    # Test hook: sleep this long before each analysis, so a test can kill a busy worker.
    work_delay_s: float = Field(default=0.0, ge=0)

    # The transactional outbox and its relay to the event service.
    # The event contract (core/event_limits.py), the same defaults as the gateway's and the
    # event service's: a claim is bounded by count and by bytes, and an event over the
    # per-event limit is dead-lettered rather than posted.
    relay_batch_size: int = Field(default=MAX_BATCH_EVENTS, ge=1, le=10_000)
    relay_max_batch_bytes: int = Field(default=MAX_BATCH_BYTES, ge=1024)
    relay_max_event_bytes: int = Field(default=MAX_EVENT_BYTES, ge=1024)
    relay_lease_s: float = Field(default=30.0, gt=0)
    relay_max_backoff_s: float = Field(default=30.0, gt=0)
    relay_breaker_failures: int = Field(default=3, ge=1)
    relay_breaker_open_s: float = Field(default=2.0, gt=0)
    relay_breaker_max_open_s: float = Field(default=30.0, gt=0)
    outbox_retention_s: float = Field(default=7 * 86400.0, gt=0)

    # The machine account the relay calls the event service as (core/service_token.py).
    service_account_username: str = Field(
        default="sensor-relay", validation_alias=AliasChoices("SERVICE_ACCOUNT_USERNAME")
    )
    service_account_password: str = Field(
        default="", validation_alias=AliasChoices("SERVICE_ACCOUNT_PASSWORD")
    )

    _split = field_validator("auth_service_urls", "events_service_urls", mode="before")(split_urls)

    def relay_breaker_config(self) -> BreakerConfig:
        """The breaker of the relay's client of the event service (sensor/relay.py)."""
        return BreakerConfig(
            consecutive_failures=self.relay_breaker_failures,
            open_wait_s=self.relay_breaker_open_s,
            max_open_wait_s=self.relay_breaker_max_open_s,
            half_open_max_wait_s=self.http_total_timeout_s * 2,
        )

    def event_limits(self) -> EventLimits:
        return EventLimits(
            max_event_bytes=self.relay_max_event_bytes,
            max_batch_events=self.relay_batch_size,
            max_batch_bytes=self.relay_max_batch_bytes,
        )

    @model_validator(mode="after")
    def _production_rules(self) -> SensorSettings:
        if self.environment is Environment.PRODUCTION and self.work_delay_s > 0:
            raise ValueError("SENSOR_WORK_DELAY_S is a test hook; it must be 0 in production")
        if self.relay_breaker_max_open_s < self.relay_breaker_open_s:
            raise ValueError("relay_breaker_max_open_s must be >= relay_breaker_open_s")
        self.event_limits()  # raises ValueError for a batch limit below one maximal event
        # Without the service account the outbox can never be delivered.
        self.reject_placeholder("SERVICE_ACCOUNT_PASSWORD", self.service_account_password)
        return self

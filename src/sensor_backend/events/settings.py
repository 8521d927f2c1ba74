"""Event service settings (env prefix ``EVENTS_``; shared names unprefixed, DESIGN.md §3)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator, model_validator
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
    ServiceSettings,
    UrlList,
    database_url_field,
    shared,
    split_urls,
)

PREFIX = "EVENTS_"


class EventsSettings(DatabaseSettingsMixin, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")
    service_name: ClassVar[str] = "events"
    default_port: ClassVar[int] = 8003

    database_url: str = database_url_field(PREFIX)
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias=shared("KAFKA_BOOTSTRAP_SERVERS", PREFIX)
    )
    kafka_topic: str = Field(
        default="sensor-events", validation_alias=shared("KAFKA_TOPIC", PREFIX)
    )
    kafka_partitions: int = Field(default=3, ge=1)
    # aiokafka's idempotent producer fails against the embedded tansu broker (DESIGN.md §2):
    # on for Apache Kafka, off for the embedded broker; the event id dedups downstream anyway.
    kafka_idempotence: bool = Field(
        default=False, validation_alias=shared("KAFKA_IDEMPOTENCE", PREFIX)
    )
    consumer_group: str = "sensor-backend-events"
    produce_timeout_s: float = Field(default=5.0, gt=0)
    # The broker breaker: a broker that comes back should be drained within seconds.
    broker_breaker_failures: int = Field(default=3, ge=1)
    broker_breaker_open_s: float = Field(default=5.0, gt=0)
    broker_breaker_max_open_s: float = Field(default=60.0, gt=0)
    # End-to-end confirmation (DESIGN.md §7): an event produced but not confirmed stored
    # within this bound is produced again (doubling per resend, capped); the confirmer asks
    # PostgreSQL about journal rows older than min_age every interval.
    journal_resend_after_s: float = Field(default=15.0, gt=0)
    journal_confirm_interval_s: float = Field(default=1.0, gt=0)
    journal_confirm_min_age_s: float = Field(default=2.0, ge=0)

    spool_dir: Path = Field(
        default=Path("var/spool/events"), validation_alias=shared("SPOOL_DIR", PREFIX)
    )
    spool_max_items: int = Field(default=100_000, ge=1)
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # The event contract (core/event_limits.py), the same defaults as the gateway's and
    # the sensor relay's: /send-event's body limit, batch size and per-event size.
    max_batch: int = Field(default=MAX_BATCH_EVENTS, ge=1, le=10_000)
    max_body_bytes: int = Field(default=MAX_BATCH_BYTES, ge=1024)
    max_event_bytes: int = Field(default=MAX_EVENT_BYTES, ge=1024)

    auth_service_urls: UrlList = Field(
        default=["http://127.0.0.1:8001"], validation_alias=shared("AUTH_SERVICE_URLS", PREFIX)
    )

    _split = field_validator("auth_service_urls", mode="before")(split_urls)

    @model_validator(mode="after")
    def _event_contract(self) -> EventsSettings:
        self.event_limits()  # raises ValueError for a body limit below one maximal event
        return self

    def broker_breaker_config(self) -> BreakerConfig:
        """The breaker in front of the broker (events/publisher.py)."""
        return BreakerConfig(
            consecutive_failures=self.broker_breaker_failures,
            open_wait_s=self.broker_breaker_open_s,
            max_open_wait_s=self.broker_breaker_max_open_s,
            half_open_max_wait_s=self.produce_timeout_s * 2,
        )

    def event_limits(self) -> EventLimits:
        return EventLimits(
            max_event_bytes=self.max_event_bytes,
            max_batch_events=self.max_batch,
            max_batch_bytes=self.max_body_bytes,
        )

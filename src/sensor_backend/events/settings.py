"""Event service settings (env prefix ``EVENTS_``; shared names unprefixed, DESIGN.md §3)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sensor_backend.core.settings import (
    DatabaseSettingsMixin,
    ServiceSettings,
    database_url_field,
    shared,
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
    spool_dir: Path = Field(
        default=Path("var/spool/events"), validation_alias=shared("SPOOL_DIR", PREFIX)
    )

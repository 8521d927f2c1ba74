"""Sensor service settings (env prefix ``SENSOR_``; shared names unprefixed, DESIGN.md §3)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from sensor_backend.core.settings import (
    DatabaseSettingsMixin,
    ServiceSettings,
    UrlList,
    database_url_field,
    shared,
    split_urls,
)

PREFIX = "SENSOR_"


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

    _split = field_validator("auth_service_urls", "events_service_urls", mode="before")(split_urls)

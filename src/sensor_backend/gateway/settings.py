"""Gateway settings (env prefix ``GATEWAY_``; shared names unprefixed, DESIGN.md §3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from sensor_backend.core.breaker import BreakerConfig
from sensor_backend.core.client_address import networks
from sensor_backend.core.event_limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    EventLimits,
)
from sensor_backend.core.settings import ServiceSettings, UrlList, shared, split_urls
from sensor_backend.gateway.rate_limit import Policy, parse_policies

PREFIX = "GATEWAY_"


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")
    service_name: ClassVar[str] = "gateway"
    default_port: ClassVar[int] = 8000

    auth_service_urls: UrlList = Field(
        default=["http://127.0.0.1:8001"], validation_alias=shared("AUTH_SERVICE_URLS", PREFIX)
    )
    sensor_service_urls: UrlList = Field(
        default=["http://127.0.0.1:8002"], validation_alias=shared("SENSOR_SERVICE_URLS", PREFIX)
    )
    events_service_urls: UrlList = Field(
        default=["http://127.0.0.1:8003"], validation_alias=shared("EVENTS_SERVICE_URLS", PREFIX)
    )
    spool_dir: Path = Field(
        default=Path("var/spool/gateway"), validation_alias=shared("SPOOL_DIR", PREFIX)
    )
    spool_max_items: int = Field(default=100_000, ge=1)
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # The event contract (core/event_limits.py), the same defaults as the event service's:
    # POST /events refuses more than this (413) and the spool drains in batches of it.
    events_max_event_bytes: int = Field(default=MAX_EVENT_BYTES, ge=1024)
    events_max_batch: int = Field(default=MAX_BATCH_EVENTS, ge=1, le=10_000)
    events_max_batch_bytes: int = Field(default=MAX_BATCH_BYTES, ge=1024)
    # Per-service breaker knobs (DESIGN.md §5 defaults: 5 failures or 50 % of 20, 30 s
    # doubling to 300 s).
    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)
    breaker_max_open_s: float = Field(default=300.0, gt=0)

    def service_breaker_config(self) -> BreakerConfig:
        """The breaker of each service the gateway calls (one per service, as Kong's)."""
        return BreakerConfig(
            consecutive_failures=self.breaker_failures,
            open_wait_s=self.breaker_open_s,
            max_open_wait_s=self.breaker_max_open_s,
            slow_call_s=self.http_total_timeout_s,
            half_open_max_calls=2,
            half_open_max_wait_s=self.http_total_timeout_s * 2,
        )

    # Per-client rate limits (gateway/rate_limit.py): "group=requests/window_s" per route
    # group, a token bucket per authenticated subject (per client address on anonymous
    # routes). Sized for lab rigs and people, far above what one needs, so only a runaway
    # client meets them; an empty string turns limiting off.
    rate_limits: str = (
        "login=600/60,public=3000/60,tests=600/60,read=6000/60,write=600/60,events=60000/60"
    )
    # Request-size limits per route group ("group=bytes"), refused with 413 before the body
    # is read (Content-Length) or as soon as a streamed body passes it. Groups not named
    # here: tests take up to max_body_bytes (a million readings), events the contract's.
    body_limits: str = "login=65536,public=65536,read=65536,write=1048576"
    # Proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client (nginx in
    # front of several gateways); by default the TCP peer is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Passive ejection of a replica after consecutive failures (Envoy outlier detection).
    eject_after: int = Field(default=3, ge=1)
    # The gateway's probes of the services end breaker waits and readmit replicas, so they
    # run twice as often as a service's probes of its own dependencies: a dependency's
    # return reaches clients within a service probe round plus one gateway round
    # (docs/resilience.md). Each round is three cached GET /health calls.
    health_probe_interval_s: float = Field(default=1.0, gt=0)
    service_account_username: str = Field(
        default="sensor-relay", validation_alias=AliasChoices("SERVICE_ACCOUNT_USERNAME")
    )
    service_account_password: str = Field(
        default="", validation_alias=AliasChoices("SERVICE_ACCOUNT_PASSWORD")
    )
    # A Prometheus with deploy/observability's rules: the console's SLO panel reads them
    # (gateway/slo.py). Empty: the panel uses the gateway's own metrics.
    prometheus_url: str = ""

    _split = field_validator(
        "auth_service_urls",
        "sensor_service_urls",
        "events_service_urls",
        "trusted_proxies",
        mode="before",
    )(split_urls)

    @model_validator(mode="after")
    def _event_contract(self) -> GatewaySettings:
        self.event_limits()  # raises ValueError for a batch limit below one maximal event
        self.rate_limit_policies()  # and for a malformed rate limit
        self.body_limit_bytes()  # or body limit
        networks(self.trusted_proxies)  # and for a malformed proxy address
        return self

    def rate_limit_policies(self) -> dict[str, Policy]:
        return parse_policies(self.rate_limits)

    def body_limit_bytes(self) -> dict[str, int]:
        limits: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in self.body_limits.split(","))):
            group, _, size = item.partition("=")
            if not size.strip().isdigit() or int(size) < 1:
                msg = f"body limit {item!r}: expected group=bytes"
                raise ValueError(msg)
            limits[group.strip()] = min(int(size), self.max_body_bytes)
        return limits

    def event_limits(self) -> EventLimits:
        return EventLimits(
            max_event_bytes=self.events_max_event_bytes,
            max_batch_events=self.events_max_batch,
            max_batch_bytes=self.events_max_batch_bytes,
        )

    def service_urls(self) -> dict[str, list[str]]:
        """Replica lists of the services the gateway calls, by their one name."""
        return {
            "auth": self.auth_service_urls,
            "sensor": self.sensor_service_urls,
            "events": self.events_service_urls,
        }


# The event service is ``events`` everywhere inside (settings, breakers, pools, probes,
# metrics labels); the gateway's public documents (/health, /circuit-breakers, error bodies,
# the OpenAPI schema prefixes) keep the seed's key ``kafka`` (DESIGN.md §6).
_PUBLIC_NAMES = {"events": "kafka"}
_INTERNAL_NAMES = {public: name for name, public in _PUBLIC_NAMES.items()}


def public_name(service: str) -> str:
    """The name clients see for ``service`` (``events`` -> ``kafka``)."""
    return _PUBLIC_NAMES.get(service, service)


def internal_name(service: str) -> str:
    """The internal name for a public one (``kafka`` -> ``events``); others unchanged."""
    return _INTERNAL_NAMES.get(service, service)

"""The sensor service's parts and their lifecycle: catalog, tests, queue, workers, relay.

Submitting a test only validates and stores it (one transaction: the row and its readings)
and wakes the local workers; the analysis happens in the background, in whichever replica
claims it first. Exception tree of the service (all rendered by ``core.app``)::

    ServiceError
    ├── BadRequest (400)             body is not JSON, bad Idempotency-Key header
    ├── NotFound (404)               unknown sensor type (lists the known ones) or test id
    ├── Conflict (409)               POST /sensor-types with a name already taken
    ├── PayloadTooLarge (413)        body over max_body_bytes (core.app middleware)
    ├── InvalidRequestError (422)    fields named; IdempotencyKeyReusedError is one
    └── DatabaseUnavailable (503)    Retry-After from the database breaker
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sensor_backend.core.dead_letter import DeadLetterCollector
from sensor_backend.core.replicas import ReplicaPool
from sensor_backend.core.request_context import trace_var
from sensor_backend.core.retry import RetryBudget
from sensor_backend.core.service_client import ServiceClient
from sensor_backend.sensor.catalog import SensorCatalog, apply_overrides
from sensor_backend.sensor.jobs import JobQueue
from sensor_backend.sensor.metrics import SensorMetrics
from sensor_backend.sensor.models import SimulateIn
from sensor_backend.sensor.outbox import Outbox
from sensor_backend.sensor.reading_blocks import pack
from sensor_backend.sensor.relay import Relay
from sensor_backend.sensor.repository import NewTest, Submitted, TestRepository
from sensor_backend.sensor.worker import WorkerPool

if TYPE_CHECKING:
    from sensor_backend.core.app import ServiceContext
    from sensor_backend.core.breaker import CircuitBreaker
    from sensor_backend.core.db import Database
    from sensor_backend.core.http_client import SessionHolder
    from sensor_backend.sensor.models import ParsedTest
    from sensor_backend.sensor.settings import SensorSettings

SEED_BOUND = 2**31  # a drawn seed fits any client's int


class SensorService:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: SensorSettings,
        db: Database,
        http: SessionHolder,
        *,
        events_breaker: CircuitBreaker,
    ) -> None:
        self.settings = settings
        self.db = db
        self.catalog = SensorCatalog(db)
        self.tests = TestRepository(db)
        self.queue = JobQueue(db, lease_s=settings.lease_s, retry_base_s=settings.retry_base_s)
        self.outbox = Outbox(db, lease_s=settings.relay_lease_s)
        self.metrics = SensorMetrics(ctx.metrics.registry, lambda: self.workers.depths)
        self.events = ServiceClient(
            "events",
            ReplicaPool("events", settings.events_service_urls),
            events_breaker,
            RetryBudget(),
            lambda: http.session,
            timeout_s=settings.http_total_timeout_s,
            connect_timeout_s=settings.http_connect_timeout_s,
        )
        self.relay = Relay(settings, self.outbox, self.events, http, self.metrics)
        self.events.on_ready.append(self.relay.events_back)
        self.workers = WorkerPool(
            settings, self.queue, self.outbox, self.metrics, on_finished=self.relay.wake
        )
        ctx.metrics.registry.register(DeadLetterCollector("sensor_outbox", self.dead_letters))

    async def start(self) -> None:
        await self.workers.start()
        await self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()
        await self.workers.stop()

    def facts(self) -> dict[str, Any]:
        """Queue and outbox depths (last count), worker and relay state, for /health."""
        depths = self.workers.depths
        return {
            "queue": {
                "queued": depths.get("queued"),
                "running": depths.get("running"),
                "oldest_queued_s": depths.get("oldest_queued_s"),
                "as_of": depths.get("as_of"),
            },
            "outbox": {
                "pending": depths.get("outbox_pending"),
                "dead": depths.get("outbox_dead"),
                "oldest_dead_s": depths.get("outbox_oldest_dead_s"),
            },
            "dead_letters": self.dead_letters(),
            "workers": self.workers.snapshot(),
            "relay": self.relay.snapshot(),
        }

    def dead_letters(self) -> dict[str, Any]:
        """The outbox's dead letters for /health and metrics (last count, every replica)."""
        depths = self.workers.depths
        return {
            "count": depths.get("outbox_dead"),
            "oldest_age_s": depths.get("outbox_oldest_dead_s"),
            "recorded": self.relay.counts["dead"],
            "as_of": depths.get("as_of"),
        }

    async def submit(
        self,
        sensor_type: str,
        parsed: ParsedTest,
        *,
        submitted_by: str,
        idempotency_key: str | None,
    ) -> Submitted:
        """Store an accepted test (or find its Idempotency-Key twin) and wake the workers."""
        request = parsed.request
        base, _ = await self.catalog.resolve(sensor_type)
        spec = apply_overrides(base, request.analysis_overrides())
        common: dict[str, Any] = {
            "sensor_type": base.name,
            "spec": spec.model_dump(mode="json"),
            "submitted_by": submitted_by,
            "idempotency_key": idempotency_key,
            "fingerprint": parsed.fingerprint,
            "traceparent": trace.traceparent if (trace := trace_var.get()) else None,
            "max_attempts": self.settings.max_attempts,
        }
        readings = request.readings
        if readings is not None:
            assert request.device_id is not None  # noqa: S101 - TestRequest requires it
            new = NewTest(
                **common,
                device_id=request.device_id,
                source="readings",
                params={
                    "readings": {
                        "timestamps": readings.timestamps is not None,
                        "reference": readings.reference is not None,
                    },
                    "spec_overrides": request.spec_overrides,
                },
                n_readings=int(readings.values.size),
                values=pack(readings.values),
                timestamps=pack(readings.timestamps),
                reference=pack(readings.reference),
            )
        else:
            sim = request.simulate or SimulateIn()
            seed = sim.seed if sim.seed is not None else secrets.randbelow(SEED_BOUND)
            new = NewTest(
                **common,
                device_id=request.device_id or f"sim-{secrets.token_hex(4)}",
                source="simulate",
                params={
                    "simulate": {
                        "n": sim.n,
                        "seed": seed,
                        "faults": [f.model_dump(mode="json") for f in sim.faults],
                    },
                    "spec_overrides": request.spec_overrides,
                },
                n_readings=sim.n,
            )
        submitted = await self.tests.submit(new)
        if submitted.created:
            self.metrics.submitted.labels(new.source).inc()
            self.workers.wake()
        return submitted

"""The CloudEvents a test emits when it ends (DESIGN.md §7).

One terminal event per test: ``sensor.test.completed`` with the verdict and key metrics, or
``sensor.test.failed`` with the reason when the test could not be analysed. Its id is the
test's ``event_id``, drawn once at submission and stored with the test, so every retry of
the test and every redelivery of the event carries the same id, which the event service
uses as its dedup key. The subject is the device id: the event service keys the Kafka record
by subject, so one device's events stay in order.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sensor_backend.core.cloudevents import CloudEvent
from sensor_backend.sensor.outbox import enqueue

if TYPE_CHECKING:
    import uuid
    from datetime import datetime

    from sensor_backend.core.db import Connection

SOURCE = "/sensor-service"
COMPLETED = "sensor.test.completed"
FAILED = "sensor.test.failed"


def completed_event(
    *,
    event_id: uuid.UUID,
    test_id: uuid.UUID,
    sensor_type: str,
    device_id: str,
    source: str,
    verdict: str,
    reasons: list[str],
    metrics: dict[str, Any],
    time: datetime,
    traceparent: str | None,
) -> CloudEvent:
    return CloudEvent(
        id=str(event_id),
        source=SOURCE,
        type=COMPLETED,
        time=time,
        subject=device_id,
        traceparent=traceparent,
        data={
            "test_id": str(test_id),
            "sensor_type": sensor_type,
            "device_id": device_id,
            "source": source,
            "verdict": verdict,
            "reasons": reasons,
            "metrics": finite(metrics),
        },
    )


def failed_event(
    *,
    event_id: uuid.UUID,
    test_id: uuid.UUID,
    sensor_type: str,
    device_id: str,
    error: str,
    attempts: int,
    time: datetime,
    traceparent: str | None,
) -> CloudEvent:
    return CloudEvent(
        id=str(event_id),
        source=SOURCE,
        type=FAILED,
        time=time,
        subject=device_id,
        traceparent=traceparent,
        data={
            "test_id": str(test_id),
            "sensor_type": sensor_type,
            "device_id": device_id,
            "error": error,
            "attempts": attempts,
        },
    )


async def enqueue_failed(
    conn: Connection, row: dict[str, Any], reason: str, finished: datetime
) -> None:
    """Write the failed event of a test row (id, type, device, event id...) to the outbox."""
    event = failed_event(
        event_id=row["event_id"],
        test_id=row["id"],
        sensor_type=row["sensor_type"],
        device_id=row["device_id"],
        error=reason,
        attempts=row["attempts"],
        time=finished,
        traceparent=row["traceparent"],
    )
    await enqueue(conn, test_id=row["id"], event=event)


def finite(value: Any) -> Any:  # noqa: ANN401 - any JSON-like value
    """``value`` with non-finite floats replaced by None (JSON and jsonb have no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value

"""The event service's spans (README "Traces"): receive, publish, process, one per event.

Each continues the trace of its own event, whatever batch it travels in: ``event receive``
is a child of the traceparent the event arrived with (the sensor outbox relay's span) and
links the request that carried it; the event is journaled and produced carrying the
receive span's traceparent; ``publish <topic>`` is a child of that and sends its own
traceparent as the record's Kafka header; ``process <topic>`` in the consumer continues
the header (or, for a record produced untraced, the event's traceparent). Only called
with tracing on (core/tracing.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sensor_backend.core.spans import EventSpans

if TYPE_CHECKING:
    from sensor_backend.core import tracing
    from sensor_backend.core.cloudevents import CloudEvent

TRACEPARENT = "traceparent"


def _attributes(event_id: object, event_type: object, topic: str) -> tracing.Attributes:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.message.id": str(event_id),
        "cloudevents.event_id": str(event_id),
        "cloudevents.event_type": str(event_type),
    }


def receive_spans(events: list[CloudEvent], topic: str) -> tuple[EventSpans, list[CloudEvent]]:
    """A receive span per event; the events re-stamped with their span's traceparent."""
    spans = EventSpans(
        "event receive",
        "consumer",
        [e.traceparent for e in events],
        [_attributes(e.id, e.type, topic) for e in events],
        link_current=True,  # the request that carried it (a relay batch: its own trace)
    )
    stamped = [
        e if tp is None else e.model_copy(update={"traceparent": tp})
        for e, tp in zip(events, spans.traceparents, strict=True)
    ]
    return spans, stamped


def produce_spans(records: list[tuple[bytes, bytes | None]], topic: str) -> EventSpans:
    """A publish span per record, child of the traceparent inside its event."""
    docs = [json.loads(value) for value, _ in records]
    return EventSpans(
        f"publish {topic}",
        "producer",
        [doc.get(TRACEPARENT) for doc in docs],
        [_attributes(doc.get("id"), doc.get("type"), topic) for doc in docs],
    )


def record_headers(spans: EventSpans | None, index: int) -> list[tuple[str, bytes]] | None:
    """A record's Kafka headers: its publish span's traceparent, when traced."""
    if spans is None:
        return None
    traceparent = spans.traceparents[index]
    return None if traceparent is None else [(TRACEPARENT, traceparent.encode())]


def end_produce_spans(spans: EventSpans, outcomes: list[Any]) -> None:
    for index, outcome in enumerate(outcomes):
        if not isinstance(outcome, BaseException):
            spans.set(
                index,
                {
                    "messaging.destination.partition.id": str(outcome.partition),
                    "messaging.kafka.offset": outcome.offset,
                },
            )
    spans.end(next((o for o in outcomes if isinstance(o, BaseException)), None))


def _header(record: Any) -> str | None:  # noqa: ANN401 - an aiokafka ConsumerRecord
    for key, value in record.headers or ():
        if key == TRACEPARENT and isinstance(value, bytes):
            return value.decode("latin-1")
    return None


def _event_traceparent(record: Any) -> str | None:  # noqa: ANN401 - a ConsumerRecord
    try:
        value = json.loads(record.value).get(TRACEPARENT)
    except (ValueError, TypeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def process_spans(records: list[Any], rows: list[Any], topic: str) -> EventSpans:
    """A process span per consumed record (``rows``: what `consumer.to_row` made of them)."""
    attributes: list[tracing.Attributes] = []
    for record, row in zip(records, rows, strict=True):
        attrs = _attributes(row.id, row.type, topic)
        attrs["messaging.destination.partition.id"] = str(record.partition)
        attrs["messaging.kafka.offset"] = record.offset
        attrs["event.outcome"] = row.outcome
        if row.sensor_type:
            attrs["sensor.type"] = row.sensor_type
        if row.verdict:
            attrs["sensor.verdict"] = row.verdict
        attributes.append(attrs)
    return EventSpans(
        f"process {topic}",
        "consumer",
        [_header(record) or _event_traceparent(record) for record in records],
        attributes,
    )

"""One contract for event size and batching, shared by every hop (DESIGN.md §7).

Events travel gateway -> event service -> broker, and sensor outbox -> event service ->
broker. Every hop that says 2xx keeps the event until the next hop has it, so a hop must
never accept what the next one will refuse: an accepted event the next hop refuses can only
end in a dead-letter store. Hence one set of numbers, used by

* the gateway's ``POST /events`` (accept time: 413, nothing stored) and its spool drainer
  (batches bounded by count and bytes);
* the sensor service's outbox relay (claims bounded by count and bytes);
* the event service's ``/send-event`` (its request body limit and per-event check).

Settings may tune them per service (``GATEWAY_EVENTS_MAX_*``, ``EVENTS_MAX_*``,
``SENSOR_RELAY_*``) but default to the constants below everywhere.

Why these numbers:

* ``MAX_EVENT_BYTES`` 1,000,000: an event becomes one Kafka record. aiokafka refuses a
  record over its ``max_request_size`` (1,048,576 bytes, also Apache Kafka's default
  ``message.max.bytes`` ballpark) *on the producer*, which the event service would meet only
  after it had answered 2xx. 1,000,000 bytes of event leaves room for the key (subject, at
  most 512 characters, 2 KiB in UTF-8) and the record batch overhead (under 100 bytes).
* ``MAX_BATCH_EVENTS`` 500: the event service's batch limit since the first version.
* ``MAX_BATCH_BYTES`` 4 MiB: the event service's request body limit since the first
  version; it holds four maximal events, and a few thousand typical ones (a sensor test's
  completion event is about 1 KB).

Sizes are those of an event's *canonical encoding* (:meth:`CloudEvent.encode` of the
stamped event: compact JSON, ``time`` filled in), which is what every hop stores, sends
and produces; the raw request body of a client may be larger (whitespace) or smaller
(``1e9`` is ``1000000000.0`` once encoded), so only the canonical size is comparable hop
to hop. A batch travels as a JSON array of canonical encodings (:func:`batch_body`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sensor_backend.core.cloudevents import CloudEvent, parse_events
from sensor_backend.core.errors import PayloadTooLarge

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "RETRYABLE_4XX",
    "EventLimits",
    "batch_body",
    "batch_body_bytes",
    "is_permanent_refusal",
]

MAX_EVENT_BYTES: Final = 1_000_000
MAX_BATCH_EVENTS: Final = 500
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
# "[" and "]" around a batch, and one "," between two events.
_FRAME_BYTES: Final = 2


# 4xx answers a retry can fix, so the events wait instead of being dead-lettered: a token
# (401, 407), a deployment misrouted or not ready (403, 404, 405, 421: an operator fixes
# the configuration, and dead-lettering every event meanwhile would only make work), and
# "later" (408, 425, 429). Any other 4xx (400, 413, 415, 422, ...) refuses the event
# itself: retrying the same bytes cannot succeed.
RETRYABLE_4XX: Final = frozenset({401, 403, 404, 405, 407, 408, 421, 425, 429})


def is_permanent_refusal(status: int) -> bool:
    """A 4xx that refuses the event itself: split the batch, then dead-letter the event."""
    return 400 <= status < 500 and status not in RETRYABLE_4XX  # noqa: PLR2004 - HTTP 4xx


def batch_body(payloads: Sequence[bytes]) -> bytes:
    """Canonical event encodings as the JSON array every hop posts."""
    return b"[" + b",".join(payloads) + b"]"


def batch_body_bytes(sizes: Iterable[int]) -> int:
    """The length of :func:`batch_body` for payloads of these sizes."""
    total = 0
    count = 0
    for size in sizes:
        total += size
        count += 1
    return total + max(count - 1, 0) + _FRAME_BYTES


@dataclass(frozen=True, slots=True)
class EventLimits:
    """The size and batch contract; one instance per service, built from its settings."""

    max_event_bytes: int = MAX_EVENT_BYTES
    max_batch_events: int = MAX_BATCH_EVENTS
    max_batch_bytes: int = MAX_BATCH_BYTES

    def __post_init__(self) -> None:
        for name in ("max_event_bytes", "max_batch_events", "max_batch_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        # A batch of one must always be sendable, or a maximal event could never leave.
        if batch_body_bytes([self.max_event_bytes]) > self.max_batch_bytes:
            raise ValueError(
                f"max_batch_bytes ({self.max_batch_bytes}) must hold one maximal event "
                f"({self.max_event_bytes} bytes plus {_FRAME_BYTES} of framing)"
            )

    def as_dict(self) -> dict[str, int]:
        """For ``/health``: what this service accepts."""
        return {
            "max_event_bytes": self.max_event_bytes,
            "max_batch_events": self.max_batch_events,
            "max_batch_bytes": self.max_batch_bytes,
        }

    def check_body_length(self, length: int) -> None:
        """413 for a request body over the batch byte limit (before reading or parsing it)."""
        if length > self.max_batch_bytes:
            raise PayloadTooLarge(
                f"request body over {self.max_batch_bytes} bytes",
                limit_bytes=self.max_batch_bytes,
            )

    def encode(self, events: Sequence[CloudEvent], *, is_batch: bool) -> list[bytes]:
        """Canonical encodings of the stamped events; 413 naming the first one too large."""
        payloads = [event.stamped().encode() for event in events]
        for index, payload in enumerate(payloads):
            if len(payload) > self.max_event_bytes:
                where = f"event [{index}]" if is_batch else "the event"
                raise PayloadTooLarge(
                    f"{where} is {len(payload)} bytes encoded, over the "
                    f"{self.max_event_bytes}-byte limit for one event",
                    limit_bytes=self.max_event_bytes,
                    event_bytes=len(payload),
                    field=f"[{index}]" if is_batch else "body",
                    event_id=events[index].id,
                )
        return payloads

    def parse(self, raw: bytes) -> tuple[list[CloudEvent], list[bytes], bool]:
        """Validate a request body: ``(stamped events, their encodings, is_batch)``.

        413 for a body over the batch byte limit or an event over the per-event limit,
        422 for a batch over the count limit or an invalid event, 400 for broken JSON.
        """
        self.check_body_length(len(raw))
        events, is_batch = parse_events(raw, self.max_batch_events)
        stamped = [event.stamped() for event in events]
        return stamped, self.encode(stamped, is_batch=is_batch), is_batch

    def batch_prefix(self, sizes: Sequence[int]) -> int:
        """How many leading items of these sizes go into one batch (at least one).

        A first item over the limits still goes alone: the next hop's 413 then sends it
        to a dead-letter store rather than letting it block everything behind it.
        """
        count = 0
        total = _FRAME_BYTES - 1  # "[" + "]" minus the comma the first item does not need
        for size in sizes[: self.max_batch_events]:
            total += size + 1
            if count and total > self.max_batch_bytes:
                break
            count += 1
        return max(count, min(1, len(sizes)))

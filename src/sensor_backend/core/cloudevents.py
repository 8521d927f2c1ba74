"""The event envelope: CloudEvents 1.0 attributes (DESIGN.md §7), and parsing request bodies.

Required: ``id`` (a UUID, the dedup key), ``source``, ``type``. Optional: ``specversion``
(only "1.0"), ``time`` (RFC 3339), ``subject`` (the Kafka key, so one sensor's events stay
ordered), ``datacontenttype``, ``data``, ``traceparent``. Extension attributes follow the
spec's naming rule (lowercase letters and digits, at most 20) and carry scalar values.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sensor_backend.core.api_types import Rfc3339
from sensor_backend.core.errors import BadRequest, ServiceError

if TYPE_CHECKING:
    from pydantic.config import JsonDict

EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# What the validators below accept, said in the schema: every attribute name follows the
# extension naming rule (the standard ones do too) and extensions are scalars.
_ENVELOPE_SCHEMA: JsonDict = {
    "propertyNames": {"pattern": EXTENSION_NAME.pattern},
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_ENVELOPE_SCHEMA)

    specversion: Literal["1.0"] = "1.0"
    # The canonical 8-4-4-4-12 form only: the schema's `format: uuid`, and one spelling per
    # id, so the dedup key cannot be sent twice in two spellings.
    id: Annotated[
        str,
        StringConstraints(pattern=UUID_PATTERN),
        WithJsonSchema({"type": "string", "format": "uuid"}),
    ]
    source: NonEmpty
    type: Annotated[
        str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:\-/]+$")
    ]
    time: Rfc3339 | None = None
    subject: Annotated[str, StringConstraints(max_length=512)] | None = None
    datacontenttype: Annotated[str, StringConstraints(max_length=128)] = "application/json"
    data: Any = None
    traceparent: Annotated[str, StringConstraints(max_length=64)] | None = None

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            raise ValueError("id must be a UUID (it is the dedup key)") from exc

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time must carry a timezone offset (RFC 3339)")
        return value

    @model_validator(mode="after")
    def _no_nul(self) -> CloudEvent:
        # PostgreSQL text cannot hold NUL; neither can a sensible attribute.
        for name in ("id", "source", "type", "subject", "datacontenttype", "traceparent"):
            value = getattr(self, name)
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{name} must not contain NUL characters")
        return self

    @model_validator(mode="after")
    def _extensions(self) -> CloudEvent:
        for name, value in (self.model_extra or {}).items():
            if not EXTENSION_NAME.match(name):
                raise ValueError(
                    f"extension attribute {name!r}: lowercase letters and digits, at most 20"
                )
            finite = not isinstance(value, float) or math.isfinite(value)
            nul = isinstance(value, str) and "\x00" in value
            if not isinstance(value, str | int | float | bool) or not finite or nul:
                raise ValueError(
                    f"extension attribute {name!r} must be a string, number or boolean"
                )
        return self

    def stamped(self) -> CloudEvent:
        """The event with ``time`` filled in (now) when the producer left it out."""
        return (
            self if self.time is not None else self.model_copy(update={"time": datetime.now(UTC)})
        )

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @property
    def key(self) -> bytes | None:
        return self.subject.encode() if self.subject else None

    def sensor_type(self) -> str | None:
        data = self.data if isinstance(self.data, dict) else {}
        value = data.get("sensor_type")
        return value if isinstance(value, str) else None

    def verdict(self) -> str | None:
        data = self.data if isinstance(self.data, dict) else {}
        value = data.get("verdict")
        return value if value in {"pass", "suspect", "fail"} else None


EVENTS = TypeAdapter(list[CloudEvent])


class InvalidEventError(ServiceError):
    status_code = 422
    code = "validation_error"


def _reject_constant(name: str) -> None:
    raise BadRequest(f"{name} is not valid JSON (non-finite numbers are refused)")


def parse_events(raw: bytes, max_batch: int) -> tuple[list[CloudEvent], bool]:
    """The events of a body that is one event or a list; True when it was a list."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise BadRequest("request body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    is_batch = isinstance(doc, list)
    items = doc if is_batch else [doc]
    if not items:
        raise InvalidEventError("an event batch needs at least one event", fields=[])
    if len(items) > max_batch:
        raise InvalidEventError(
            f"at most {max_batch} events per batch",
            fields=[{"field": "body", "message": "too many"}],
        )
    try:
        return EVENTS.validate_python(items), is_batch
    except ValidationError as exc:
        fields = [
            {
                "field": _field(err["loc"], is_batch=is_batch),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        raise InvalidEventError(f"invalid {fields[0]['field']}", fields=fields) from exc


def _field(loc: tuple[Any, ...], *, is_batch: bool) -> str:
    parts = list(loc) if is_batch else list(loc[1:])
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"

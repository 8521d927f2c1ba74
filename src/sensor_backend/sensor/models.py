"""The request bodies of the sensor service and their strict parsing.

``POST /test/{sensor_type}`` takes::

    {"device_id": "rig-7",                                       # optional with simulate
     "readings": {"values": [...], "timestamps": [...], "reference": [...]},
     "simulate": {"n": 600, "seed": 1, "faults": ["spikes", {"kind": "bias", "offset": 2}]},
     "spec_overrides": {"tol_abs": 0.3}}

At most one of ``readings`` and ``simulate``; neither (an empty body included, as in the
original notes' ``curl -X POST .../test/sensor/temperature``) means a simulated test with
the defaults. A rig's readings must name their ``device_id``; a simulation without one gets
``sim-<random>``.

Reading arrays are the bulk of a body (up to a million numbers each), so they are checked
by one function each, not element by element by pydantic: a million bad elements must cost
one error, not a million error objects. JSON numbers only (no strings, no booleans), finite
(``NaN``/``Infinity`` and overflowing literals such as ``1e400`` are refused), at most
``max_readings`` (passed as validation context), and the same length across arrays.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Self, TypeVar, get_args

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from sensor_backend.core.errors import BadRequest, ServiceError
from sensor_backend.sensor.simulate import DEFAULT_N, Fault, FaultKind
from sensor_backend.sensor.specs import DecisionRule, SensorSpec

MAX_FAULTS = 20
MAX_REPORTED_ERRORS = 20
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+#-]{0,127}$"
TYPE_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as in Stripe's keys

M = TypeVar("M", bound=BaseModel)


class InvalidRequestError(ServiceError):
    """A body that is JSON but not a valid request (422, the fields named)."""

    status_code = 422
    code = "validation_error"


_FLOAT_MAX = sys.float_info.max


def _float_array(value: object, info: ValidationInfo) -> NDArray[np.float64]:
    if not isinstance(value, list):
        raise ValueError("must be an array of numbers")  # noqa: TRY004 - pydantic wants ValueError
    limit = (info.context or {}).get("max_readings")
    if isinstance(limit, int) and len(value) > limit:
        raise ValueError(f"at most {limit} readings per test, got {len(value)}")
    if not set(map(type, value)) <= {int, float}:
        first = next(i for i, v in enumerate(value) if type(v) not in {int, float})
        raise ValueError(f"element {first} is not a number")
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:  # an integer literal beyond float64 (Python ints are unbounded)
        array = np.array([v if abs(v) < _FLOAT_MAX else math.inf for v in value])
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"element {int(np.flatnonzero(bad)[0])} is not a finite number")
    return array


FloatArray = Annotated[
    NDArray[np.float64],
    PlainValidator(_float_array),
    PlainSerializer(lambda a: a.tolist()),
    WithJsonSchema({"type": "array", "items": {"type": "number"}}),
]


def _fault_kind(value: object) -> object:
    return {"kind": value} if isinstance(value, str) else value


def _bare_kinds_allowed(schema: dict[str, Any]) -> None:
    """Document that a fault may also be just its kind, e.g. ``"spikes"``."""
    kinds = {"type": "string", "enum": list(get_args(FaultKind))}
    schema["items"] = {"anyOf": [kinds, schema["items"]]}


_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
# The schema states the default `max_readings` (sensor settings); the check itself uses
# the configured one, passed as validation context.
DEFAULT_MAX_READINGS = 1_000_000
_READINGS_LIMIT_SCHEMA: dict[str, Any] = {
    "maximum": DEFAULT_MAX_READINGS,
    "description": "at most the service's max_readings (default 1,000,000)",
}


class ReadingsIn(BaseModel):
    """A rig's readings; timestamps in seconds (any epoch), reference in the spec's unit."""

    model_config = _STRICT

    values: FloatArray = Field(
        description="readings, in the unit of the sensor type",
        json_schema_extra={"minItems": 1, "maxItems": DEFAULT_MAX_READINGS},
    )
    timestamps: FloatArray | None = None
    reference: FloatArray | None = None

    @model_validator(mode="after")
    def _same_length(self) -> Self:
        n = self.values.size
        if n == 0:
            raise ValueError("values: at least one reading is needed")
        for name in ("timestamps", "reference"):
            other = getattr(self, name)
            if other is not None and other.size != n:
                raise ValueError(f"{name} has {other.size} entries for {n} values")
        return self


class SimulateIn(BaseModel):
    """A seeded simulation of the sensor type, optionally with injected faults."""

    model_config = _STRICT

    n: int = Field(default=DEFAULT_N, ge=1, json_schema_extra=_READINGS_LIMIT_SCHEMA)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="None: random")
    faults: list[Annotated[Fault, BeforeValidator(_fault_kind)]] = Field(
        default_factory=list, max_length=MAX_FAULTS, json_schema_extra=_bare_kinds_allowed
    )

    @model_validator(mode="after")
    def _within_limit(self, info: ValidationInfo) -> Self:
        limit = (info.context or {}).get("max_readings")
        if isinstance(limit, int) and self.n > limit:
            raise ValueError(f"n: at most {limit} readings per test")
        return self


def _one_source_schema(schema: dict[str, Any]) -> None:
    """`_one_source` in JSON Schema: not both sources; readings need a device_id."""
    given = {"type": "object"}
    schema["not"] = {
        "required": ["readings", "simulate"],
        "properties": {"readings": given, "simulate": given},
    }
    schema["if"] = {"required": ["readings"], "properties": {"readings": given}}
    schema["then"] = {"required": ["device_id"], "properties": {"device_id": {"type": "string"}}}


def _overrides_schema(schema: dict[str, Any]) -> None:
    """Overrides are spec fields (not the name), each as the spec defines it."""
    fields = dict(SensorSpec.model_json_schema()["properties"])
    fields.pop("name")
    schema.update(properties=fields, additionalProperties=False)


class TestRequest(BaseModel):
    """Body of ``POST /test/{sensor_type}``."""

    model_config = ConfigDict(**_STRICT, json_schema_extra=_one_source_schema)
    __test__ = False  # not a pytest test class

    device_id: Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)] | None = None
    readings: ReadingsIn | None = None
    simulate: SimulateIn | None = None
    spec_overrides: dict[str, Any] = Field(
        default_factory=dict, max_length=40, json_schema_extra=_overrides_schema
    )
    # Issue 13: how the accuracy test is judged (ILAC-G8) and the reference's uncertainty
    # (GUM); None keeps the sensor type's (guarded; tol_abs / 4 at k = 2).
    decision_rule: DecisionRule | None = Field(
        default=None, description="ILAC-G8 rule: guarded (w = U, the default) or simple"
    )
    reference_uncertainty: float | None = Field(
        default=None,
        ge=0,
        description="expanded uncertainty (k=2) of the reference, in the sensor type's unit",
    )

    def analysis_overrides(self) -> dict[str, Any]:
        """``spec_overrides`` with the decision rule and reference uncertainty folded in."""
        extra: dict[str, Any] = {
            "decision_rule": self.decision_rule,
            "reference_uncertainty": self.reference_uncertainty,
        }
        return {**self.spec_overrides, **{k: v for k, v in extra.items() if v is not None}}

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.readings is not None and self.simulate is not None:
            raise ValueError("give either readings or simulate, not both")
        if self.readings is not None and self.device_id is None:
            raise ValueError("device_id is required with readings")
        if "name" in self.spec_overrides:
            raise ValueError("spec_overrides cannot rename the sensor type")
        return self

    def fingerprint(self, sensor_type: str) -> bytes:
        """SHA-256 of the request as sent: what ``Idempotency-Key`` replays must match.

        Taken over the parsed request (defaults made explicit, key order and whitespace
        ignored) and the raw bytes of the reading arrays; random defaults (seed, device id)
        are filled in later and are not part of it.
        """
        head = self.model_dump(mode="json", exclude={"readings"})
        digest = hashlib.sha256(json.dumps([sensor_type, head], sort_keys=True).encode())
        if self.readings is not None:
            for name in ("values", "timestamps", "reference"):
                array = getattr(self.readings, name)
                digest.update(name.encode())
                digest.update(b"-" if array is None else array.astype("<f8").tobytes())
        return digest.digest()


@dataclass(frozen=True, slots=True)
class ParsedTest:
    request: TestRequest
    fingerprint: bytes


def parse_test_request(raw: bytes, sensor_type: str, *, max_readings: int) -> ParsedTest:
    """Validate a ``POST /test`` body (CPU-bound for big bodies: run it in a thread)."""
    stripped = raw.strip()
    if not stripped:
        request = TestRequest()
    else:
        request = _validate_json(TestRequest, stripped, {"max_readings": max_readings})
    return ParsedTest(request, request.fingerprint(sensor_type))


def _validate_json(model: type[M], raw: bytes, context: dict[str, Any]) -> M:
    try:
        return model.model_validate_json(raw, context=context)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def validation_failed(exc: ValidationError, prefix: str = "") -> ServiceError:
    """Our JSON error for pydantic's: 400 when the body is no JSON, else 422 naming fields."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(err["type"] in {"json_invalid", "json_type"} for err in errors):
        detail = errors[0]["msg"]
        return BadRequest(
            f"request body is not valid JSON ({detail}); NaN and Infinity are not JSON numbers"
        )
    fields = [
        {"field": _field(prefix, err["loc"]), "message": _message(err), "type": err["type"]}
        for err in errors[:MAX_REPORTED_ERRORS]
    ]
    return InvalidRequestError(
        f"invalid {fields[0]['field']}: {fields[0]['message']}",
        fields=fields,
        error_count=len(errors),
    )


def _field(prefix: str, loc: tuple[int | str, ...]) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.startswith(("function-", "tagged-union")):
            text += f".{part}" if text else part
    return text or "body"


def _message(err: Any) -> str:  # noqa: ANN401 - pydantic's ErrorDetails
    message = str(err["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(value):
        raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return value

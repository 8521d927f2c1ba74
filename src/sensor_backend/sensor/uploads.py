"""The upload formats rigs produce: CSV and NumPy ``.npy`` arrays, beside the JSON body.

``POST /test/{sensor_type}`` picks the parser by ``Content-Type``:

``application/json`` (or none)
    The JSON body of :mod:`.models`; the query parameters below are refused with it (the
    body carries them itself).

``text/csv``
    A header row naming the columns ``timestamp``, ``value``, ``reference`` (any order,
    case-insensitive; ``value`` required, the other two optional, no other column), then
    one reading per line, comma-separated. Timestamps are either epoch seconds (a number)
    or ISO 8601 date-times (``2026-11-26T15:30:00.125Z``, ``...+01:00``, or without an
    offset: UTC), decided by the first reading's timestamp for the whole file. Blank lines
    are skipped; CRLF line ends are fine. Rows are counted as a spreadsheet shows
    them: the header is row 1, the first reading row 2.

``multipart/form-data``
    One part per column, named ``value`` (required), ``timestamp`` and ``reference``
    (optional), each a NumPy ``.npy`` file (format 1.0, 2.0 or 3.0) holding a 1-D array of
    float64 (any byte order), float32 or integers; ``timestamp`` may also be
    ``datetime64`` (UTC). The same length in each part; finite numbers only.

Why ``.npy`` and not Apache Arrow IPC: numpy is already a dependency (the analysis runs on
it), while ``pyarrow`` is a ~40 MB wheel for what is here three flat float columns. The
``.npy`` format is a documented 10-byte preamble, a short ASCII header and the raw array
bytes, so reading it is a header parse (float64 is then used in place: no copy, no
per-value work), and any language can write it (NumPy's ``np.save``; by hand: the header
is a Python dict literal). Arrow's strengths (nested types, record batches, zero-copy
across processes) buy nothing for three columns that are stored as ``bytea`` anyway.
``allow_pickle=False`` always: an object array would run arbitrary code on load.

For CSV and multipart bodies the device id and the options travel as query parameters
(``device_id`` required; ``decision_rule``, ``reference_uncertainty`` and
``spec_overrides``, a JSON object), validated by the same model as the JSON body, so the
same readings and options give the same request (and the same ``Idempotency-Key``
fingerprint) whatever the format.

Parsing is vectorised: ``np.loadtxt`` (NumPy's C tokenizer) for the numbers, one
``astype('datetime64[us]')`` for ISO timestamps; a ``.npy`` part is its header parsed and
``np.frombuffer`` on the request body itself (no copy of a float64 part). Only when that
fails is the file scanned row by row in Python, to name the first bad row and column in
the 422.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import Depends, Query
from pydantic import ValidationError

from sensor_backend.core.errors import BadRequest
from sensor_backend.sensor.models import (
    DEVICE_ID_PATTERN,
    InvalidRequestError,
    ParsedTest,
    ReadingsIn,
    TestRequest,
    parse_test_request,
    validation_failed,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

CSV = "text/csv"
MULTIPART = "multipart/form-data"
COLUMNS = ("timestamp", "value", "reference")
# ReadingsIn's field for each column (the JSON body's names).
FIELD = {"timestamp": "timestamps", "value": "values", "reference": "reference"}
MAX_BOUNDARY = 70  # RFC 2046 §5.1.1
_ISO_WIDTH = 40  # bytes kept per ISO timestamp (longest sensible: 35)
_ISO = f"S{_ISO_WIDTH}"
_EPOCH = np.datetime64(0, "us")
_PART_NAME = re.compile(r'(?:^|;)\s*name="([^"]*)"', re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
# The preamble, a version 1.0 header at its longest (2-byte length) and the
# padding: NumPy itself refuses headers over 10,000 bytes (``max_header_size``).
_NPY_HEAD = 12 + 65535 + 64
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


class UploadError(InvalidRequestError):
    """422 naming where in an uploaded file the problem is (row and column, or part)."""

    def __init__(self, field: str, problem: str, kind: str, **where: object) -> None:
        super().__init__(
            f"invalid {field}: {problem}",
            fields=[{"field": field, "message": problem, "type": kind, **where}],
            error_count=1,
        )


# ------------------------------------------------------------------ the query options

DeviceIdQuery = Annotated[
    str | None,
    Query(
        pattern=DEVICE_ID_PATTERN,
        description="text/csv and multipart/form-data bodies: the device (required there)",
    ),
]
DecisionRuleQuery = Annotated[
    Literal["guarded", "simple"] | None,
    Query(description="text/csv and multipart/form-data bodies: the ILAC-G8 decision rule"),
]
UncertaintyQuery = Annotated[
    float | None,
    Query(
        ge=0,
        le=1e300,
        description="text/csv and multipart/form-data bodies: the reference's expanded "
        "uncertainty (k=2)",
    ),
]
OverridesQuery = Annotated[
    str | None,
    Query(
        max_length=4096,
        description="text/csv and multipart/form-data bodies: spec overrides, a JSON object "
        '(e.g. {"tol_abs": 0.3})',
    ),
]


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """The query parameters of ``POST /test/{sensor_type}`` for CSV and multipart bodies."""

    device_id: str | None = None
    decision_rule: str | None = None
    reference_uncertainty: float | None = None
    spec_overrides: str | None = None

    def given(self) -> list[str]:
        return [name for name in self.__slots__ if getattr(self, name) is not None]


def upload_options(
    device_id: DeviceIdQuery = None,
    decision_rule: DecisionRuleQuery = None,
    reference_uncertainty: UncertaintyQuery = None,
    spec_overrides: OverridesQuery = None,
) -> UploadOptions:
    return UploadOptions(device_id, decision_rule, reference_uncertainty, spec_overrides)


Options = Annotated[UploadOptions, Depends(upload_options)]


def _head(options: UploadOptions, max_readings: int) -> TestRequest:
    """The request without readings, from the query (errors name ``query.<param>``)."""
    if options.device_id is None:
        raise UploadError(
            "query.device_id", "is required with a text/csv or multipart body", "missing"
        )
    head: dict[str, Any] = {"device_id": options.device_id}
    if options.decision_rule is not None:
        head["decision_rule"] = options.decision_rule
    if options.reference_uncertainty is not None:
        head["reference_uncertainty"] = options.reference_uncertainty
    if options.spec_overrides is not None:
        try:
            head["spec_overrides"] = json.loads(options.spec_overrides)
        except ValueError:
            raise UploadError(
                "query.spec_overrides", "must be a JSON object", "json_invalid"
            ) from None
    try:
        return TestRequest.model_validate(head, context={"max_readings": max_readings})
    except ValidationError as exc:
        raise validation_failed(exc, prefix="query") from exc


def _request(
    head: TestRequest, columns: dict[str, NDArray[np.float64]], sensor_type: str
) -> ParsedTest:
    readings = ReadingsIn.model_construct(
        values=columns["value"],
        timestamps=columns.get("timestamp"),
        reference=columns.get("reference"),
    )
    request = head.model_copy(update={"readings": readings})
    return ParsedTest(request, request.fingerprint(sensor_type))


def parse_submission(
    raw: bytes,
    content_type: str,
    sensor_type: str,
    options: UploadOptions,
    *,
    max_readings: int,
) -> ParsedTest:
    """Any body of ``POST /test`` by its content type (CPU-bound: run it in a thread)."""
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media == CSV:
        head = _head(options, max_readings)
        return _request(head, parse_csv(raw, max_readings=max_readings), sensor_type)
    if media == MULTIPART:
        head = _head(options, max_readings)
        columns = parse_npy_parts(raw, content_type, max_readings=max_readings)
        return _request(head, columns, sensor_type)
    given = options.given()
    if given:
        raise UploadError(
            f"query.{given[0]}",
            "only with a text/csv or multipart/form-data body; a JSON body carries it itself",
            "extra_forbidden",
        )
    return parse_test_request(raw, sensor_type, max_readings=max_readings)


# ------------------------------------------------------------------ CSV


def _header(line: str) -> list[str]:
    names = [name.strip().strip('"').strip().lower() for name in line.split(",")]
    for i, name in enumerate(names):
        if name not in COLUMNS:
            raise UploadError(
                "body.header",
                f"column {i + 1} is {name!r}; the columns are timestamp, value, reference",
                "csv_header",
                row=1,
                column=i + 1,
            )
        if names.index(name) != i:
            raise UploadError("body.header", f"column {name!r} appears twice", "csv_header", row=1)
    if "value" not in names:
        raise UploadError("body.header", "a value column is required", "csv_header", row=1)
    return names


def _cell_error(row: int, column: str, problem: str) -> UploadError:
    return UploadError(
        f"body.row[{row}].{column}",
        f"row {row}, column {column}: {problem}",
        "csv_value",
        row=row,
        column=column,
    )


def _iso_seconds(stamps: NDArray[np.bytes_]) -> NDArray[np.float64]:
    """ISO 8601 byte strings to epoch seconds; ValueError when any one does not parse.

    NumPy parses the date-time itself; a ``Z`` or a ``±HH:MM`` offset is taken off here,
    vectorised on the bytes (NumPy's own offset parsing is deprecated), and applied.
    """
    n = stamps.size
    stamps = np.char.strip(stamps)
    width = stamps.dtype.itemsize
    mat = stamps.view(np.uint8).reshape(n, width).copy()
    lens = np.char.str_len(stamps).astype(np.int64)
    rows = np.arange(n)
    last = mat[rows, np.maximum(lens - 1, 0)]
    zulu = (lens > 0) & ((last == ord("Z")) | (last == ord("z")))
    mat[rows[zulu], lens[zulu] - 1] = 0
    lens[zulu] -= 1
    offset_s = np.zeros(n, dtype=np.int64)
    has = lens >= 6  # noqa: PLR2004 - "+HH:MM"
    at = np.where(has, lens - 6, 0)
    sign = mat[rows, at]
    has &= ((sign == ord("+")) | (sign == ord("-"))) & (mat[rows, at + 3] == ord(":"))
    if has.any():
        digits = mat[rows[has, None], at[has, None] + np.array([1, 2, 4, 5])].astype(np.int64)
        digits -= ord("0")
        if ((digits < 0) | (digits > 9)).any():  # noqa: PLR2004
            raise ValueError("bad offset")
        minutes = (digits[:, 0] * 10 + digits[:, 1]) * 60 + digits[:, 2] * 10 + digits[:, 3]
        offset_s[has] = np.where(sign[has] == ord("-"), -minutes, minutes) * 60
        for k in range(6):
            mat[rows[has], at[has] + k] = 0
    if not (mat[:, 4] == ord("-")).all():  # a date first (NumPy alone takes "17" as a year)
        raise ValueError("not a date")
    cleaned = mat.view(f"S{width}").reshape(n)
    parsed = cleaned.astype("datetime64[us]")
    if np.isnat(parsed).any():
        raise ValueError("NaT")
    micros = (parsed - _EPOCH).astype(np.int64) - offset_s * 1_000_000
    seconds: NDArray[np.float64] = micros / 1e6
    return seconds


def _iso_one(text: str) -> float:
    """One ISO timestamp, as `_iso_seconds` reads it (for naming the bad row)."""
    return float(_iso_seconds(np.array([text.encode()], dtype=_ISO))[0])


def parse_csv(raw: bytes, *, max_readings: int) -> dict[str, NDArray[np.float64]]:
    """``{column: float64 array}`` from a CSV body (see the module docstring)."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark (spreadsheets)
    first_nl = raw.find(b"\n")
    header_line = (raw if first_nl < 0 else raw[:first_nl]).decode("utf-8", "replace")
    if not header_line.strip():
        raise UploadError("body.header", "the first row must name the columns", "csv_header")
    names = _header(header_line.rstrip("\r"))
    body = b"" if first_nl < 0 else raw[first_nl + 1 :]
    if not body.strip():
        raise UploadError("body", "at least one reading is needed", "too_short")
    iso = "timestamp" in names and _first_stamp_is_iso(body, names.index("timestamp"))
    dtype = [(f"c{i}", _ISO if iso and n == "timestamp" else "f8") for i, n in enumerate(names)]
    try:
        table = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=dtype, comments=None, ndmin=1)
    except ValueError:
        _scan(body, names, iso=iso)  # raises naming the row
        raise UploadError("body", "not a CSV file of readings", "csv_value") from None
    if table.size > max_readings:
        raise UploadError("body", f"at most {max_readings} readings per test", "too_long")
    columns: dict[str, NDArray[np.float64]] = {}
    for i, name in enumerate(names):
        field = table[f"c{i}"]
        if iso and name == "timestamp":
            try:
                columns[name] = _iso_seconds(field)
            except ValueError:
                _scan(body, names, iso=iso)
                raise UploadError("body", "an unreadable timestamp", "csv_value") from None
        else:
            columns[name] = np.ascontiguousarray(field, dtype=np.float64)
        if not np.isfinite(columns[name]).all():
            _scan(body, names, iso=iso)
            raise UploadError("body", f"a {name} is not a finite number", "csv_value")
    return columns


def _first_stamp_is_iso(body: bytes, index: int) -> bool:
    for line in io.BytesIO(body):
        if line.strip():
            cells = line.decode("utf-8", "replace").split(",")
            return index < len(cells) and _NUMBER.match(cells[index]) is None
    return False


def _scan(body: bytes, names: list[str], *, iso: bool) -> None:
    """Find the first bad row (error path only: Python, row by row) and raise its 422."""
    for number, raw_line in enumerate(body.split(b"\n"), start=2):
        content = raw_line.rstrip(b"\r").decode("utf-8", "replace")
        if not content.strip():
            continue
        cells = content.split(",")
        if len(cells) != len(names):
            raise UploadError(
                f"body.row[{number}]",
                f"row {number} has {len(cells)} columns; the header names {len(names)}",
                "csv_columns",
                row=number,
            )
        for name, cell in zip(names, cells, strict=True):
            if iso and name == "timestamp":
                try:
                    _iso_one(cell)
                except ValueError:
                    raise _cell_error(
                        number, name, f"{cell.strip()[:40]!r} is not an ISO 8601 date-time"
                    ) from None
                continue
            if _NUMBER.match(cell) is None and cell.strip().lower() not in {
                "nan",
                "inf",
                "-inf",
                "+inf",
                "infinity",
                "-infinity",
            }:
                raise _cell_error(number, name, f"{cell.strip()[:40]!r} is not a number")
            if not math.isfinite(float(cell)):
                raise _cell_error(number, name, f"{cell.strip()} is not a finite number")


# ------------------------------------------------------------------ multipart of .npy parts


def _boundary(content_type: str) -> bytes:
    found = _BOUNDARY.search(content_type)
    boundary = (found.group(1) or found.group(2)) if found else ""
    if not boundary or len(boundary) > MAX_BOUNDARY or not boundary.isascii():
        raise BadRequest("multipart/form-data needs a boundary parameter (1 to 70 ASCII chars)")
    return boundary.encode("ascii")


def multipart_parts(raw: bytes, content_type: str) -> dict[str, memoryview]:
    """``{part name: its bytes}`` of a ``multipart/form-data`` body (RFC 7578)."""
    delimiter = b"--" + _boundary(content_type)
    view = memoryview(raw)
    start = raw.find(delimiter)
    if start < 0:
        raise BadRequest("multipart body without its boundary")
    parts: dict[str, memoryview] = {}
    pos = start + len(delimiter)
    separator = b"\r\n" + delimiter
    while True:
        if raw.startswith(b"--", pos):
            return parts  # the close delimiter
        line_end = raw.find(b"\r\n", pos)
        head_end = raw.find(b"\r\n\r\n", pos)
        if line_end < 0 or head_end < 0:
            raise BadRequest("multipart part without headers")
        headers = raw[line_end + 2 : head_end].decode("latin-1")
        nxt = _npy_end(view, head_end + 4)
        if nxt < 0 or not raw.startswith(separator, nxt):
            nxt = raw.find(separator, head_end + 4)
        if nxt < 0:
            raise BadRequest("multipart body without its close delimiter")
        name = _part_name(headers)
        if name in parts:
            raise UploadError(f"body.{name}", "part given twice", "npy_part", part=name)
        parts[name] = view[head_end + 4 : nxt]
        pos = nxt + len(separator)


# What reading a hostile ``.npy`` header can raise: NumPy parses the header's dict with
# ``ast.literal_eval``, which raises RecursionError (and MemoryError in the parser) on a
# deeply nested shape such as ``(------...1,)``; the header is at most _NPY_HEAD bytes.
_NPY_ERRORS = (ValueError, EOFError, SyntaxError, TypeError, RecursionError, MemoryError)


def _npy_end(view: memoryview, start: int) -> int:
    """Where the ``.npy`` file at ``start`` ends by its own header, or -1.

    Lets `multipart_parts` check for the delimiter right there instead of searching 8 MB
    of array bytes for it (~2 ms a million readings); anything unexpected: -1, and the
    search decides. A conforming body (RFC 2046 §5.1.1: the boundary occurs in no part)
    is split the same either way.
    """
    try:
        header = _npy_header(view[start : start + _NPY_HEAD])
    except _NPY_ERRORS:
        return -1
    if header is None:
        return -1
    shape, dtype, size = header
    if dtype.hasobject or any(d < 0 for d in shape):
        return -1
    return start + size + math.prod(shape) * dtype.itemsize


def _npy_header(head: memoryview) -> tuple[tuple[int, ...], np.dtype[Any], int] | None:
    """(shape, dtype, header size) of a version 1.0 or 2.0 ``.npy`` header; None for others.

    Raises one of `_NPY_ERRORS` for a header that is not one. ``head``: the file's first
    bytes (BytesIO copies what it gets: pass the header's span, not the whole array).
    """
    stream = io.BytesIO(head)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        return None
    if not all(type(d) is int for d in shape):  # NumPy takes (True,) as a shape
        raise ValueError(f"shape {shape!r} is not a tuple of integers")
    # Fortran order does not matter: one dimension is the same bytes either way.
    return shape, dtype, stream.tell()


def _part_name(headers: str) -> str:
    for line in headers.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-disposition":
            found = _PART_NAME.search(value)
            if found:
                return found.group(1)
    raise BadRequest("multipart part without a Content-Disposition name")


def _npy(name: str, data: memoryview, max_readings: int) -> NDArray[np.float64]:
    """One part: a 1-D ``.npy`` array of numbers, as float64 (422 naming the part)."""

    def bad(problem: str, kind: str = "npy_part") -> UploadError:
        return UploadError(f"body.{name}", f"part {name}: {problem}", kind, part=name)

    try:
        header = _npy_header(data[:_NPY_HEAD])
    except _NPY_ERRORS as exc:
        raise bad(f"not a .npy file ({exc})") from None
    if header is None:
        return _npy_any(name, data, max_readings, bad)
    shape, dtype, size = header
    return _checked(name, data, offset=size, shape=shape, dtype=dtype, limit=max_readings, bad=bad)


def _npy_any(
    name: str,
    data: memoryview,
    max_readings: int,
    bad: Any,  # noqa: ANN401
) -> NDArray[np.float64]:
    """``.npy`` 3.0 (a UTF-8 header): through ``read_array``, never unpickling."""
    try:
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except _NPY_ERRORS as exc:
        raise bad(f"not a .npy file ({exc})") from None
    return _finite(name, _as_float(array, bad), max_readings, bad)


def _checked(
    name: str,
    data: memoryview,
    *,
    offset: int,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    limit: int,
    bad: Any,  # noqa: ANN401 - the part's error factory
) -> NDArray[np.float64]:
    max_readings = limit
    if len(shape) != 1:
        raise bad(f"must be a 1-D array, not shape {shape}", "npy_shape")
    if dtype.hasobject or dtype.kind not in "fiuM" or dtype.fields is not None:
        raise bad(f"dtype {dtype.str} is not float, integer or datetime64", "npy_dtype")
    if dtype.kind == "M" and name != "timestamp":
        raise bad("only the timestamp part may be datetime64", "npy_dtype")
    count = shape[0]
    if count > max_readings:
        raise bad(f"at most {max_readings} readings per test, got {count}", "too_long")
    expected = offset + count * dtype.itemsize
    if len(data) != expected:
        raise bad(
            f"{len(data)} bytes for {count} x {dtype.str} ({expected} expected)", "npy_length"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return _finite(name, _as_float(array, bad), max_readings, bad)


def _as_float(array: NDArray[Any], bad: Any) -> NDArray[np.float64]:  # noqa: ANN401
    if array.ndim != 1:
        raise bad(f"must be a 1-D array, not shape {array.shape}", "npy_shape")
    kind = array.dtype.kind
    if kind == "M":
        if array.dtype != np.dtype("datetime64[us]"):
            array = array.astype("datetime64[us]")
        if np.isnat(array).any():
            raise bad(f"element {int(np.flatnonzero(np.isnat(array))[0])} is NaT", "npy_value")
        seconds: NDArray[np.float64] = (array - _EPOCH).astype(np.int64) / 1e6
        return seconds
    if kind not in "fiu":
        raise bad(f"dtype {array.dtype.str} is not float, integer or datetime64", "npy_dtype")
    return np.asarray(array, dtype=np.float64)


def _finite(
    name: str,
    array: NDArray[np.float64],
    max_readings: int,
    bad: Any,  # noqa: ANN401
) -> NDArray[np.float64]:
    del name
    if array.size > max_readings:
        raise bad(f"at most {max_readings} readings per test, got {array.size}", "too_long")
    finite = np.isfinite(array)
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise bad(f"element {index} is {array[index]}, not a finite number", "npy_value")
    return array


def parse_npy_parts(
    raw: bytes, content_type: str, *, max_readings: int
) -> dict[str, NDArray[np.float64]]:
    """``{column: float64 array}`` from a multipart body of ``.npy`` parts."""
    parts = multipart_parts(raw, content_type)
    for name in parts:
        if name not in COLUMNS:
            raise UploadError(
                f"body.{name}",
                f"unknown part {name!r}; the parts are timestamp, value, reference",
                "npy_part",
                part=name,
            )
    if "value" not in parts:
        raise UploadError("body.value", "part value is required", "missing", part="value")
    columns = {name: _npy(name, parts[name], max_readings) for name in COLUMNS if name in parts}
    n = columns["value"].size
    if n == 0:
        raise UploadError(
            "body.value", "part value: at least one reading is needed", "too_short", part="value"
        )
    for name, array in columns.items():
        if array.size != n:
            raise UploadError(
                f"body.{name}",
                f"part {name} has {array.size} entries for {n} values",
                "npy_length",
                part=name,
            )
    return columns


# ------------------------------------------------------------------ OpenAPI


def _column_part(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


UPLOAD_CONTENT: dict[str, Any] = {
    CSV: {
        "schema": {
            "type": "string",
            "description": "header row naming timestamp, value, reference (value required),"
            " then one reading per row; timestamps as epoch seconds or ISO 8601;"
            " device_id and options as query parameters",
        },
        "example": "timestamp,value,reference\n1764170000.0,20.02,20.0\n1764170001.0,20.01,20.0\n",
    },
    MULTIPART: {
        "schema": {
            "type": "object",
            "required": ["value"],
            "properties": {
                "value": _column_part(".npy: 1-D float64/float32/integer readings"),
                "timestamp": _column_part(".npy: 1-D epoch seconds or datetime64 (UTC)"),
                "reference": _column_part(".npy: 1-D reference values"),
            },
            "additionalProperties": False,
        },
        "encoding": {name: {"contentType": "application/octet-stream"} for name in COLUMNS},
    },
}


def with_upload_formats(extra: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of the submit route with the CSV and ``.npy`` bodies added."""
    extra["requestBody"]["content"].update(UPLOAD_CONTENT)
    return extra

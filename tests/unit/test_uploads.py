"""The upload formats' parsers (sensor/uploads.py) and the readings CSV (readings_csv.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from sensor_backend.core.errors import BadRequest
from sensor_backend.core.input_guard import body_problem
from sensor_backend.sensor.models import InvalidRequestError, parse_test_request
from sensor_backend.sensor.readings_csv import HEADER, Readings
from sensor_backend.sensor.uploads import (
    UploadError,
    UploadOptions,
    multipart_parts,
    parse_csv,
    parse_npy_parts,
    parse_submission,
)

T = np.array([1764170000.0, 1764170000.5, 1764170001.0])
V = np.array([20.02, 19.98, 20.0])
R = np.array([20.0, 20.0, 20.0])
BOUNDARY = "rig-boundary-7"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def multipart(parts: dict[str, bytes]) -> bytes:
    chunks = []
    for name, data in parts.items():
        chunks += [
            f"--{BOUNDARY}\r\n".encode(),
            f'Content-Disposition: form-data; name="{name}"; filename="{name}.npy"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            data,
            b"\r\n",
        ]
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(chunks)


def error_of(excinfo: pytest.ExceptionInfo[UploadError]) -> dict:
    body = excinfo.value.body()
    assert body["error"] == "validation_error"
    return body["fields"][0]


# ---------------------------------------------------------------- CSV: good files


def test_epoch_seconds_read_exactly():
    text = "timestamp,value,reference\n" + "".join(
        f"{t!r},{v!r},{r!r}\n" for t, v, r in zip(T.tolist(), V.tolist(), R.tolist(), strict=True)
    )
    columns = parse_csv(text.encode(), max_readings=10)
    np.testing.assert_array_equal(columns["timestamp"], T)
    np.testing.assert_array_equal(columns["value"], V)
    np.testing.assert_array_equal(columns["reference"], R)


def test_iso_timestamps_with_z_offsets_and_none_are_utc_seconds():
    text = (
        "Value,Timestamp\r\n"  # any order, any case, CRLF
        "20.02,2025-11-26T15:13:20Z\r\n"
        "19.98,2025-11-26T16:13:20.5+01:00\r\n"
        "\r\n"  # blank lines are skipped
        "20.0,2025-11-26T15:13:21\r\n"
    )
    columns = parse_csv(text.encode(), max_readings=10)
    np.testing.assert_array_equal(columns["timestamp"], T)
    np.testing.assert_array_equal(columns["value"], V)
    assert "reference" not in columns


def test_negative_offsets_and_a_bom():
    text = "\ufefftimestamp,value\n2025-11-26T13:43:20-01:30,1\n"
    assert parse_csv(text.encode(), max_readings=10)["timestamp"].tolist() == [T[0]]


# ---------------------------------------------------------------- CSV: bad rows named


@pytest.mark.parametrize(
    ("text", "field", "row", "column"),
    [
        ("timestamp,value\n1,2\n2,abc\n", "body.row[3].value", 3, "value"),
        ("timestamp,value\n1,2\n2,\n", "body.row[3].value", 3, "value"),
        ("timestamp,value\n1,2\n2,nan\n", "body.row[3].value", 3, "value"),
        ("timestamp,value\n1,2\n2,1e999\n", "body.row[3].value", 3, "value"),
        ("value,reference\n1,2\n2,inf\n", "body.row[3].reference", 3, "reference"),
        ("timestamp,value\n1,2\nx,3\n", "body.row[3].timestamp", 3, "timestamp"),
        (
            "timestamp,value\n2025-01-01T00:00:00Z,2\n\n2025-13-01T00:00:00Z,3\n",
            "body.row[4].timestamp",
            4,
            "timestamp",
        ),
        (
            "timestamp,value\n2025-01-01T00:00:00Z,2\n17,3\n",
            "body.row[3].timestamp",
            3,
            "timestamp",
        ),
        (
            "timestamp,value\n2025-01-01T00:00:00Z,2\nNaT,3\n",
            "body.row[3].timestamp",
            3,
            "timestamp",
        ),
    ],
)
def test_a_bad_cell_is_named_by_row_and_column(text, field, row, column):
    with pytest.raises(UploadError) as excinfo:
        parse_csv(text.encode(), max_readings=10)
    error = error_of(excinfo)
    assert error["field"] == field
    assert (error["row"], error["column"]) == (row, column)
    assert f"row {row}, column {column}" in error["message"]


@pytest.mark.parametrize(
    ("text", "row"),
    [("timestamp,value\n1,2\n2\n", 3), ("timestamp,value\n1,2\n2,3\n3,4,5\n", 4)],
)
def test_a_row_with_the_wrong_number_of_columns_is_named(text, row):
    with pytest.raises(UploadError) as excinfo:
        parse_csv(text.encode(), max_readings=10)
    error = error_of(excinfo)
    assert error["field"] == f"body.row[{row}]"
    assert error["type"] == "csv_columns"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("time,value\n1,2\n", "'time'"),
        ("timestamp,reference\n1,2\n", "value column is required"),
        ("value,value\n1,2\n", "twice"),
        ("\n1,2\n", "name the columns"),
    ],
)
def test_a_bad_header_is_named(text, problem):
    with pytest.raises(UploadError) as excinfo:
        parse_csv(text.encode(), max_readings=10)
    error = error_of(excinfo)
    assert error["field"] == "body.header"
    assert problem in error["message"]


def test_no_readings_and_too_many_are_422():
    with pytest.raises(UploadError, match="at least one"):
        parse_csv(b"value\n", max_readings=10)
    with pytest.raises(UploadError, match="at most 2"):
        parse_csv(b"value\n1\n2\n3\n", max_readings=2)


# ---------------------------------------------------------------- .npy parts


def test_npy_parts_read_exactly_in_any_byte_order_and_width():
    body = multipart(
        {
            "timestamp": npy(T.astype(">f8")),
            "value": npy(V),
            "reference": npy(np.array([20, 20, 20], dtype=np.int32)),
        }
    )
    columns = parse_npy_parts(body, MULTIPART, max_readings=10)
    np.testing.assert_array_equal(columns["timestamp"], T)
    np.testing.assert_array_equal(columns["value"], V)
    np.testing.assert_array_equal(columns["reference"], R)


def test_datetime64_timestamps_are_epoch_seconds():
    stamps = (T * 1e6).astype(np.int64).astype("datetime64[us]")
    body = multipart({"timestamp": npy(stamps), "value": npy(V)})
    np.testing.assert_array_equal(parse_npy_parts(body, MULTIPART, max_readings=10)["timestamp"], T)


@pytest.mark.parametrize(
    ("parts", "field", "kind"),
    [
        ({"value": npy(np.array([1.0, np.nan]))}, "body.value", "npy_value"),
        (
            {"value": npy(V), "reference": npy(np.array([1.0, 2.0, np.inf]))},
            "body.reference",
            "npy_value",
        ),
        ({"value": npy(V.reshape(3, 1))}, "body.value", "npy_shape"),
        ({"value": npy(np.array(["a", "b"]))}, "body.value", "npy_dtype"),
        ({"value": npy(np.array([1 + 2j]))}, "body.value", "npy_dtype"),
        ({"value": npy(V), "timestamp": npy(T[:2])}, "body.timestamp", "npy_length"),
        ({"value": npy(V)[:-3]}, "body.value", "npy_length"),
        ({"value": npy(V) + b"\x00" * 8}, "body.value", "npy_length"),
        ({"value": b"not a npy file"}, "body.value", "npy_part"),
        ({"value": npy(V), "values": npy(V)}, "body.values", "npy_part"),
        ({"timestamp": npy(T)}, "body.value", "missing"),
        ({"value": npy(np.array([], dtype=np.float64))}, "body.value", "too_short"),
        ({"value": npy(np.zeros(11))}, "body.value", "too_long"),
        (
            {"value": npy(V), "reference": npy(T.astype("datetime64[s]"))},
            "body.reference",
            "npy_dtype",
        ),
    ],
)
def test_a_bad_part_is_named(parts, field, kind):
    with pytest.raises(UploadError) as excinfo:
        parse_npy_parts(multipart(parts), MULTIPART, max_readings=10)
    error = error_of(excinfo)
    assert (error["field"], error["type"]) == (field, kind)


def test_npy_parts_end_where_their_headers_say():
    """Parts split at the length their .npy headers give are the parts the body holds."""
    version_2 = io.BytesIO()
    np.lib.format.write_array(version_2, R, version=(2, 0))
    parts = {"timestamp": npy(T), "value": npy(V.astype(">f8")), "reference": version_2.getvalue()}
    found = multipart_parts(multipart(parts), MULTIPART)
    assert {name: bytes(data) for name, data in found.items()} == parts


def test_a_pickle_is_never_loaded():
    """An object array's .npy holds a pickle: refused by its header, never unpickled."""
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UploadError, match="not float"):
        parse_npy_parts(multipart({"value": out.getvalue()}), MULTIPART, max_readings=10)


def npy_with_header(header: str, version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy file with a hand-written header dict (padded as the format wants)."""
    text = header.encode("latin1" if version < (3, 0) else "utf8")
    size_bytes = 2 if version == (1, 0) else 4
    pad = -(10 + size_bytes - 4 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    size = len(text).to_bytes(size_bytes, "little")
    return b"\x93NUMPY" + bytes(version) + size + text + b"\0" * 8


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize(
    "shape",
    [
        "(" + "-" * 3000 + "1,)",
        "(" + "~" * 3000 + "1,)",
        "(" + "1+" * 3000 + "1,)",
        "(" + "+" * 9000 + "1,)",
        "(True,)",
    ],
)
def test_a_hostile_npy_header_is_a_422_not_a_crash(shape, version):
    """A deeply nested shape (RecursionError in NumPy's literal_eval) or a boolean one: 422."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}"
    body = multipart({"value": npy_with_header(header, version)})
    with pytest.raises(UploadError) as excinfo:
        parse_npy_parts(body, MULTIPART, max_readings=10)
    assert error_of(excinfo)["field"] == "body.value"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"no boundary here", MULTIPART),
        (b"x", "multipart/form-data"),
        (f"--{BOUNDARY}\r\nContent-Type: x\r\n\r\nabc\r\n--{BOUNDARY}--".encode(), MULTIPART),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="value"\r\n\r\nabc'.encode(),
            MULTIPART,
        ),
    ],
)
def test_malformed_multipart_is_400(body, content_type):
    with pytest.raises(BadRequest):
        parse_npy_parts(body, content_type, max_readings=10)


# ---------------------------------------------------------------- the same request


def test_every_format_gives_the_json_request_and_fingerprint():
    options = UploadOptions(
        device_id="rig-7", decision_rule="simple", spec_overrides='{"tol_abs": 0.3}'
    )
    body = {
        "device_id": "rig-7",
        "decision_rule": "simple",
        "spec_overrides": {"tol_abs": 0.3},
        "readings": {"values": V.tolist(), "timestamps": T.tolist(), "reference": R.tolist()},
    }
    expected = parse_test_request(json.dumps(body).encode(), "temperature", max_readings=10)
    text = "timestamp,value,reference\n" + "".join(
        f"{t!r},{v!r},{r!r}\n" for t, v, r in zip(T.tolist(), V.tolist(), R.tolist(), strict=True)
    )
    parts = multipart({"timestamp": npy(T), "value": npy(V), "reference": npy(R)})
    for raw, content_type in ((text.encode(), "text/csv"), (parts, MULTIPART)):
        parsed = parse_submission(raw, content_type, "temperature", options, max_readings=10)
        assert parsed.fingerprint == expected.fingerprint
        assert parsed.request.device_id == "rig-7"
        assert parsed.request.analysis_overrides() == expected.request.analysis_overrides()


@pytest.mark.parametrize(
    ("options", "content_type", "field"),
    [
        (UploadOptions(), "text/csv", "query.device_id"),
        (UploadOptions(device_id="r", spec_overrides="{"), "text/csv", "query.spec_overrides"),
        (UploadOptions(device_id="r", spec_overrides="[1]"), "text/csv", "query.spec_overrides"),
        (UploadOptions(device_id="r", spec_overrides='{"name": "x"}'), "text/csv", "query"),
        (UploadOptions(device_id="r"), "application/json", "query.device_id"),
        (UploadOptions(decision_rule="simple"), "", "query.decision_rule"),
    ],
)
def test_query_options_are_checked(options, content_type, field):
    with pytest.raises(InvalidRequestError) as excinfo:
        parse_submission(b"value\n1\n", content_type, "temperature", options, max_readings=10)
    assert excinfo.value.body()["fields"][0]["field"] == field


# ---------------------------------------------------------------- the readings CSV


def test_readings_csv_rows_read_back_exactly():
    flags = np.array([1, 3, 4], dtype=np.uint8)
    readings = Readings(V, T, R, flags)
    text = HEADER + readings.block(0, 2) + readings.block(2, 3)
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(table[:, 1], T)
    np.testing.assert_array_equal(table[:, 2], V)
    np.testing.assert_array_equal(table[:, 3], R)
    np.testing.assert_allclose(table[:, 4], V - R, atol=1e-12)
    np.testing.assert_array_equal(table[:, 5], flags)
    assert text.splitlines()[1] == "0,1764170000.0,20.02,20.0,0.02,1"


def test_readings_csv_leaves_unknown_columns_empty():
    assert Readings(V[:1], None, None, None).block(0, 1) == "0,,20.02,,,\n"


# ---------------------------------------------------------------- the input guard


async def test_the_guard_checks_csv_as_text_and_leaves_npy_parts_alone():
    problem = await body_problem(b"value\n1\x00\n", "text/csv")
    assert problem is not None
    assert problem.field == "body"
    assert await body_problem(b"value\n\xff\n", "text/csv") is not None
    assert await body_problem(b"value\n1\n", "text/csv") is None
    body = multipart({"value": npy(np.array([np.nan, 0.0]))}) + b'"\\u0000" NaN'
    assert await body_problem(body, "multipart/form-data") is None

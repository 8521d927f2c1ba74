"""Rig upload formats through the gateway: JSON, CSV (epoch and ISO 8601), ``.npy`` parts.

Real processes (PostgreSQL, auth, sensor, gateway): the same readings in each format give
the same analysis; a malformed CSV row is named in the 422; ``readings.csv`` streams every
reading with its error and flag; a million readings go through in CSV and ``.npy``.
"""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from harness import Harness, wait_for

from sensor_backend.sensor.simulate import simulate
from sensor_backend.sensor.specs import get_spec

pytestmark = pytest.mark.integration
BOUNDARY = "rig-upload-boundary"


@pytest.fixture(scope="module")
def system():
    harness = Harness({"postgres", "auth", "sensor", "gateway"}, offset_start=42000).start()
    yield harness
    harness.close()


def readings(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spec = get_spec("temperature")
    sim = simulate(spec, n=n, seed=seed, faults=["spikes"])
    # Timestamps on whole microseconds: ISO 8601 text carries exactly those.
    stamps = np.round(1764170000.0 + sim.timestamps, 6)
    return stamps, sim.values, sim.reference


def as_json(t, v, r) -> dict:
    return {
        "json": {
            "device_id": "rig-formats",
            "readings": {"values": v.tolist(), "timestamps": t.tolist(), "reference": r.tolist()},
        }
    }


def as_csv(t, v, r, *, iso: bool = False) -> dict:
    if iso:
        micros = np.round(t * 1e6).astype(np.int64).astype("datetime64[us]")
        stamps = [f"{s}Z" for s in np.datetime_as_string(micros)]
    else:
        stamps = [repr(s) for s in t.tolist()]
    rows = map("{},{!r},{!r}\n".format, stamps, v.tolist(), r.tolist())
    return {
        "content": ("timestamp,value,reference\n" + "".join(rows)).encode(),
        "headers": {"Content-Type": "text/csv"},
        "params": {"device_id": "rig-formats"},
    }


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def as_npy(t, v, r) -> dict:
    chunks = []
    for name, array in (("timestamp", t), ("value", v), ("reference", r)):
        chunks += [
            f"--{BOUNDARY}\r\n".encode(),
            f'Content-Disposition: form-data; name="{name}"; filename="{name}.npy"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            npy(array),
            b"\r\n",
        ]
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return {
        "content": b"".join(chunks),
        "headers": {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        "params": {"device_id": "rig-formats"},
    }


def submit(system: Harness, upload: dict) -> httpx.Response:
    headers = {**system.headers(), **upload.pop("headers", {})}
    return httpx.post(
        f"{system.url('gateway')}/test/sensor/temperature",
        headers=headers,
        timeout=120,
        **upload,
    )


def judged(system: Harness, upload: dict, timeout: float = 60) -> dict:
    response = submit(system, upload)
    assert response.status_code == 202, response.text
    test_id = response.json()["test_id"]

    def done():
        doc = httpx.get(
            f"{system.url('gateway')}/test/{test_id}", headers=system.headers(), timeout=10
        ).json()
        return doc if doc["status"] in {"completed", "failed"} else None

    doc = wait_for(done, timeout, interval=0.1)
    assert doc, f"test {test_id} was not judged in {timeout} s"
    return doc


def test_every_format_gives_the_json_result(system):
    t, v, r = readings(3000)
    expected = judged(system, as_json(t, v, r))
    assert expected["status"] == "completed"
    assert expected["verdict"] == "fail"  # the spikes are found
    for upload in (as_csv(t, v, r), as_csv(t, v, r, iso=True), as_npy(t, v, r)):
        doc = judged(system, upload)
        assert doc["status"] == "completed"
        assert doc["verdict"] == expected["verdict"]
        assert doc["result"] == expected["result"]
        assert doc["params"] == expected["params"]


def test_options_come_as_query_parameters(system):
    t, v, r = readings(500)
    upload = as_npy(t, v, r)
    upload["params"].update(
        decision_rule="simple", reference_uncertainty="0.01", spec_overrides='{"tol_abs": 5.0}'
    )
    doc = judged(system, upload)
    assert doc["spec"]["tol_abs"] == 5.0
    assert doc["spec"]["decision_rule"] == "simple"
    assert doc["spec"]["reference_uncertainty"] == 0.01


def test_a_malformed_csv_row_is_named_in_the_422(system):
    t, v, r = readings(50)
    upload = as_csv(t, v, r)
    lines = upload["content"].decode().splitlines()
    lines[10] = lines[10].split(",")[0] + ",20.1x,20.0"  # row 11 of the file
    upload["content"] = "\n".join(lines).encode()
    response = submit(system, upload)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["fields"][0]["field"] == "body.row[11].value"
    assert (body["fields"][0]["row"], body["fields"][0]["column"]) == (11, "value")
    assert "row 11, column value" in body["message"]


def test_a_bad_npy_part_is_named_in_the_422(system):
    t, v, r = readings(50)
    r = r.copy()
    r[7] = np.nan
    response = submit(system, as_npy(t, v, r))
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "body.reference"
    assert "element 7" in response.json()["message"]


def test_csv_without_a_device_id_is_422(system):
    t, v, r = readings(20)
    upload = as_csv(t, v, r)
    upload["params"] = {}
    response = submit(system, upload)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "query.device_id"


def test_readings_csv_streams_every_reading_with_its_error_and_flag(system):
    t, v, r = readings(2000)
    doc = judged(system, as_npy(t, v, r))
    url = f"{system.url('gateway')}/test/{doc['test_id']}/readings.csv"
    response = httpx.get(url, headers=system.headers(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="test-{doc["test_id"]}-readings.csv"'
    )
    lines = response.text.splitlines()
    assert lines[0] == "index,timestamp,value,reference,error,flag"
    table = np.loadtxt(lines[1:], delimiter=",")
    np.testing.assert_array_equal(table[:, 0], np.arange(2000))
    np.testing.assert_array_equal(table[:, 1], t)
    np.testing.assert_array_equal(table[:, 2], v)
    np.testing.assert_array_equal(table[:, 3], r)
    np.testing.assert_allclose(table[:, 4], v - r, atol=1e-9)
    series = httpx.get(
        f"{system.url('gateway')}/test/{doc['test_id']}/readings",
        params={"max_points": 100_000},
        headers=system.headers(),
        timeout=30,
    ).json()
    assert table[:, 5].astype(int).tolist() == series["flags"]
    flagged = {
        i
        for check in doc["result"]["checks"].values()
        for i in (check.get("suspect_indices") or []) + (check.get("fail_indices") or [])
    }
    assert flagged
    assert all(table[i, 5] in {3, 4} for i in flagged)


def test_readings_csv_of_an_unknown_test_is_404(system):
    url = f"{system.url('gateway')}/test/00000000-0000-4000-8000-000000000000/readings.csv"
    response = httpx.get(url, headers=system.headers(), timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize("form", ["csv", "npy"])
def test_a_million_readings_in_csv_and_npy(system, form):
    n = 1_000_000
    spec = get_spec("temperature")
    sim = simulate(spec, n=n, seed=9)
    t = np.round(1764170000.0 + sim.timestamps, 4)
    v, r = np.round(sim.values, 3), np.round(sim.reference, 4)
    upload = as_csv(t, v, r, iso=True) if form == "csv" else as_npy(t, v, r)
    doc = judged(system, upload, timeout=120)
    assert doc["status"] == "completed"
    assert doc["result"]["stats"]["count"] == n
    assert doc["verdict"] == "pass", json.dumps(doc["result"]["reasons"])

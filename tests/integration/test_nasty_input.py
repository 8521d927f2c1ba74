"""Hand-written nasty input through the gateway: always a clear 4xx JSON answer, never a 500."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from harness import Harness

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"}, offset_start=39500
    )
    yield harness.start()
    harness.close()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def event(**overrides: object) -> dict[str, object]:
    return {"id": str(uuid.uuid4()), "source": "/nasty", "type": "nasty.check", **overrides}


CASES = [
    # (method, path, kwargs, expected status)
    ("POST", "/events", {"content": nested(50_000)}, {400, 422}),
    (
        "POST",
        "/test/sensor/temperature",
        {"content": '{"device_id":"d","readings":' + nested(20_000) + "}"},
        {400, 422},
    ),
    (
        "POST",
        "/test/sensor/temperature",
        {"content": '{"device_id":"d","readings":{"values":[1, NaN, 3]}}'},
        {400, 422},
    ),
    (
        "POST",
        "/test/sensor/temperature",
        {"content": '{"device_id":"d","readings":{"values":[1, Infinity]}}'},
        {400, 422},
    ),
    (
        "POST",
        "/test/sensor/temperature",
        {"content": '{"device_id":"d","readings":{"values":[1e400]}}'},
        {400, 422},
    ),
    (
        "POST",
        "/test/sensor/temperature",
        {"content": '{"device_id":"d","readings":{"values":[1,2],"reference":[1]}}'},
        {422},
    ),
    (
        "POST",
        "/test/sensor/temperature",
        {"content": "<xml/>", "headers": {"content-type": "application/xml"}},
        {400, 415, 422},
    ),
    ("POST", "/test/sensor/temperature", {"content": b"\xff\xfe\x00garbage"}, {400, 422}),
    ("POST", "/test/sensor/..%2F..%2Fetc%2Fpasswd", {"content": "{}"}, {404, 422}),
    ("GET", "/test/..%2F..%2Fetc%2Fpasswd", {}, {404, 422}),
    ("GET", "/test/1%27%20OR%20%271%27%3D%271", {}, {404, 422}),
    ("GET", "/sensor-types/%27%3B%20DROP%20TABLE%20tests%3B--", {}, {404, 422}),
    ("GET", "/tests?verdict=%27%20OR%201%3D1--&limit=-5", {}, {422}),
    (
        "POST",
        "/events",
        {"content": json.dumps(event(id="'; DROP TABLE processed_events;--"))},
        {422},
    ),
    ("POST", "/events", {"content": json.dumps(event(subject="ü" * 600))}, {422}),
    # NUL in any JSON string, opaque data included: the consumer stores fields of `data`
    # (sensor_type, verdict) in PostgreSQL text, which cannot hold it.
    ("POST", "/events", {"content": json.dumps(event(data={"k": "\u0000\ud7ff" * 10}))}, {422}),
    (
        "POST",
        "/register",
        {"content": json.dumps({"username": "名前名前", "password": "pass-word-1"})},
        {422},
    ),
    (
        "POST",
        "/register",
        {"content": json.dumps({"username": "a\u202eb", "password": "pass-word-1"})},
        {422},
    ),
    (
        "POST",
        "/token",
        {
            "content": "username=%00admin&password=x",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        {401, 422},
    ),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "expected"), CASES)
def test_nasty_input_gets_a_clear_4xx(system, method, path, kwargs, expected):
    """Each nasty request answers the expected status with a JSON error, never a 500."""
    headers = {"content-type": "application/json", **system.headers(), **kwargs.pop("headers", {})}
    response = httpx.request(
        method, f"{system.url('gateway')}{path}", headers=headers, timeout=30, **kwargs
    )
    assert response.status_code in expected, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code >= 400:
        assert "error" in response.json()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "Bearer",
        "Bearer " + "a" * 10_000,
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Bearer not.a.jwt",
        "Basic YWRtaW46YWRtaW4=",
    ],
)
def test_broken_tokens_are_401_at_the_gateway(system, token):
    """Empty, oversized, alg-none, malformed and non-bearer credentials: 401, never 500."""
    response = httpx.get(f"{system.url('gateway')}/tests", headers={"Authorization": token})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_a_request_id_with_injection_characters_is_replaced(system):
    """A request id outside the safe alphabet is not echoed; the gateway makes its own."""
    response = httpx.get(
        f"{system.url('gateway')}/health", headers={"X-Request-ID": "x y;<script>"}
    )
    assert response.headers["x-request-id"] != "x y;<script>"
    assert len(response.headers["x-request-id"]) == 32

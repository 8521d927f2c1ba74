"""Nasty input, never a 500: hand-written cases, the NUL regression, generated requests.

- Hand-written cases through the gateway: always a clear 4xx JSON answer.
- The NUL-byte regression (issue 17): every text filter and text field of every service,
  directly and through the gateway, is a 422 naming the field, never PostgreSQL's 500.
- Property-based: every operation of every app's OpenAPI gets strings with NUL, lone
  surrogates, very long values and numbers at the limits of their types (nasty_requests).
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from harness import Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nasty_requests import build, json_values, operations, url_values

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=39500,
        # Generated logins must not lock anyone out of the rest of the run.
        env={"AUTH_LOGIN_MAX_FAILURES": "100000", "AUTH_LOGIN_MAX_CLIENT_FAILURES": "100000"},
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


# ------------------------------------------------------------------ the NUL regression

NUL = "a\u0000b"
FORM = {"content-type": "application/x-www-form-urlencoded"}
NUL_CASES = [
    # (component, method, path, kwargs, the field the 422 names)
    *(
        (where, "GET", f"{prefix}/tests?{name}=a%00b", {}, f"query.{name}")
        for where, prefix in (("sensor", ""), ("gateway", ""))
        for name in ("sensor_type", "device_id", "verdict", "status", "since")
    ),
    ("sensor", "GET", "/sensor-types/a%00b", {}, "path"),
    ("sensor", "GET", "/test/a%00b", {}, "path"),
    ("sensor", "GET", "/test/a%00b/readings", {}, "path"),
    ("sensor", "POST", "/test/a%00b", {}, "path"),
    ("sensor", "POST", "/test/temperature", {"json": {"device_id": NUL}}, "body.device_id"),
    ("sensor", "POST", "/sensor-types", {"json": {"name": NUL}}, "body.name"),
    *(
        (where, "GET", f"{path}?{name}=a%00b", {}, f"query.{name}")
        for where, path in (("events", "/logs"), ("gateway", "/events/logs"))
        for name in ("type", "subject", "since")
    ),
    ("events", "POST", "/send-event", {"json": {"source": NUL}}, "body.source"),
    (
        "auth",
        "POST",
        "/token",
        {"content": "username=a%00b&password=x", "headers": FORM},
        "body.username",
    ),
    (
        "auth",
        "POST",
        "/token",
        {"content": "username=a&password=%00", "headers": FORM},
        "body.password",
    ),
    ("auth", "POST", "/token", {"json": {"username": NUL, "password": "x"}}, "body.username"),
    (
        "auth",
        "POST",
        "/register",
        {"json": {"username": NUL, "password": "p" * 9}},
        "body.username",
    ),
    ("auth", "POST", "/revoke", {"json": {"jti": NUL}}, "body.jti"),
    ("gateway", "GET", "/sensor-types/a%00b", {}, "path"),
    ("gateway", "GET", "/test/a%00b", {}, "path"),
    ("gateway", "POST", "/test/sensor/a%00b", {}, "path"),
    ("gateway", "POST", "/test/sensor/temperature", {"json": {"device_id": NUL}}, "body.device_id"),
    ("gateway", "POST", "/events", {"json": {"source": NUL}}, "body.source"),
    (
        "gateway",
        "POST",
        "/auth/token",
        {"content": "username=%00&password=x", "headers": FORM},
        "body.username",
    ),
    (
        "gateway",
        "POST",
        "/register",
        {"json": {"username": NUL, "password": "p" * 9}},
        "body.username",
    ),
    ("gateway", "GET", "/dead-letters?before=1&x=%00", {}, "query.x"),
]


@pytest.mark.parametrize("case", NUL_CASES, ids=[f"{c[0]}:{c[1]} {c[2]} {c[4]}" for c in NUL_CASES])
def test_nul_is_a_422_naming_the_field(system, case):
    """A NUL byte in any text input is refused at the edge, naming it; never a 500."""
    where, method, path, kwargs, field = case
    kwargs = dict(kwargs)
    headers = {**system.headers(), **kwargs.pop("headers", {})}
    response = httpx.request(
        method, f"{system.url(where)}{path}", headers=headers, timeout=30, **kwargs
    )
    assert response.status_code == 422, response.text[:300]
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["fields"][0]["field"] == field


# ------------------------------------------------------------------ generated requests


@pytest.mark.parametrize("where", ["auth", "sensor", "events", "gateway"])
def test_generated_nasty_input_never_gets_a_5xx(system, where):
    """Every route of the app's own OpenAPI, one nasty input at a time: never a 5xx."""
    base = system.url(where)
    ops = operations(httpx.get(f"{base}/openapi.json", timeout=10).json())
    token_headers = system.headers()
    cases = st.sampled_from(ops).flatmap(
        lambda op: st.tuples(st.just(op), st.sampled_from(op.places()))
    )

    @settings(
        max_examples=12 * len(ops),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=cases, url_value=url_values(), json_value=json_values())
    def check(case, url_value, json_value):
        op, (kind, name) = case
        request = build(op, kind, name, url_value, json_value)
        response = httpx.request(
            request.method,
            f"{base}{request.url}",
            headers={**token_headers, **request.headers},
            content=request.content,
            timeout=30,
        )
        assert response.status_code < 500, f"{request.describe()} -> {response.text[:300]}"

    check()

"""The gateway in front of real service processes: routes, headers, degradation, reset."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from harness import ADMIN_PASSWORD, Harness, wait_for

pytestmark = pytest.mark.integration

# A short upstream timeout and breaker wait keep the freeze tests quick.
FAST = {
    "GATEWAY_HTTP_TOTAL_TIMEOUT_S": "1.0",
    "GATEWAY_BREAKER_OPEN_S": "3",
    "GATEWAY_HEALTH_PROBE_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="module")
def system():
    # No sensor component: its replica URL is a closed port, i.e. "sensor service down".
    harness = Harness(
        {"postgres", "broker", "auth", "events", "gateway"}, offset_start=33000, env=FAST
    )
    yield harness.start()
    harness.close()


def gw(system: Harness, path: str) -> str:
    return f"{system.url('gateway')}{path}"


def token(system: Harness, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    response = httpx.post(
        gw(system, "/auth/token"), data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def event(kind: str = "gw.test") -> dict[str, str]:
    return {"id": str(uuid.uuid4()), "source": "/gw-tests", "type": kind, "subject": "dev-1"}


def health(system: Harness) -> dict:
    response = httpx.get(gw(system, "/health"), timeout=5)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("prefix", ["/auth", ""])
def test_auth_routes_with_and_without_prefix(system, prefix):
    """Register, token, verify and JWKS are reachable under /auth and at the root."""
    name = f"user{uuid.uuid4().hex[:8]}"
    reg = httpx.post(
        gw(system, f"{prefix}/register"), json={"username": name, "password": "pass-word-1"}
    )
    assert reg.status_code == 201
    tok = httpx.post(
        gw(system, f"{prefix}/token"), data={"username": name, "password": "pass-word-1"}
    )
    assert tok.status_code == 200
    verified = httpx.get(gw(system, f"{prefix}/verify"), headers=bearer(tok.json()["access_token"]))
    assert verified.json()["valid"] is True
    assert httpx.get(gw(system, f"{prefix}/.well-known/jwks.json")).json()["keys"]


@pytest.mark.parametrize("path", ["/events", "/send-event"])
def test_events_routes(system, path):
    """Events go through the gateway to the event service; stats and logs come back."""
    headers = bearer(token(system))
    ev = event("gw.route")
    response = httpx.post(gw(system, path), json=ev, headers=headers)
    assert response.status_code == 201
    assert response.json()["status"] == "sent"

    def logged() -> bool:
        logs = httpx.get(gw(system, "/events/logs"), params={"type": "gw.route"}, headers=headers)
        return ev["id"] in [i["id"] for i in logs.json()["items"]]

    assert wait_for(logged)
    assert httpx.get(gw(system, "/events/stats"), headers=headers).json()["dropped"] == 0


def test_request_id_and_trace_are_propagated_to_the_service(system):
    """The caller's X-Request-ID comes back and reaches the upstream's log; the trace id too."""
    rid = f"gw-{uuid.uuid4().hex}"
    trace = uuid.uuid4().hex
    response = httpx.get(
        gw(system, "/auth/.well-known/jwks.json"),
        headers={"X-Request-ID": rid, "traceparent": f"00-{trace}-b7ad6b7169203331-01"},
    )
    assert response.headers["x-request-id"] == rid
    assert response.headers["traceparent"].split("-")[1] == trace
    assert wait_for(lambda: rid in system.log("auth") and trace in system.log("auth"), 5)


def test_protected_routes_need_a_valid_token(system):
    """No token: 401; a tampered token: 401; both as JSON with WWW-Authenticate."""
    for headers in ({}, bearer(token(system)[:-3] + "xyz")):
        response = httpx.get(gw(system, "/events/stats"), headers=headers)
        assert response.status_code == 401
        assert "Bearer" in response.headers["www-authenticate"]
        assert response.json()["error"] == "unauthorized"


def test_sensor_down_is_a_json_503_with_retry_after(system):
    """With the sensor service down: 503, Retry-After and {error, service, retry_after}."""
    response = httpx.post(gw(system, "/test/sensor/temperature"), headers=bearer(token(system)))
    assert response.status_code == 503
    body = response.json()
    assert body["service"] == "sensor"
    assert body["retry_after"] >= 1
    assert response.headers["retry-after"] == str(body["retry_after"])
    doc = health(system)
    assert doc["services"]["sensor"]["status"] == "unavailable"
    assert doc["overall_status"] == "degraded"


def test_bad_input_is_4xx_json(system):
    """Unknown routes 404, oversized bodies 413, invalid events 422: all JSON."""
    headers = bearer(token(system))
    assert httpx.get(gw(system, "/nope")).json()["error"] == "not_found"
    bad = httpx.post(gw(system, "/events"), json={"id": "x"}, headers=headers)
    assert bad.status_code == 422
    huge = httpx.post(
        gw(system, "/events"),
        content=b"x" * (65 * 1024 * 1024),
        headers={**headers, "content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json()["error"] == "payload_too_large"


def test_breaker_reset_needs_an_admin(system):
    """Reset: 401 without a token, 403 for a user, 404 for an unknown breaker, 200 for admin."""
    name = f"user{uuid.uuid4().hex[:8]}"
    httpx.post(gw(system, "/register"), json={"username": name, "password": "pass-word-1"})
    user = token(system, name, "pass-word-1")
    admin = token(system)
    assert httpx.post(gw(system, "/circuit-breaker/reset/sensor")).status_code == 401
    assert (
        httpx.post(gw(system, "/circuit-breaker/reset/sensor"), headers=bearer(user)).status_code
        == 403
    )
    unknown = httpx.post(gw(system, "/circuit-breaker/reset/nope"), headers=bearer(admin))
    assert unknown.status_code == 404
    ok = httpx.post(gw(system, "/circuit-breaker/reset/sensor"), headers=bearer(admin))
    assert ok.status_code == 200
    assert ok.json()["breaker"]["state"] == "closed"
    assert set(httpx.get(gw(system, "/circuit-breakers")).json()) >= {"auth", "sensor", "kafka"}


def test_openapi_describes_the_gateway_routes(system):
    """The gateway's OpenAPI lists its own operations and the proxied routes."""
    paths = httpx.get(gw(system, "/openapi.json")).json()["paths"]
    for path in (
        "/health",
        "/circuit-breaker/reset/{service}",
        # POST by sensor type and GET by test id are one path template (OpenAPI forbids two).
        "/test/sensor/{sensor_type_or_test_id}",
        "/events",
    ):
        assert path in paths


def test_auth_down_uses_fallback_validation(system):
    """With auth SIGKILLed, valid tokens keep working through the JWKS fallback.

    X-Auth-Mode says fallback, a bad token is still refused, login answers 503; after auth
    restarts the normal path returns.
    """
    good = token(system)
    assert wait_for(lambda: health(system)["jwks"]["kids"], 15), "gateway never cached the JWKS"
    system.kill("auth")
    try:
        response = httpx.get(gw(system, "/events/stats"), headers=bearer(good))
        assert response.status_code == 200
        assert response.headers["x-auth-mode"] == "fallback"
        assert (
            httpx.get(gw(system, "/events/stats"), headers=bearer(good[:-3] + "abc")).status_code
            == 401
        )
        login = httpx.post(
            gw(system, "/auth/token"), data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 503
        assert int(login.headers["retry-after"]) >= 1
        assert wait_for(lambda: health(system)["services"]["auth"]["status"] == "unavailable", 10)
    finally:
        system.restart("auth")
    assert wait_for(lambda: health(system)["services"]["auth"]["status"] == "healthy", 20)


def test_event_service_down_queues_durably_across_a_gateway_crash(system):
    """Events queued by the gateway survive its crash and are delivered once.

    Events killed: POST /events answers 202 queued; the gateway is SIGKILLed and restarted
    with the spool; when events returns every queued event is delivered once.
    """
    headers = bearer(token(system))
    system.kill("events")
    queued = [event("gw.spooled") for _ in range(12)]
    try:
        answers = [httpx.post(gw(system, "/events"), json=ev, headers=headers) for ev in queued]
        assert [a.status_code for a in answers] == [202] * 12
        assert all(a.json()["status"] == "queued" for a in answers)
        assert health(system)["event_spool"]["depth"] == 12
        system.kill("gateway")
        system.restart("gateway")
        assert health(system)["event_spool"]["depth"] == 12
    finally:
        system.restart("events")
    assert wait_for(lambda: health(system)["event_spool"]["depth"] == 0, 60)

    def delivered() -> list[str]:
        logs = httpx.get(
            gw(system, "/events/logs"), params={"type": "gw.spooled", "limit": 100}, headers=headers
        )
        return [i["id"] for i in logs.json()["items"]]

    assert wait_for(lambda: len(delivered()) == 12, 30)
    assert sorted(delivered()) == sorted(e["id"] for e in queued)


def test_a_frozen_service_opens_its_breaker_then_503s_come_fast(system):
    """A hung (SIGSTOPped) service opens its breaker, and then 503s come back at once.

    Calls time out, the breaker opens, then 503 returns at once; /health answers fast and
    shows it; after SIGCONT the service is used again.
    """
    headers = bearer(token(system))
    system.freeze("events")
    try:
        for _ in range(6):
            response = httpx.get(gw(system, "/events/stats"), headers=headers, timeout=10)
            assert response.status_code == 503
            if health(system)["circuit_breakers"]["kafka"]["open"]:
                break
        doc = health(system)
        assert doc["circuit_breakers"]["kafka"]["open"] is True
        assert doc["circuit_breakers"]["kafka"]["failures"] >= 1
        started = time.perf_counter()
        fast = httpx.get(gw(system, "/events/stats"), headers=headers)
        elapsed = time.perf_counter() - started
        assert fast.status_code == 503
        assert elapsed < 0.5, f"open-breaker 503 took {elapsed:.3f} s"
        started = time.perf_counter()
        health(system)
        assert time.perf_counter() - started < 0.5
    finally:
        system.thaw("events")
    assert wait_for(
        lambda: httpx.get(gw(system, "/events/stats"), headers=headers).status_code == 200, 30
    )

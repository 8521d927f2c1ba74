"""Per-client rate limits and per-route body limits at the gateway, with real processes.

A token bucket per route group and authenticated subject (per client address on anonymous
routes); over the limit: 429 with Retry-After and the IETF draft's RateLimit-Policy and
RateLimit fields, and no service is called. Other clients are not affected. A body over
its route's limit is a 413 before it is read (Content-Length) or as soon as the streamed
bytes pass it (issue 14).
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from harness import ADMIN_PASSWORD, Harness

pytestmark = pytest.mark.integration

LIMITS = "tests=5/10,read=1000/60,login=4/60,public=1000/60,write=100/60,events=100/60"


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=38000,
        env={"GATEWAY_RATE_LIMITS": LIMITS},
    )
    yield harness.start()
    harness.close()


def login(gateway: str, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{gateway}/token", data={"username": username, "password": password})


def start_test(gateway: str, headers: dict[str, str]) -> httpx.Response:
    body = {"device_id": "rl", "simulate": {"n": 30, "seed": 1}}
    return httpx.post(f"{gateway}/test/sensor/temperature", json=body, headers=headers)


def test_a_burst_over_the_limit_gets_429_with_the_draft_headers(system):
    """Five tests pass, the sixth is 429 with Retry-After; after it, one passes again."""
    gateway = system.url("gateway")
    headers = system.headers()
    answers = [start_test(gateway, headers) for _ in range(6)]
    assert [a.status_code for a in answers] == [202] * 5 + [429], [a.text for a in answers]
    first, refused = answers[0], answers[-1]
    assert first.headers["ratelimit-policy"] == '"tests";q=5;w=10'
    assert first.headers["ratelimit"].startswith('"tests";r=4;t=')
    assert refused.headers["ratelimit"].startswith('"tests";r=0;t=')
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 2  # one token every 2 s
    doc = refused.json()
    assert doc["error"] == "too_many_requests"
    assert doc["limit"] == "tests"
    health = httpx.get(f"{gateway}/health").json()
    assert health["rate_limits"]["tests"]["limited"] >= 1
    time.sleep(retry_after)
    assert start_test(gateway, headers).status_code == 202


def test_one_clients_limit_never_touches_another(system):
    """A second user's bucket is full while the first one's is empty."""
    gateway = system.url("gateway")
    name, password = f"rl{uuid.uuid4().hex[:8]}", "pass-word-1"
    auth = system.url("auth")
    assert (
        httpx.post(f"{auth}/register", json={"username": name, "password": password}).status_code
        == 201
    )
    token = httpx.post(f"{auth}/token", data={"username": name, "password": password}).json()
    other = {"Authorization": f"Bearer {token['access_token']}"}
    admin = system.headers()
    while start_test(gateway, admin).status_code != 429:
        pass
    answers = [start_test(gateway, other).status_code for _ in range(5)]
    assert answers == [202] * 5


def test_anonymous_routes_are_limited_per_client_address(system):
    """Logins through the gateway: four per minute from one address, then 429."""
    gateway = system.url("gateway")
    codes = [login(gateway, "admin", ADMIN_PASSWORD).status_code for _ in range(5)]
    assert codes == [200] * 4 + [429]


def test_an_oversize_body_is_refused_before_it_is_read(system):
    """Content-Length over the 64 KiB of an auth route: 413 at once, auth never sees it."""
    gateway = system.url("gateway")
    before = system.log("auth").count('"path": "/revoke"')
    response = httpx.post(
        f"{gateway}/auth/revoke",
        content=b"x" * (65536 + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert system.log("auth").count('"path": "/revoke"') == before


def test_a_streamed_body_is_cut_at_the_route_limit(system):
    """A chunked body (no Content-Length) over 1 MiB on POST /sensor-types: 413."""
    gateway = system.url("gateway")

    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = httpx.post(
        f"{gateway}/sensor-types",
        content=chunks(),
        headers={**system.headers(), "Content-Type": "application/json"},
        timeout=20,
    )
    assert response.status_code == 413, response.text
    assert response.json()["limit_bytes"] == 1048576
    # The breaker does not blame the sensor service for the client's body.
    health = httpx.get(f"{gateway}/health").json()
    assert health["circuit_breakers"]["sensor"]["failure_count"] == 0

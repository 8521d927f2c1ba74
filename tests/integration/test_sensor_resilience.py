"""The sensor service when things die: a worker mid-test, the event service, the database.

Real processes: two sensor replicas with one worker each, a 1 s work delay (the test hook
``SENSOR_WORK_DELAY_S``) so a test is reliably caught mid-analysis, and a 2 s lease.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from harness import ADMIN_PASSWORD, Harness, wait_for

pytestmark = pytest.mark.integration
RELAY_PASSWORD = "relay-password-for-tests"  # noqa: S105 - a test fixture's password


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "events", "sensor"},
        offset_start=34000,
        replicas={"sensor": 2},
        env={
            "SERVICE_ACCOUNT_PASSWORD": RELAY_PASSWORD,
            "SENSOR_WORK_DELAY_S": "1",
            "SENSOR_LEASE_S": "2",
            "SENSOR_WORKERS": "1",
            "SENSOR_RELAY_BREAKER_MAX_OPEN_S": "4",
        },
    ).start()
    yield harness
    harness.close()


def post(system, path, *, replica="sensor", **kw) -> httpx.Response:
    return httpx.post(f"{system.url(replica)}{path}", headers=system.headers(), timeout=30, **kw)


def get(system, path, *, replica="sensor") -> httpx.Response:
    return httpx.get(f"{system.url(replica)}{path}", headers=system.headers(), timeout=10)


def health(system, replica="sensor") -> dict:
    return httpx.get(f"{system.url(replica)}/health", timeout=10).json()


def finished(system, test_id: str, *, replica="sensor", timeout: float = 30) -> dict:
    def done():
        doc = get(system, f"/test/{test_id}", replica=replica).json()
        return doc if doc["status"] in {"completed", "failed"} else None

    doc = wait_for(done, timeout, interval=0.1)
    assert doc, get(system, f"/test/{test_id}", replica=replica).json()
    return doc


def completed_events(system, device: str) -> list[dict]:
    response = httpx.get(
        f"{system.url('events')}/logs",
        params={"subject": device, "type": "sensor.test.completed", "limit": 100},
        headers=system.headers(),
        timeout=10,
    )
    return response.json()["items"]


def test_a_killed_workers_test_is_finished_by_the_other_replica(system):
    """SIGKILL the replica holding a claimed test: after its lease the other one completes it."""
    test_id = post(system, "/test/temperature", json={"device_id": "crash-1"}).json()["test_id"]

    def running():
        doc = get(system, f"/test/{test_id}").json()
        return doc if doc["status"] == "running" else None

    doc = wait_for(running, 10, interval=0.05)
    assert doc, "the test was never claimed"
    holder = doc["processed_by"].split("/")[0]
    survivor = "sensor-2" if holder == "sensor" else "sensor"
    system.kill(holder)
    final = finished(system, test_id, replica=survivor)
    assert (final["status"], final["verdict"], final["attempts"]) == ("completed", "pass", 2)
    assert final["processed_by"].startswith(f"{survivor}/")
    assert final["last_error"] == f"lease of {doc['processed_by']} expired"
    system.restart(holder)
    assert wait_for(lambda: completed_events(system, "crash-1"), 20)
    assert len(completed_events(system, "crash-1")) == 1


def test_event_service_down_tests_complete_and_the_outbox_drains_once(system):
    """Events stopped: tests complete and wait in the outbox; restarted, each arrives once."""
    system.kill("events")
    device = f"outage-{uuid.uuid4().hex[:8]}"
    ids = [
        post(system, "/test/humidity", json={"device_id": device}, replica=replica).json()[
            "test_id"
        ]
        for replica in ("sensor", "sensor-2", "sensor", "sensor-2")
    ]
    docs = [finished(system, test_id) for test_id in ids]
    assert {d["status"] for d in docs} == {"completed"}
    assert {d["event"]["status"] for d in docs} == {"pending"}
    assert wait_for(lambda: health(system)["outbox"]["pending"] >= 4, 10)
    assert wait_for(lambda: health(system)["status"] == "degraded", 10)  # a soft dependency
    system.restart("events")
    assert wait_for(lambda: health(system)["outbox"]["pending"] == 0, 30), health(system)
    assert wait_for(lambda: len(completed_events(system, device)) >= 4, 30)
    items = completed_events(system, device)
    assert sorted(i["id"] for i in items) == sorted(d["event"]["id"] for d in docs)
    sent = [get(system, f"/test/{test_id}").json()["event"] for test_id in ids]
    assert {e["status"] for e in sent} == {"sent"}
    assert max(e["attempts"] for e in sent) >= 1


def test_auth_down_tokens_are_checked_locally(system):
    """Auth killed: a valid token is still accepted, checked against the cached JWKS."""
    form = {"username": "admin", "password": ADMIN_PASSWORD}
    token = httpx.post(f"{system.url('auth')}/token", data=form, timeout=10).json()
    system.kill("auth")
    try:
        response = httpx.get(
            f"{system.url('sensor')}/tests",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["x-auth-mode"] == "fallback"
        refused = httpx.get(
            f"{system.url('sensor')}/tests", headers={"Authorization": "Bearer x.y.z"}, timeout=10
        )
        assert refused.status_code == 401
    finally:
        system.restart("auth")


def test_database_down_answers_503_and_everything_recovers(system):
    """PostgreSQL killed: 503 with Retry-After at once; back: submissions and workers resume."""
    existing = post(system, "/test/co2").json()["test_id"]
    finished(system, existing)
    system.kill("postgres")
    for call in (
        lambda: post(system, "/test/co2"),
        lambda: get(system, f"/test/{existing}"),
        lambda: get(system, "/tests"),
    ):
        started = time.monotonic()
        response = call()
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"] == "service_unavailable"
        assert time.monotonic() - started < 5
    assert wait_for(lambda: health(system)["status"] == "unhealthy", 10)
    assert wait_for(lambda: health(system)["workers"]["state"] == "waiting for database", 10)
    system.restart("postgres")
    response = wait_for(
        lambda: (
            (r := post(system, "/test/co2", json={"device_id": "after-db"})).status_code == 202
            and r
        ),
        60,
        interval=0.5,
    )
    assert response, "the sensor service did not recover"
    doc = finished(system, response.json()["test_id"])
    assert (doc["status"], doc["verdict"]) == ("completed", "pass")
    assert wait_for(lambda: health(system)["workers"]["state"] == "running", 10)

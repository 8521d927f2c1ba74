"""One client's bad requests never take a healthy service away from everyone (issue 17).

Real processes throughout. The sensor service runs with fault injection on
(``SENSOR_FAULT_INJECTION``, core/fault_injection.py), so a request carrying
``X-Fault-Abort: 500`` makes the real service answer 500: a request-caused server error,
which must eject at most its replica until the next health probe, never trip the service's
breaker, and never stop a second user's requests (docs/resilience.md).
"""

from __future__ import annotations

import json
import socket
import time
import uuid

import httpx
import pytest
from harness import Harness, wait_for

pytestmark = pytest.mark.integration

PROBE_INTERVAL_S = 1.0  # the gateway's default health-probe interval


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=36000,
        env={"SENSOR_FAULT_INJECTION": "true"},
    )
    yield harness.start()
    harness.close()


def user_headers(gateway: str) -> dict[str, str]:
    name, password = f"user{uuid.uuid4().hex[:8]}", "pass-word-1"
    assert (
        httpx.post(f"{gateway}/register", json={"username": name, "password": password}).status_code
        == 201
    )
    tok = httpx.post(f"{gateway}/token", data={"username": name, "password": password})
    return {"Authorization": f"Bearer {tok.json()['access_token']}"}


def bad_requests(gateway: str, headers: dict[str, str]) -> list[tuple[str, str, dict]]:
    """Ten kinds of bad request: client errors, and request-caused upstream 500s."""
    fault = {**headers, "X-Fault-Abort": "500"}
    return [
        ("GET", f"{gateway}/tests?sensor_type=a%00b", headers),
        ("GET", f"{gateway}/tests", fault),
        ("GET", f"{gateway}/test/{uuid.uuid4()}", headers),
        ("GET", f"{gateway}/tests", fault),
        ("POST", f"{gateway}/test/sensor/no-such-type", headers),
        ("GET", f"{gateway}/tests", fault),
        ("GET", f"{gateway}/test/not-a-uuid", headers),
        ("GET", f"{gateway}/test/{uuid.uuid4()}", fault),
        ("GET", f"{gateway}/events/logs?type=a%00b", headers),
        ("GET", f"{gateway}/tests", {"Authorization": "Bearer not-a-token"}),
    ]


def sensor_view(gateway: str) -> tuple[dict, dict]:
    doc = httpx.get(f"{gateway}/health", timeout=5).json()
    return doc["circuit_breakers"]["sensor"], doc["upstreams"]["sensor"]["replicas"][0]


def test_bad_requests_never_stop_a_second_users_requests(system):
    """50 bad requests (4xx and upstream 500s) in bursts; the other user never sees a 503.

    After the bad requests stop, the replica is readmitted within one probe interval + 2 s.
    """
    gateway = system.url("gateway")
    bad_user, good_user = user_headers(gateway), user_headers(gateway)
    kinds = bad_requests(gateway, bad_user)
    statuses: list[int] = []
    good: list[int] = []
    with httpx.Client(timeout=10) as client:
        for burst in range(10):
            for i in range(5):
                method, url, headers = kinds[(burst * 5 + i) % len(kinds)]
                statuses.append(client.request(method, url, headers=headers).status_code)
            # Three request-caused 500s in a row: enough to eject the only replica.
            statuses += [
                client.get(
                    f"{gateway}/tests", headers={**bad_user, "X-Fault-Abort": "500"}
                ).status_code
                for _ in range(3)
            ]
            good.append(client.get(f"{gateway}/tests", headers=good_user).status_code)
            body = {"device_id": f"good-{burst}", "simulate": {"n": 60, "seed": burst}}
            good.append(
                client.post(
                    f"{gateway}/test/sensor/temperature", json=body, headers=good_user
                ).status_code
            )
        breaker, replica = sensor_view(gateway)
    assert len(statuses) == 80
    assert statuses.count(500) >= 30, statuses  # the upstream 500s really happened
    assert all(400 <= s < 500 or s == 500 for s in statuses), statuses
    assert good == [200, 202] * 10, good
    # The 500s counted against the replica (three in a row eject it: unit-tested in
    # test_replicas.py)...
    assert replica["failures"] >= 30, replica
    assert breaker["state"] == "closed", breaker  # ...but never opened the breaker
    assert breaker["trips"] == 0, breaker
    stopped = time.monotonic()
    assert wait_for(lambda: not sensor_view(gateway)[1]["ejected"], PROBE_INTERVAL_S + 2, 0.1)
    assert time.monotonic() - stopped <= PROBE_INTERVAL_S + 2
    with httpx.Client(timeout=10) as client:
        after = [client.get(f"{gateway}/tests", headers=good_user).status_code for _ in range(20)]
    assert after == [200] * 20


def _post_half_a_body(url: str, path: str, headers: dict[str, str]) -> None:
    """Send headers announcing 100 kB, 10 bytes of body, then vanish."""
    host, port = url.removeprefix("http://").split(":")
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Content-Length: 100000",
        *(f"{k}: {v}" for k, v in headers.items()),
        "",
        "",
    ]
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode() + b'{"device_')
        time.sleep(0.3)


def _request_lines(log: str, path: str) -> list[dict]:
    found = []
    for line in log.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("path") == path or "unhandled" in str(doc.get("event", "")):
            found.append(doc)
    return found


@pytest.mark.parametrize("via", ["sensor", "gateway"])
def test_a_client_leaving_mid_body_is_a_499_not_a_500(system, via):
    """A client that disconnects mid-body is logged as 499, never as an unhandled 500."""
    headers = system.headers()
    _post_half_a_body(system.url(via), f"/test/sensor/temperature?{uuid.uuid4().hex}", headers)

    def logged() -> list[dict]:
        return _request_lines(system.log(via), "/test/sensor/temperature")

    assert wait_for(lambda: any(d.get("status") == 499 for d in logged()), 10), logged()[-5:]
    assert not [d for d in logged() if d.get("status") == 500 or "unhandled" in d["event"]]

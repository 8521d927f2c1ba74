"""Rigs as OAuth clients (issue 14): client credentials, scopes, rotation, revocation.

Real processes (the harness): a rig client is created by an admin, gets a token with the
client credentials grant (HTTP Basic and form body), and its scopes are enforced by the
sensor service, the event service and the gateway (also on ``POST /events`` it spools).
Rotation refuses the old secret at once; revocation refuses the secret and, at ``/verify``,
the client's tokens. With auth killed, a token issued before the revocation keeps working
in fallback mode only until it expires (a short client token TTL here) and no new one can
be had. Bulk provisioning answers per row; ``sensor-auth-admin`` creates a client too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_PASSWORD, Harness, wait_for

pytestmark = pytest.mark.integration

CLIENT_TTL_S = 8
LEEWAY_S = 5  # core.jwt_verify.JwtVerifier's clock-skew leeway


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=38000,
        env={"AUTH_CLIENT_TOKEN_TTL_S": str(CLIENT_TTL_S), "AUTH_CLIENT_CACHE_TTL_S": "1"},
    )
    yield harness.start()
    harness.close()


def create_client(system: Harness, name: str, scopes: list[str]) -> dict:
    response = httpx.post(
        f"{system.url('gateway')}/auth/clients",
        json={"name": name, "scopes": scopes},
        headers=system.headers(),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def token_response(
    system: Harness, client: dict, *, via: str = "gateway", **form
) -> httpx.Response:
    path = "/auth/token" if via == "gateway" else "/token"
    return httpx.post(
        f"{system.url(via)}{path}",
        data={"grant_type": "client_credentials", **form},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )


def client_token(system: Harness, client: dict, **form) -> str:
    response = token_response(system, client, **form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def event() -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "source": "/rigs/rig-7",
        "type": "sensor.test.completed",
        "subject": "device-42",
        "data": {"sensor_type": "humidity", "verdict": "pass"},
    }


def test_a_rig_gets_a_scoped_short_lived_token(system):
    client = create_client(system, "rig-token", ["tests:read", "tests:write"])
    assert set(client) >= {"client_id", "client_secret", "scopes", "created_at"}
    assert len(client["client_secret"]) >= 43  # 256 random bits
    response = token_response(system, client)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"  # noqa: S105 - the OAuth token type
    assert body["expires_in"] == CLIENT_TTL_S
    assert body["scope"] == "tests:read tests:write"
    verified = httpx.get(
        f"{system.url('auth')}/verify", headers=bearer(body["access_token"]), timeout=10
    ).json()
    assert verified["client_id"] == client["client_id"]
    assert verified["sub"] == client["client_id"]
    assert verified["scope"] == "tests:read tests:write"
    assert verified["roles"] == []
    # The credentials in the form body (RFC 6749 §2.3.1 allows it) and a narrower scope.
    narrow = httpx.post(
        f"{system.url('auth')}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": "tests:read",
        },
        timeout=10,
    )
    assert narrow.status_code == 200, narrow.text
    assert narrow.json()["scope"] == "tests:read"


def test_token_endpoint_errors_follow_rfc_6749(system):
    client = create_client(system, "rig-errors", ["tests:read"])
    wrong = token_response(system, {**client, "client_secret": "not-the-secret"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    assert "not-the-secret" not in system.log("auth")
    assert client["client_secret"] not in system.log("auth")
    scope = token_response(system, client, scope="tests:write")
    assert scope.status_code == 400
    assert scope.json()["error"] == "invalid_scope"
    grant = httpx.post(
        f"{system.url('auth')}/token", data={"grant_type": "authorization_code"}, timeout=10
    )
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"
    both = httpx.post(
        f"{system.url('auth')}/token",
        data={"grant_type": "client_credentials", "client_id": client["client_id"]},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert both.status_code == 400
    assert both.json()["error"] == "invalid_request"


def test_scopes_are_enforced_by_the_services_and_the_gateway(system):
    reader = client_token(system, create_client(system, "rig-reader", ["tests:read"]))
    writer = client_token(
        system, create_client(system, "rig-writer", ["tests:write", "tests:read", "events:write"])
    )
    gateway, sensor, events = system.url("gateway"), system.url("sensor"), system.url("events")
    # A tests:read client cannot start a test: 403 naming the scope, at the service...
    refused = httpx.post(f"{sensor}/test/temperature", headers=bearer(reader), timeout=10)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "insufficient_scope"
    assert refused.json()["required_scope"] == "tests:write"
    assert "tests:write" in refused.json()["message"]
    # ... and through the gateway; but it may read.
    refused = httpx.post(f"{gateway}/test/sensor/temperature", headers=bearer(reader), timeout=10)
    assert refused.status_code == 403
    for path in ("/tests", "/sensor-types", "/sensor-types/temperature"):
        ok = httpx.get(f"{gateway}{path}", headers=bearer(reader), timeout=10)
        assert ok.status_code == 200, (path, ok.text)
    started = httpx.post(f"{gateway}/test/sensor/temperature", headers=bearer(writer), timeout=30)
    assert started.status_code == 202, started.text
    test_id = started.json()["test_id"]
    assert httpx.get(f"{gateway}/test/{test_id}", headers=bearer(reader), timeout=10).is_success
    # Events: events:write to send, events:read to read the statistics and the log.
    assert (
        httpx.post(
            f"{events}/send-event", json=event(), headers=bearer(reader), timeout=10
        ).status_code
        == 403
    )
    refused = httpx.post(f"{gateway}/events", json=event(), headers=bearer(reader), timeout=10)
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == "events:write"
    sent = httpx.post(f"{gateway}/events", json=event(), headers=bearer(writer), timeout=10)
    assert sent.status_code in {201, 202}, sent.text
    assert (
        httpx.get(f"{gateway}/events/stats", headers=bearer(writer), timeout=10).status_code == 403
    )
    # Admin routes stay admin-only; people's tokens keep their rights (no scope claim).
    spec = httpx.post(f"{gateway}/sensor-types", json={}, headers=bearer(writer), timeout=10)
    assert spec.status_code in {403, 422}
    listing = httpx.get(f"{gateway}/auth/clients", headers=bearer(writer), timeout=10)
    assert listing.status_code == 403
    assert httpx.get(f"{gateway}/events/stats", headers=system.headers(), timeout=10).is_success


def test_the_gateway_checks_events_write_when_it_spools(system):
    reader = client_token(system, create_client(system, "rig-spool-reader", ["tests:read"]))
    writer = client_token(system, create_client(system, "rig-spool-writer", ["events:write"]))
    gateway = system.url("gateway")
    system.kill("events")
    try:
        refused = httpx.post(f"{gateway}/events", json=event(), headers=bearer(reader), timeout=10)
        assert refused.status_code == 403
        assert refused.json()["required_scope"] == "events:write"
        queued = httpx.post(f"{gateway}/events", json=event(), headers=bearer(writer), timeout=10)
        assert queued.status_code == 202, queued.text
    finally:
        system.restart("events")


def test_rotation_refuses_the_old_secret(system):
    client = create_client(system, "rig-rotate", ["tests:read"])
    old_token = client_token(system, client)
    rotated = httpx.post(
        f"{system.url('gateway')}/auth/clients/{client['client_id']}/rotate",
        headers=system.headers(),
        timeout=10,
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["client_secret"] != client["client_secret"]
    assert token_response(system, client).status_code == 401
    assert token_response(system, new).status_code == 200
    # Tokens issued before the rotation live until they expire (they are short-lived).
    ok = httpx.get(f"{system.url('gateway')}/tests", headers=bearer(old_token), timeout=10)
    assert ok.status_code == 200


def test_revocation_refuses_the_secret_and_the_tokens(system):
    client = create_client(system, "rig-revoke", ["tests:read"])
    token = client_token(system, client)
    gateway = system.url("gateway")
    assert httpx.get(f"{gateway}/tests", headers=bearer(token), timeout=10).status_code == 200
    revoked = httpx.post(
        f"{gateway}/auth/clients/{client['client_id']}/revoke", headers=system.headers(), timeout=10
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["active"] is False
    assert token_response(system, client).status_code == 401
    # /verify refuses at once; the gateway's 5 s answer cache may lag by that much.
    verify = httpx.get(f"{system.url('auth')}/verify", headers=bearer(token), timeout=10)
    assert verify.status_code == 401
    assert wait_for(
        lambda: httpx.get(f"{gateway}/tests", headers=bearer(token), timeout=10).status_code == 401,
        timeout=15,
    )
    listed = httpx.get(f"{gateway}/auth/clients", headers=system.headers(), timeout=10).json()
    mine = next(c for c in listed["clients"] if c["client_id"] == client["client_id"])
    assert mine["active"] is False
    assert "client_secret" not in mine


def test_bulk_provisioning_answers_per_row(system):
    gateway = system.url("gateway")
    doc = {
        "clients": [
            {"name": "bulk-rig-1", "scopes": ["tests:write", "tests:read"]},
            {"name": "bulk-rig-2", "scopes": ["events:write"]},
            {"name": "bulk-rig-1", "scopes": ["tests:read"]},
        ]
    }
    response = httpx.post(
        f"{gateway}/auth/clients/bulk", json=doc, headers=system.headers(), timeout=20
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["failed"]) == (2, 1)
    first, second, third = body["results"]
    assert first["status"] == second["status"] == "created"
    assert first["client_secret"]
    assert second["client_id"]
    assert (third["row"], third["status"], third["error"]) == (3, "error", "client_name_taken")
    assert client_token(system, first)
    csv_body = (
        "name,scopes\n"
        "csv-rig-1,tests:write tests:read\n"
        "bad name!,tests:read\n"
        "csv-rig-2,tests:fly\n"
        "csv-rig-3,events:write;events:read\n"
    )
    response = httpx.post(
        f"{gateway}/auth/clients/bulk",
        content=csv_body,
        headers={**system.headers(), "Content-Type": "text/csv"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [r["status"] for r in rows] == ["created", "error", "error", "created"]
    assert rows[1]["row"] == 2
    assert "name" in rows[1]["message"]
    assert "tests:fly" in rows[2]["message"]
    assert rows[3]["scopes"] == ["events:write", "events:read"]
    # A malformed JSON item: 422 naming it; a person without admin: 403.
    bad = httpx.post(
        f"{gateway}/auth/clients/bulk",
        json={"clients": [{"name": "ok-rig", "scopes": ["tests:read"]}, {"name": "x"}]},
        headers=system.headers(),
        timeout=10,
    )
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"].startswith("clients.1")


def test_the_admin_cli_creates_a_client(system):
    cli = shutil.which("sensor-auth-admin", path=str(Path(sys.executable).parent))
    assert cli is not None
    env = {
        **os.environ,
        **system.supervisor.managed["auth"].component.env,
    }

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [cli, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return result

    created = admin(
        "create-client", "--name", "rig-cli", "--scopes", "tests:write,tests:read", "--json"
    )
    client = json.loads(created.stdout)
    assert client["scopes"] == ["tests:write", "tests:read"]
    assert client_token(system, client)
    listed = admin("list-clients")
    assert "rig-cli" in listed.stdout
    assert client["client_secret"] not in listed.stdout
    admin("revoke-client", client["client_id"])
    assert token_response(system, client).status_code == 401


def test_the_launcher_client_verbs_talk_to_the_running_system(system, tmp_path):
    """``sensor-backend client ...``: the gateway, the admin password from the data dir."""
    cli = shutil.which("sensor-backend", path=str(Path(sys.executable).parent))
    assert cli is not None
    system.supervisor.set_phase("ready")  # what `sensor-backend up` records once ready
    env = {**os.environ, "ADMIN_PASSWORD": ADMIN_PASSWORD}

    def verb(*args: str) -> dict:
        result = subprocess.run(
            [cli, "client", *args, "--data-dir", str(system.data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    client = verb("create", "--name", "rig-launcher", "--scopes", "tests:read")
    assert client_token(system, client)
    assert any(c["name"] == "rig-launcher" for c in verb("list")["clients"])
    rotated = verb("rotate", client["client_id"])
    assert token_response(system, client).status_code == 401
    assert client_token(system, rotated)
    csv_file = tmp_path / "rigs.csv"
    csv_file.write_text("name,scopes\nrig-launcher-2,tests:write\nbad name,tests:read\n")
    bulk = verb("bulk", str(csv_file))
    assert [r["status"] for r in bulk["results"]] == ["created", "error"]
    assert verb("revoke", client["client_id"])["active"] is False


def test_revocation_in_fallback_lasts_until_the_token_expires(system):
    """Last: it kills auth. A token issued before revocation lives only until its exp."""
    client = create_client(system, "rig-fallback", ["tests:read"])
    token = client_token(system, client)
    issued = time.time()
    gateway = system.url("gateway")
    # Not used before auth dies: an answer cached from auth (up to 5 s) is no fallback.
    revoked = httpx.post(
        f"{system.url('auth')}/clients/{client['client_id']}/revoke",
        headers=system.headers(),
        timeout=10,
    )
    assert revoked.status_code == 200
    system.kill("auth")
    try:
        # Auth is gone: the gateway and the sensor service check the signature locally,
        # and cannot see the revocation: the token works until it expires...
        response = httpx.get(f"{gateway}/tests", headers=bearer(token), timeout=10)
        if time.time() < issued + CLIENT_TTL_S:
            assert response.status_code == 200, response.text
            assert response.headers.get("x-auth-mode") == "fallback"

        # ... and not after (exp plus the verifier's leeway for clock skew).
        def refused() -> bool:
            r = httpx.get(f"{gateway}/tests", headers=bearer(token), timeout=10)
            return r.status_code == 401

        assert wait_for(refused, timeout=CLIENT_TTL_S + LEEWAY_S + 10, interval=0.5)
        assert time.time() >= issued + CLIENT_TTL_S
        # No new token while auth is down.
        again = token_response(system, client)
        assert again.status_code == 503
    finally:
        system.restart("auth")

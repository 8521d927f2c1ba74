"""Auth as a real process while its real PostgreSQL is killed and restarted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from harness import wait_for

from sensor_backend.launcher import embedded_postgres as epg

pytestmark = pytest.mark.integration
PASSWORD = "resilient password"  # noqa: S105 - a test fixture's password


@pytest.fixture
def postgres():
    # Not under pytest's tmp dir: the server runs as its own user and must reach its data.
    root = Path(tempfile.mkdtemp(prefix="auth-resilience-"))
    layout = epg.PostgresLayout(root / "pg", epg.find_free_port())
    state = {"proc": epg.start(layout, root / "postgres.log")}
    epg.wait_ready_blocking(layout.dsn, 30)

    def restart() -> None:
        state["proc"] = epg.start(layout, root / "postgres.log")
        epg.wait_ready_blocking(layout.dsn, 30)

    yield layout, state, restart
    epg.stop(state["proc"])
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def auth(postgres, tmp_path):
    layout, _, _ = postgres
    port = epg.find_free_port()
    env = {
        **os.environ,
        "DATABASE_URL": layout.dsn,
        "AUTH_PORT": str(port),
        "ADMIN_PASSWORD": "admin-password-for-tests",
        "AUTH_ARGON2_MEMORY_KIB": "8192",
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_PARALLELISM": "1",
        # Long enough that recovery within 15 s proves the active check ended the wait.
        "AUTH_DB_BREAKER_OPEN_S": "30",
    }
    log = (tmp_path / "auth.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensor_backend.auth.main"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).json().get("signing_keys_loaded") is True
        except httpx.HTTPError:
            return False

    assert wait_for(ready, 30), (tmp_path / "auth.log").read_text()[-3000:]
    yield url, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    log.close()


def test_auth_survives_a_postgres_crash_and_recovers_by_itself(postgres, auth):
    """A PostgreSQL crash costs auth only its writes, and it heals without a restart.

    /token answers 503 fast once the breaker opens, /verify still works from memory, the
    process stays up, and /token works again after PostgreSQL returns.
    """
    _, state, restart = postgres
    url, proc = auth
    assert (
        httpx.post(f"{url}/register", json={"username": "erin", "password": PASSWORD}).status_code
        == 201
    )
    token = httpx.post(f"{url}/token", data={"username": "erin", "password": PASSWORD}).json()[
        "access_token"
    ]

    state["proc"].send_signal(signal.SIGKILL)
    epg.kill_leftovers(state["proc"])

    def token_status() -> int:
        return httpx.post(
            f"{url}/token", data={"username": "erin", "password": PASSWORD}, timeout=10
        ).status_code

    def breaker_open() -> bool:
        token_status()  # each call is a database failure the breaker counts; 3 open it
        return httpx.get(f"{url}/health").json()["circuit_breakers"]["database"]["open"]

    assert wait_for(breaker_open, 30)
    started = time.perf_counter()
    response = httpx.post(f"{url}/token", data={"username": "erin", "password": PASSWORD})
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert elapsed < 0.1, f"503 took {elapsed * 1000:.0f} ms with the breaker open"
    assert (
        httpx.post(f"{url}/register", json={"username": "frank", "password": PASSWORD}).status_code
        == 503
    )

    good = httpx.get(f"{url}/verify", headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 200
    assert good.json()["revocation_may_be_stale"] is True
    bad = httpx.get(f"{url}/verify", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
    assert bad.status_code == 401
    health = httpx.get(f"{url}/health").json()
    assert health["checks"]["database"]["status"] == "down"
    assert health["status"] == "unhealthy"
    assert proc.poll() is None

    restart()
    # The breaker is open for 30 s; the health probe sees PostgreSQL answer again and ends
    # the wait, so /token recovers well before that.
    assert wait_for(lambda: token_status() == 200, 15, interval=0.5)
    assert proc.poll() is None
    assert wait_for(
        lambda: httpx.get(f"{url}/health").json()["checks"]["database"]["status"] == "up", 10
    )

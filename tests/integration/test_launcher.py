"""The whole system through the launcher: embedded PostgreSQL and broker, four services.

Starts real processes with ``sensor-backend up --detach`` on offset ports in a temporary data
directory, checks every /health, and stops everything with ``sensor-backend down``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from harness import free_offset, wait_for

from sensor_backend.launcher.state import pid_alive, read_state

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PORTS = {"gateway": 8000, "auth": 8001, "sensor": 8002, "events": 8003}


@dataclass
class System:
    data_dir: Path
    offset: int

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{SERVICE_PORTS[service] + self.offset}"

    @property
    def postgres_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{5434 + self.offset}/postgres"

    @property
    def broker(self) -> str:
        return f"127.0.0.1:{9092 + self.offset}"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "KAFKA_"))}
    env["COLUMNS"] = "200"
    return env


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensor_backend.launcher.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
    )


def up(system: System, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "up",
        "--detach",
        "--data-dir",
        str(system.data_dir),
        "--port-offset",
        str(system.offset),
        *extra,
    )


def down(system: System) -> subprocess.CompletedProcess[str]:
    return cli("down", "--data-dir", str(system.data_dir))


def component_pids(data_dir: Path) -> list[int]:
    state = read_state(data_dir)
    assert state is not None
    return [state.supervisor_pid, *(c.pid for c in state.components if c.pid)]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory):
    sys_ = System(tmp_path_factory.mktemp("system"), free_offset(20000))
    result = up(sys_, "--replicas", "sensor=2")
    assert result.returncode == 0, result.stdout + result.stderr
    yield sys_
    down(sys_)


def health(url: str) -> dict:
    response = httpx.get(f"{url}/health", timeout=5)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("service", ["auth", "sensor", "events"])
def test_service_health_reports_database_up(system: System, service: str):
    """Every service that owns a schema reports its PostgreSQL connection healthy."""
    doc = health(system.url(service))
    assert doc["service"] == service
    assert doc["checks"]["database"]["status"] == "up"
    assert doc["checks"]["database"]["schema"] == service
    assert doc["circuit_breakers"]["database"]["state"] == "closed"


def test_event_service_reports_broker_up(system: System):
    """The event service is connected to the embedded broker and its topic exists."""
    doc = health(system.url("events"))
    broker = doc["checks"]["broker"]
    assert broker["status"] == "up"
    assert broker["topic"] == "sensor-events"
    assert broker["bootstrap"] == system.broker


def test_every_service_is_healthy(system: System):
    """With every dependency up, each service settles to status healthy."""
    for service in ("auth", "sensor", "events"):
        assert wait_for(lambda s=service: health(system.url(s))["status"] == "healthy"), service


def test_gateway_health_has_the_design_shape(system: System):
    """The gateway's aggregated document has the shape of DESIGN.md §6, all healthy."""
    doc = wait_for(
        lambda: (d := health(system.url("gateway")))["overall_status"] == "healthy" and d
    )
    assert doc, health(system.url("gateway"))
    assert doc["gateway"] == "healthy"
    assert set(doc["services"]) == {"auth", "sensor", "kafka"}
    assert all(s["status"] == "healthy" for s in doc["services"].values())
    assert doc["services"]["sensor"]["replicas_up"] == 2
    for name in ("auth", "sensor", "kafka"):
        assert doc["circuit_breakers"][name]["open"] is False
        assert doc["circuit_breakers"][name]["failures"] == 0


def test_replicas_run_on_consecutive_ports(system: System):
    """--replicas sensor=2 runs a second sensor process on its replica port."""
    doc = health(f"http://127.0.0.1:{8021 + system.offset}")
    assert doc["service"] == "sensor"
    assert doc["instance"] == "sensor-2"


def test_status_shows_every_component_healthy(system: System):
    """`sensor-backend status --json` lists all seven processes, healthy, exit code 0."""
    result = wait_for(
        lambda: (
            (r := cli("status", "--json", "--data-dir", str(system.data_dir))).returncode == 0 and r
        )
    )
    assert result, cli("status", "--json", "--data-dir", str(system.data_dir)).stdout
    doc = json.loads(result.stdout)
    names = {c["name"]: c for c in doc["components"]}
    assert set(names) == {"postgres", "broker", "auth", "sensor", "sensor-2", "events", "gateway"}
    assert all(c["health"] == "healthy" and pid_alive(c["pid"]) for c in names.values())


def test_metrics_expose_breakers_and_requests(system: System):
    """Each service's /metrics is Prometheus text with breaker and request metrics."""
    for service in ("auth", "sensor", "events", "gateway"):
        response = httpx.get(f"{system.url(service)}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "circuit_breaker_state{" in response.text
        assert "http_requests_total{" in response.text


def test_request_id_and_traceparent_are_propagated(system: System):
    """A valid X-Request-ID is echoed and a traceparent keeps the caller's trace id."""
    trace = "0af7651916cd43dd8448eb211c80319c"
    response = httpx.get(
        f"{system.url('auth')}/health",
        headers={"X-Request-ID": "req-123", "traceparent": f"00-{trace}-b7ad6b7169203331-01"},
    )
    assert response.headers["x-request-id"] == "req-123"
    assert response.headers["traceparent"].split("-")[1] == trace


def test_second_up_on_the_same_data_dir_is_refused(system: System):
    """Two supervisors never share a data directory."""
    result = up(system)
    assert result.returncode != 0
    assert "already running" in (result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("directory", "service", "port_env"),
    [
        ("auth-service", "auth", "AUTH_PORT"),
        ("sensor-service", "sensor", "SENSOR_PORT"),
        ("kafka-service", "events", "EVENTS_PORT"),
        ("api-gateway", "gateway", "GATEWAY_PORT"),
    ],
)
def test_service_main_starts_alone(system: System, directory: str, service: str, port_env: str):
    """`cd services/<name> && python main.py` starts that service alone on its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prefix = port_env.removesuffix("PORT")
    env = clean_env() | {
        port_env: str(port),
        "DATABASE_URL": system.postgres_dsn,
        "KAFKA_BOOTSTRAP_SERVERS": system.broker,
        f"{prefix}SPOOL_DIR": str(system.data_dir / "spool" / f"alone-{service}"),
    }
    log_path = system.data_dir / "logs" / f"alone-{service}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "main.py"],
            cwd=ROOT / "services" / directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def answered() -> dict | None:
            try:
                return health(url)
            except httpx.HTTPError:
                return None

        doc = wait_for(answered, timeout=30)
        assert doc, log_path.read_text()[-2000:]
        if service == "gateway":
            assert doc["gateway"] == "healthy"
        else:
            assert doc["service"] == service
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM after its graceful shutdown, hence -SIGTERM.
        assert proc.wait(timeout=15) == -signal.SIGTERM
    log = log_path.read_text()
    assert "Application shutdown complete" in log, log[-2000:]


def test_down_stops_everything_and_up_keeps_data(system: System):
    """`down` leaves no process behind; a second `up` finds the data written before."""

    async def write() -> None:
        conn = await asyncpg.connect(system.postgres_dsn)
        await conn.execute("CREATE TABLE IF NOT EXISTS public.keepme (v text)")
        await conn.execute("INSERT INTO public.keepme VALUES ('still here')")
        await conn.close()

    async def read() -> list[str]:
        conn = await asyncpg.connect(system.postgres_dsn)
        rows = await conn.fetch("SELECT v FROM public.keepme")
        await conn.close()
        return [r["v"] for r in rows]

    asyncio.run(write())
    pids = component_pids(system.data_dir)
    result = down(system)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [pid for pid in pids if pid_alive(pid)]
    result = up(system)
    assert result.returncode == 0, result.stdout + result.stderr
    assert asyncio.run(read()) == ["still here"]


def test_port_in_use_fails_naming_the_component(tmp_path: Path):
    """A taken port stops `up` before anything starts, naming the component and its log."""
    sys_ = System(tmp_path, free_offset(24000))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 8001 + sys_.offset))
        blocker.listen()
        result = up(sys_)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "auth" in output
    assert f"port {8001 + sys_.offset} is already in use" in output
    assert "auth.log" in output
    state = read_state(tmp_path)
    assert state is not None
    assert not [c.pid for c in state.components if pid_alive(c.pid)]

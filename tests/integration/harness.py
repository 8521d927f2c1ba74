"""A real system for resilience tests, driven through the launcher's own supervisor.

`Harness` starts a chosen subset of components (real PostgreSQL, real broker, real service
processes) on a free port block and lets a test kill, freeze, restart them one at a time.
It uses the supervisor's event loop on the main thread (PDEATHSIG is per thread), so
nothing it starts outlives the test run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from sensor_backend.launcher import layout
from sensor_backend.launcher.supervisor import Supervisor, port_in_use

ADMIN_PASSWORD = "harness-admin-password"  # noqa: S105 - a test fixture's password
SERVICE_PASSWORD = "harness-service-password"  # noqa: S105
PORTS = (5434, 9092, 8000, 8001, 8002, 8003, 8021, 8022)
CHEAP_ARGON2 = {
    "AUTH_ARGON2_MEMORY_KIB": "8192",
    "AUTH_ARGON2_TIME_COST": "1",
    "AUTH_ARGON2_PARALLELISM": "1",
}


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux default 32768)."""
    try:
        low, _ = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low)
    except (OSError, ValueError):
        return 32768


def free_offset(start: int) -> int:
    """A port offset where every port a system would use is free, below the ephemeral range.

    A port in the kernel's ephemeral range can be taken at any moment as the local port of
    some outgoing connection, between our check here and the service's bind (a CI run once
    lost the console tests to that). So every block lies below it: ``start`` only picks
    where the search begins, and the search wraps around inside the safe range.
    """
    lowest, highest = 1000, _ephemeral_low() - max(PORTS) - 1
    slots = (highest - lowest) // 100
    first = (start // 100) % slots
    for step in range(slots):
        offset = lowest + ((first + step) % slots) * 100
        if not any(port_in_use(p + offset) for p in PORTS):
            return offset
    raise RuntimeError("no free port block below the ephemeral port range")


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it is truthy or ``timeout`` s pass; its last value.

    The tests' one way to wait for a condition (never a bare sleep): callers assert on the
    value, so a timeout fails there, naming the condition that was not met.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


async def eventually(predicate: Any, within_s: float = 10.0, interval: float = 0.02) -> Any:
    """:func:`wait_for` for async tests (``predicate`` may be async), not blocking the loop."""
    deadline = time.monotonic() + within_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


def logged_event_ids(gateway: str, headers: dict[str, str], event_type: str) -> list[str]:
    """Every id in the event service's processing log for one type (all pages)."""
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"type": event_type, "limit": 500}
        if cursor:
            params["before"] = cursor
        page = httpx.get(
            f"{gateway}/events/logs", params=params, headers=headers, timeout=10
        ).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next"]
        if not cursor:
            return ids


class Harness:
    def __init__(
        self,
        names: set[str],
        *,
        offset_start: int = 30000,
        replicas: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        # Not under pytest's tmp dir: PostgreSQL runs as its own user and must reach it.
        self.data_dir = Path(tempfile.mkdtemp(prefix="harness-"))
        self.offset = free_offset(offset_start)
        options = layout.LaunchOptions(
            data_dir=self.data_dir,
            port_offset=self.offset,
            replicas=replicas or {},
            admin_password=ADMIN_PASSWORD,
            service_account_password=SERVICE_PASSWORD,
        )
        extra = {**CHEAP_ARGON2, **(env or {})}
        self.components = [
            dataclasses.replace(c, env={**c.env, **extra})
            for c in layout.plan(options)
            if c.name in names or c.service in names
        ]
        self.loop = asyncio.new_event_loop()
        self.supervisor = Supervisor(self.components, data_dir=self.data_dir)
        self._token: str | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Harness:
        self.loop.run_until_complete(self.supervisor.start_all(timeout_s=60))
        self.settle()
        return self

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until every service reports itself healthy (as `sensor-backend up` does)."""
        for comp in self.components:
            if comp.kind is not layout.Kind.SERVICE or comp.service == "gateway":
                continue

            def healthy(url: str = comp.url) -> bool:
                try:
                    doc = httpx.get(f"{url}/health", timeout=2).json()
                except (httpx.HTTPError, ValueError):
                    return False
                # Dependencies left out of this harness are expected to be down.
                down = [n for n, c in doc.get("checks", {}).items() if c["status"] != "up"]
                return all(n.split("[")[0] not in self.names_present() for n in down)

            wait_for(healthy, timeout_s, interval=0.2)

    def names_present(self) -> set[str]:
        present = {c.name for c in self.components} | {c.service or "" for c in self.components}
        if "postgres" in present:
            present.add("database")
        return present

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.supervisor.stop_all())
        finally:
            self.loop.close()
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self, name: str) -> None:
        """SIGKILL one component and reap it (a crash, not a shutdown)."""
        managed = self.supervisor.managed[name]
        self.supervisor.signal(name, signal.SIGKILL)
        if managed.process is not None:
            managed.process.wait(timeout=10)
        if managed.component.kind is layout.Kind.POSTGRES and managed.process is not None:
            from sensor_backend.launcher.embedded_postgres import kill_leftovers  # noqa: PLC0415

            kill_leftovers(managed.process)
        self.supervisor.reap()

    def freeze(self, name: str) -> None:
        self.supervisor.signal(name, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.supervisor.signal(name, signal.SIGCONT)

    def restart(self, name: str) -> None:
        self.loop.run_until_complete(self.supervisor.start(name, timeout_s=60))

    def revive(self, name: str, timeout_s: float = 60.0) -> None:
        """:meth:`restart` for a caller inside another running event loop.

        Playwright's sync API keeps its own loop running on this thread, so the harness's
        loop cannot run there. The process is spawned on this thread as :meth:`restart`
        does (PDEATHSIG), and readiness is polled without a loop: the port for PostgreSQL
        and the broker, ``/health`` answering for a service. Call :meth:`settle` after
        reviving infrastructure: it waits until the services see it again.
        """
        self.supervisor.spawn(name)
        managed = self.supervisor.managed[name]
        comp = managed.component

        def ready() -> bool:
            if managed.process is not None and managed.process.poll() is not None:
                raise RuntimeError(f"{name} exited while starting:\n{self.log(name)[-3000:]}")
            if comp.kind is not layout.Kind.SERVICE:
                return port_in_use(comp.port)
            try:
                httpx.get(f"{comp.url}/health", timeout=2)
            except httpx.HTTPError:
                return False
            return True

        if not wait_for(ready, timeout_s, interval=0.1):
            raise RuntimeError(f"{name} not ready after {timeout_s:g} s:\n{self.log(name)[-3000:]}")
        managed.state.state = "running"
        if comp.service == "auth":
            self._token = None  # minted by the auth that was killed

    def alive(self, name: str) -> bool:
        proc = self.supervisor.managed[name].process
        return proc is not None and proc.poll() is None

    # -- addresses and clients ---------------------------------------------------------
    def url(self, name: str) -> str:
        return self.supervisor.managed[name].component.url

    def log(self, name: str) -> str:
        return (self.data_dir / "logs" / f"{name}.log").read_text(errors="replace")

    def admin_token(self) -> str:
        if self._token is None:
            response = httpx.post(
                f"{self.url('auth')}/token",
                data={"username": "admin", "password": ADMIN_PASSWORD},
                timeout=10,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token()}"}

    @staticmethod
    def environ_without_infra() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_"))}

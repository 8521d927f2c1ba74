"""A small asyncio process supervisor for ``sensor-backend up``.

Why our own (DESIGN.md §9): honcho does not restart or control single processes and circus
breaks on tornado upgrades, while the drills need to kill, freeze and restart one component
at a time. Every component is a child of this process, in its own session (so a Ctrl-C in
the terminal reaches only the supervisor, which then stops them in order), and has
``PR_SET_PDEATHSIG`` set: if the supervisor itself is killed, the kernel signals the children,
so no orphan outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import aiohttp

from sensor_backend.launcher import embedded_postgres, observability
from sensor_backend.launcher.embedded_broker import broker_command
from sensor_backend.launcher.layout import HOST, Component, Kind
from sensor_backend.launcher.probes import (
    postgres_ready,
    prometheus_ready,
    service_health,
    tcp_open,
)
from sensor_backend.launcher.state import ComponentState, SystemState, write_state

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 15.0
# PostgreSQL: SIGINT is "fast shutdown" (SIGTERM waits for every client to leave).
STOP_SIGNALS = {
    Kind.POSTGRES: signal.SIGINT,
    Kind.BROKER: signal.SIGTERM,
    Kind.PROMETHEUS: signal.SIGTERM,
    Kind.SERVICE: signal.SIGTERM,
}


class StartupError(RuntimeError):
    """A component did not start; the message names it and its log file."""

    def __init__(self, component: str, message: str, log: Path) -> None:
        super().__init__(f"{component}: {message} (log: {log})")
        self.component = component
        self.log = log


def _pdeathsig(sig: int) -> Callable[[], None]:
    def set_pdeathsig() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)

    return set_pdeathsig


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if something listens on host:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Managed:
    component: Component
    state: ComponentState
    process: subprocess.Popen[bytes] | None = None
    log_handle: IO[bytes] | None = None


class Supervisor:
    def __init__(
        self,
        components: list[Component],
        *,
        data_dir: Path,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.logs_dir = data_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.on_change = on_change
        self.managed: dict[str, Managed] = {}
        for comp in components:
            log = self.logs_dir / f"{comp.name}.log"
            self.managed[comp.name] = Managed(
                comp,
                ComponentState(
                    comp.name, comp.kind.value, comp.url, comp.port, str(log), service=comp.service
                ),
            )
        self.state = SystemState(
            supervisor_pid=os.getpid(),
            data_dir=str(data_dir),
            components=[m.state for m in self.managed.values()],
        )
        self._session: aiohttp.ClientSession | None = None

    # -- state -------------------------------------------------------------------------
    def changed(self) -> None:
        write_state(self.data_dir, self.state)
        if self.on_change is not None:
            self.on_change()

    def set_phase(self, phase: str, error: str | None = None) -> None:
        self.state.phase = phase
        self.state.error = error
        self.changed()

    # -- starting ----------------------------------------------------------------------
    def _argv(self, comp: Component) -> tuple[list[str], str | None]:
        if comp.kind is Kind.POSTGRES:
            layout = embedded_postgres.PostgresLayout(self.data_dir / "postgres", comp.port)
            embedded_postgres.prepare(layout)
            return embedded_postgres.server_command(layout), embedded_postgres.run_as_user()
        if comp.kind is Kind.BROKER:
            return broker_command(comp.port), None
        if comp.kind is Kind.PROMETHEUS:
            binary = observability.prometheus_binary()
            if binary is None:
                raise RuntimeError(observability.missing_message())
            components = [m.component for m in self.managed.values()]
            config = observability.write_config(self.data_dir, components)
            return observability.server_command(binary, config, comp.port, HOST), None
        return list(comp.argv), None

    def spawn(self, name: str) -> None:
        """Start one component's process (must run on the main thread: PDEATHSIG is per thread)."""
        m = self.managed[name]
        comp = m.component
        log_path = self.logs_dir / f"{comp.name}.log"
        if port_in_use(comp.port):
            raise self._port_taken(comp)
        try:
            argv, user = self._argv(comp)
        except Exception as exc:
            raise StartupError(comp.name, f"could not prepare: {exc}", log_path) from exc
        if m.log_handle is None:
            m.log_handle = log_path.open("ab")
        stop_sig = STOP_SIGNALS[comp.kind]
        env = {**os.environ, **comp.env}
        m.process = subprocess.Popen(  # noqa: S603 - argv built from our own layout
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=m.log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            preexec_fn=_pdeathsig(stop_sig),  # noqa: PLW1509 - only prctl, async-signal-safe
            cwd=self.data_dir,
        )
        m.state.pid = m.process.pid
        m.state.state = "starting"
        m.state.exit_code = None
        m.state.started_at = time.time()
        self.changed()

    async def wait_ready(self, name: str, timeout_s: float) -> None:
        m = self.managed[name]
        comp = m.component
        deadline = time.monotonic() + timeout_s
        while True:
            if m.process is not None and m.process.poll() is not None:
                m.state.state = "failed"
                m.state.exit_code = m.process.returncode
                self.changed()
                log = self.logs_dir / f"{comp.name}.log"
                raise StartupError(
                    comp.name,
                    f"exited with code {m.process.returncode} while starting:\n{tail(log)}",
                    log,
                )
            if await self._ready(comp):
                m.state.state = "running"
                self.changed()
                return
            if time.monotonic() > deadline:
                m.state.state = "failed"
                self.changed()
                log = self.logs_dir / f"{comp.name}.log"
                raise StartupError(comp.name, f"not ready after {timeout_s:g} s", log)
            await asyncio.sleep(0.1)

    async def _ready(self, comp: Component) -> bool:
        if comp.kind is Kind.POSTGRES:
            return await postgres_ready(comp.url)
        if comp.kind is Kind.BROKER:
            return await tcp_open(comp.port)
        if comp.kind is Kind.PROMETHEUS:
            return await prometheus_ready(self.session, comp.url)
        return await service_health(self.session, comp.url) is not None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def preflight(self) -> None:
        """Fail before starting anything if a port is taken, naming the component."""
        for m in self.managed.values():
            if port_in_use(m.component.port):
                raise self._port_taken(m.component)

    def _port_taken(self, comp: Component) -> StartupError:
        return StartupError(
            comp.name,
            f"port {comp.port} is already in use; stop what listens there "
            "or start with --port-offset",
            self.logs_dir / f"{comp.name}.log",
        )

    async def start_all(self, timeout_s: float = 60.0) -> None:
        """Infrastructure first (in parallel), then every service at once, the gateway last."""
        self.preflight()
        infra = [n for n, m in self.managed.items() if m.component.kind is not Kind.SERVICE]
        services = [n for n, m in self.managed.items() if m.component.kind is Kind.SERVICE]
        for name in infra:
            self.spawn(name)
        await asyncio.gather(*(self.wait_ready(n, timeout_s) for n in infra))
        for name in services:
            self.spawn(name)
        await asyncio.gather(*(self.wait_ready(n, timeout_s) for n in services))

    async def start(self, name: str, timeout_s: float = 60.0) -> None:
        self.spawn(name)
        await self.wait_ready(name, timeout_s)

    # -- watching ----------------------------------------------------------------------
    def reap(self) -> list[str]:
        """Record components that exited; returns the names that just did."""
        exited = []
        for name, m in self.managed.items():
            if m.process is None or m.state.state in {"exited", "stopped", "failed"}:
                continue
            code = m.process.poll()
            if code is not None:
                m.state.state = "exited"
                m.state.exit_code = code
                exited.append(name)
        if exited:
            self.changed()
        return exited

    def after_kill(self, name: str) -> None:
        """Clean up after a SIGKILL: a killed postmaster leaves backends holding its memory."""
        m = self.managed[name]
        if m.component.kind is Kind.POSTGRES and m.process is not None:
            embedded_postgres.kill_leftovers(m.process)

    # -- signals -----------------------------------------------------------------------
    def signal(self, name: str, sig: signal.Signals) -> None:
        m = self.managed[name]
        if m.process is None or m.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(m.process.pid, sig)
        if sig is signal.SIGSTOP:
            m.state.state = "frozen"
        elif sig is signal.SIGCONT:
            m.state.state = "running"
        self.changed()

    async def stop(self, name: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
        m = self.managed[name]
        proc = m.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                os.kill(proc.pid, STOP_SIGNALS[m.component.kind])
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a child
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
            m.state.exit_code = proc.returncode
        m.state.state = "stopped"
        self.changed()

    async def stop_all(self) -> None:
        """Gateway first, then the services in parallel, then the broker and PostgreSQL."""
        order = list(self.managed.values())
        gateway = [m.component.name for m in order if m.component.service == "gateway"]
        services = [
            m.component.name
            for m in order
            if m.component.kind is Kind.SERVICE and m.component.service != "gateway"
        ]
        infra = [m.component.name for m in order if m.component.kind is not Kind.SERVICE]
        for group in (gateway, services, infra):
            await asyncio.gather(*(self.stop(n) for n in group))
        for m in self.managed.values():
            if m.log_handle is not None:
                m.log_handle.close()
                m.log_handle = None
        if self._session is not None:
            await self._session.close()
            self._session = None

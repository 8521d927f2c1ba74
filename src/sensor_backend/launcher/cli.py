"""``sensor-backend``: start, inspect and stop the whole system on one machine.

    sensor-backend up [--replicas sensor=3] [--detach]   start everything, wait for /health
                      [--observability]              ... and Prometheus scraping every replica
    sensor-backend status [--json]                       components, URLs, PIDs, health
    sensor-backend down                                  stop everything (or Ctrl-C on `up`)

Without ``DATABASE_URL`` the launcher runs an embedded PostgreSQL; without
``KAFKA_BOOTSTRAP_SERVERS`` the embedded tansu broker (DESIGN.md §2). Data stays in the data
directory (``./var`` by default, ``--data-dir`` or ``SENSOR_BACKEND_DATA_DIR``), so a second
``up`` keeps users and tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.live import Live

from sensor_backend.core import tracing
from sensor_backend.launcher import clients, drills, layout, observability
from sensor_backend.launcher.control import ACTIONS, ControlClient, ControlError, ControlServer
from sensor_backend.launcher.display import component_table
from sensor_backend.launcher.probes import probe
from sensor_backend.launcher.state import LauncherLock, pid_alive, read_state
from sensor_backend.launcher.supervisor import StartupError, Supervisor

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)


def admin_password(data_dir: Path) -> str:
    """``ADMIN_PASSWORD`` from the env, else one generated on first start and kept (0600)."""
    return secret(data_dir, "ADMIN_PASSWORD", "admin_password")


def secret(data_dir: Path, env: str, name: str) -> str:
    """A secret from the env, else one generated on first start and kept (mode 0600)."""
    if os.environ.get(env):
        return os.environ[env]
    path = data_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(18))
    return path.read_text().strip()


def wants_observability(args: argparse.Namespace) -> bool:
    """``--observability`` when Prometheus is installed; a clear message when it is not."""
    if not getattr(args, "observability", False):
        return False
    if observability.prometheus_binary() is None:
        err.print(f"[yellow]{observability.missing_message()}[/yellow]")
        return False
    if observability.rules_dir() is None:
        err.print(
            "[yellow]alert and SLO rules not found (deploy/observability/rules; set "
            "SENSOR_BACKEND_RULES_DIR): Prometheus runs without them[/yellow]"
        )
    return True


def options_from(args: argparse.Namespace) -> layout.LaunchOptions:
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return layout.LaunchOptions(
        data_dir=data_dir,
        port_offset=args.port_offset,
        replicas=layout.parse_replicas(args.replicas),
        database_url=os.environ.get("DATABASE_URL") or None,
        kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        admin_password=admin_password(data_dir),
        service_account_password=secret(
            data_dir, "SERVICE_ACCOUNT_PASSWORD", "service_account_password"
        ),
        environment=os.environ.get("SENSOR_BACKEND_ENV", "development"),
        observability=wants_observability(args),
    )


# -- up ------------------------------------------------------------------------------------
async def _probe_all(components: list[layout.Component]) -> dict[str, str]:
    async with aiohttp.ClientSession() as session:
        words = await asyncio.gather(*(probe(c, session) for c in components))
    return {c.name: word for c, (word, _) in zip(components, words, strict=True)}


async def _settle(components: list[layout.Component], timeout_s: float) -> dict[str, str]:
    """Wait (bounded) until every component reports healthy; returns the last health words."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = await _probe_all(components)
        if all(word == "healthy" for word in health.values()) or time.monotonic() > deadline:
            return health
        await asyncio.sleep(0.25)


def already_running(data_dir: Path) -> None:
    existing = read_state(data_dir)
    pid = existing.supervisor_pid if existing else "?"
    err.print(
        f"[red]already running[/red] on {data_dir} (supervisor pid {pid}); "
        "use `sensor-backend status` or `sensor-backend down`"
    )


async def _start_or_interrupt(
    supervisor: Supervisor, stop: asyncio.Event, timeout_s: float
) -> None:
    """Start everything, unless a stop signal comes first (then KeyboardInterrupt)."""
    starting = asyncio.create_task(supervisor.start_all(timeout_s))
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if stopped in done:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        raise KeyboardInterrupt
    stopped.cancel()
    starting.result()


async def _watch(supervisor: Supervisor, stop: asyncio.Event) -> None:
    """Report components that exit until a stop signal comes."""
    while not stop.is_set():
        for name in supervisor.reap():
            m = supervisor.managed[name]
            err.print(
                f"[red]{name} exited[/red] with code {m.state.exit_code} (log: {m.state.log})"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def run_up(options: layout.LaunchOptions, timeout_s: float) -> int:
    lock = LauncherLock(options.data_dir)
    if not lock.acquire():
        already_running(options.data_dir)
        return 1
    components = layout.plan(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    live = Live(console=console, auto_refresh=False, transient=False)
    supervisor = Supervisor(components, data_dir=options.data_dir)
    control = ControlServer(supervisor)
    supervisor.on_change = lambda: live.update(component_table(supervisor.state), refresh=True)
    code = 0
    try:
        with live:
            supervisor.changed()
            await _start_or_interrupt(supervisor, stop, timeout_s)
            health = await _settle(components, timeout_s=30.0)
            await control.start()
            supervisor.set_phase("ready")
            live.update(component_table(supervisor.state, health), refresh=True)
        console.print(
            f"gateway: [bold]{components[-1].url}[/bold]   admin user: admin "
            f"(password in {options.data_dir / 'secrets' / 'admin_password'})"
        )
        print_prometheus(components)
        console.print("Ctrl-C or `sensor-backend down` stops everything.")
        await _watch(supervisor, stop)
    except StartupError as exc:
        err.print(f"[red]failed to start[/red] {exc}")
        supervisor.set_phase("failed", str(exc))
        code = 1
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.set_phase("stopping", supervisor.state.error)
        await control.stop()
        console.print("stopping...")
        await supervisor.stop_all()
        supervisor.set_phase("failed" if code else "stopped", supervisor.state.error)
        lock.release()
    return code


def print_prometheus(components: list[layout.Component]) -> None:
    for comp in components:
        if comp.kind is layout.Kind.PROMETHEUS:
            # Debian's package serves only the classic UI, under /classic/.
            console.print(
                f"Prometheus: [bold]{comp.url}[/bold] (graphs: /graph, alerts: /alerts, or "
                "/classic/graph, /classic/alerts with Debian's package); Grafana dashboard: "
                "deploy/observability/grafana-dashboard.json"
            )
            print_tracing()


def print_tracing() -> None:
    """Where traces go, or how to send them somewhere (README "Traces")."""
    if tracing.wanted():
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"
        )
        console.print(f"Traces: OTLP/HTTP to [bold]{endpoint}[/bold]")
    else:
        console.print(
            "Traces: off; start with OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 (an "
            "OTel Collector, Jaeger or Tempo) and the tracing extra installed"
        )


def up_detached(args: argparse.Namespace, options: layout.LaunchOptions) -> int:
    """Run the supervisor in the background and return once the system is ready."""
    probe_lock = LauncherLock(options.data_dir)
    if not probe_lock.acquire():
        already_running(options.data_dir)
        return 1
    probe_lock.release()
    argv = [
        sys.executable,
        "-m",
        "sensor_backend.launcher.cli",
        "up",
        "--data-dir",
        str(options.data_dir),
        "--port-offset",
        str(options.port_offset),
        "--timeout",
        str(args.timeout),
    ]
    for value in args.replicas:
        argv += ["--replicas", value]
    if options.observability:
        argv.append("--observability")
    logs = options.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    previous = read_state(options.data_dir)
    with (logs / "launcher.log").open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own module
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "160"},
        )
    deadline = time.monotonic() + args.timeout + 45
    with console.status("starting sensor-backend..."):
        while time.monotonic() < deadline:
            state = read_state(options.data_dir)
            fresh = state is not None and state.supervisor_pid == proc.pid
            if fresh and state is not None and state.phase in {"ready", "failed", "stopped"}:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    state = read_state(options.data_dir)
    if state is None or state.supervisor_pid != proc.pid or state.phase != "ready":
        reason = state.error if state is not None and state is not previous else None
        err.print(f"[red]failed to start[/red]: {reason or 'see ' + str(logs / 'launcher.log')}")
        if proc.poll() is None:
            proc.terminate()
        return 1
    health = asyncio.run(_probe_all(layout.plan(options)))
    console.print(component_table(state, health))
    print_prometheus(layout.plan(options))
    console.print(f"supervisor pid {proc.pid}; `sensor-backend down` stops everything.")
    return 0


# -- status / down -------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    state = read_state(data_dir)
    if state is None or not pid_alive(state.supervisor_pid):
        msg = "not running" if state is None else f"not running (last phase: {state.phase})"
        if args.json:
            print(json.dumps({"running": False, "phase": state.phase if state else None}))  # noqa: T201
        else:
            console.print(msg)
        return 3
    components = [
        layout.Component(c.name, layout.Kind(c.kind), c.port, service=c.service)
        for c in state.components
    ]
    health = asyncio.run(_probe_all(components))
    for comp in state.components:
        if not pid_alive(comp.pid):
            health[comp.name] = "down"
    if args.json:
        doc = {
            "running": True,
            "phase": state.phase,
            "supervisor_pid": state.supervisor_pid,
            "components": [
                {
                    "name": c.name,
                    "url": c.url,
                    "pid": c.pid,
                    "process": c.state,
                    "health": health[c.name],
                }
                for c in state.components
            ],
        }
        print(json.dumps(doc, indent=2))  # noqa: T201
    else:
        console.print(component_table(state, health))
    return 0 if all(word == "healthy" for word in health.values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    state = read_state(data_dir)
    if state is None or not pid_alive(state.supervisor_pid):
        console.print("not running")
        return 0
    os.kill(state.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    with console.status("stopping sensor-backend..."):
        while pid_alive(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if pid_alive(state.supervisor_pid):
        err.print(f"[red]supervisor {state.supervisor_pid} did not stop; killing it[/red]")
        os.kill(state.supervisor_pid, signal.SIGKILL)  # children follow through PDEATHSIG
        return 1
    console.print("stopped")
    return 0


def cmd_component(args: argparse.Namespace) -> int:
    """Kill, stop, start, restart, freeze or thaw one component of the running system."""
    client = ControlClient(Path(args.data_dir).resolve())
    try:
        result = asyncio.run(client.act(args.component, args.command))
    except (ControlError, OSError) as exc:
        err.print(f"[red]{args.command} {args.component} failed[/red]: {exc}")
        return 1
    state = result["state"]
    console.print(f"{args.component}: {state['state']} (pid {state['pid']})")
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    """Run resilience drills against the running system; non-zero exit if one fails."""
    data_dir = Path(args.data_dir).resolve()
    state = read_state(data_dir)
    if state is None or not pid_alive(state.supervisor_pid) or state.phase != "ready":
        err.print("[red]no running system[/red]: start it with `sensor-backend up` first")
        return 2
    gateway = next((c for c in state.components if c.service == "gateway"), None)
    if gateway is None:
        err.print("[red]the running system has no gateway[/red]")
        return 2
    names = list(drills.SCENARIOS) if args.scenario == "all" else [args.scenario]
    names *= args.repeat
    drill = drills.Drill(
        data_dir, gateway.url, admin_password(data_dir), [c.name for c in state.components]
    )

    async def run() -> list[drills.DrillReport]:
        try:
            return await drills.run_drills(drill, names, args.service)
        finally:
            await drill.close()

    reports = asyncio.run(run())
    for report in reports:
        mark = "[green]held[/green]" if report.ok else "[red]FAILED[/red]"
        console.print(f"[bold]drill {report.name}[/bold]: {mark}")
        for step in report.steps:
            sign = "[green]✓[/green]" if step.ok else "[red]✗[/red]"
            detail = f"  [dim]({step.detail})[/dim]" if step.detail and not step.ok else ""
            console.print(f"  {sign} {step.text}{detail}")
    failed = [r.name for r in reports if not r.ok]
    if failed:
        err.print(f"[red]expectations broken in: {', '.join(failed)}[/red]")
        return 1
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    try:
        options = options_from(args)
    except layout.LayoutError as exc:
        err.print(f"[red]error[/red]: {exc}")
        return 2
    if args.detach:
        return up_detached(args, options)
    return asyncio.run(run_up(options, args.timeout))


def cmd_client(args: argparse.Namespace) -> int:
    """Rig clients on the running system (launcher/clients.py); 2 when that fails."""
    try:
        return clients.run(args, admin_password, print)
    except clients.ClientCommandError as exc:
        err.print(f"[red]{exc}[/red]")
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sensor-backend", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=str(layout.default_data_dir()),
        help="where data, logs and state live (default: ./var)",
    )
    up = sub.add_parser("up", parents=[common], help="start the whole system")
    up.add_argument(
        "--replicas",
        action="append",
        default=[],
        metavar="SERVICE=N",
        help="run N processes of a service, e.g. sensor=3 (repeatable)",
    )
    up.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("SENSOR_BACKEND_PORT_OFFSET", "0")),
        help="add this to every port (run a second system beside the first)",
    )
    up.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each component"
    )
    up.add_argument(
        "--detach", action="store_true", help="run in the background; return when ready"
    )
    up.add_argument(
        "--observability",
        action="store_true",
        help="also run Prometheus (Debian's package) scraping every replica, with the alert "
        "and SLO rules of deploy/observability",
    )
    up.set_defaults(func=cmd_up)
    status = sub.add_parser("status", parents=[common], help="show components and their health")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    down = sub.add_parser("down", parents=[common], help="stop everything")
    down.set_defaults(func=cmd_down)
    drill = sub.add_parser("drill", parents=[common], help="run a resilience drill live")
    drill.add_argument("scenario", choices=[*drills.SCENARIOS, "all"])
    drill.add_argument(
        "--service",
        default="sensor",
        choices=["auth", "sensor", "events"],
        help="the service to freeze (freeze drill)",
    )
    drill.add_argument(
        "--repeat",
        type=int,
        default=1,
        choices=range(1, 21),
        metavar="N",
        help="run the drills N times back to back (recovery after an outage history)",
    )
    drill.set_defaults(func=cmd_drill)
    clients.add_parser(sub, common, cmd_client)
    helps = {
        "kill": "SIGKILL a component (a crash)",
        "stop": "stop a component gracefully",
        "start": "start a stopped or killed component",
        "restart": "stop and start a component",
        "freeze": "SIGSTOP a component (a hang)",
        "thaw": "SIGCONT a frozen component",
    }
    for action in ACTIONS:
        one = sub.add_parser(action, parents=[common], help=helps[action])
        one.add_argument(
            "component", help="postgres, broker, auth, sensor, sensor-2, events, gateway"
        )
        one.set_defaults(func=cmd_component)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()

"""What the launcher runs: components, ports, replicas and each process's environment.

Pure data, no processes: `plan()` turns the options of ``sensor-backend up`` into a list of
`Component` specs that the supervisor starts in order.

Ports (plus ``--port-offset``): gateway 8000, auth 8001, sensor 8002, events 8003,
PostgreSQL 5434 (as in the original notes' compose file), broker 9092, Prometheus 9090 (with
``--observability``). Extra replicas of a service run on consecutive ports of its own block:
auth 8011.., sensor 8021.., events 8031..
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

BASE_PORTS = {"gateway": 8000, "auth": 8001, "sensor": 8002, "events": 8003}
REPLICA_BLOCKS = {"auth": 8011, "sensor": 8021, "events": 8031}
POSTGRES_PORT = 5434
BROKER_PORT = 9092
PROMETHEUS_PORT = 9090
MAX_REPLICAS = 9
# Env prefixes of each service's settings class.
PREFIXES = {"gateway": "GATEWAY_", "auth": "AUTH_", "sensor": "SENSOR_", "events": "EVENTS_"}
HOST = "127.0.0.1"


class Kind(StrEnum):
    POSTGRES = "postgres"
    BROKER = "broker"
    PROMETHEUS = "prometheus"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Component:
    name: str  # "postgres", "broker", "auth", "sensor", "sensor-2", "events", "gateway"
    kind: Kind
    port: int
    service: str | None = None  # "auth", "sensor"... for services
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        if self.kind is Kind.POSTGRES:
            return f"postgresql://postgres@{HOST}:{self.port}/postgres"
        if self.kind is Kind.BROKER:
            return f"{HOST}:{self.port}"
        return f"http://{HOST}:{self.port}"


class LayoutError(ValueError):
    """The launcher's options do not describe a runnable system."""


def parse_replicas(values: list[str]) -> dict[str, int]:
    """``["sensor=3"]`` -> ``{"sensor": 3}``; ``kafka`` is accepted for ``events``."""
    replicas: dict[str, int] = {}
    for value in values:
        name, sep, count = value.partition("=")
        name = {"kafka": "events"}.get(name.strip(), name.strip())
        # fullmatch on ASCII digits: str.isdigit() also accepts "²", which int() refuses.
        if not sep or not re.fullmatch(r"[0-9]+", count.strip()):
            raise LayoutError(f"--replicas expects SERVICE=N, got {value!r}")
        if name not in REPLICA_BLOCKS:
            known = ", ".join(sorted(REPLICA_BLOCKS))
            raise LayoutError(f"--replicas: {name!r} cannot be replicated here (one of: {known})")
        n = int(count)
        if not 1 <= n <= MAX_REPLICAS:
            raise LayoutError(f"--replicas {name}: between 1 and {MAX_REPLICAS}, got {n}")
        replicas[name] = n
    return replicas


def service_ports(service: str, count: int, offset: int) -> list[int]:
    ports = [BASE_PORTS[service] + offset]
    ports += [REPLICA_BLOCKS[service] + offset + i for i in range(count - 1)]
    return ports


@dataclass(frozen=True, slots=True)
class LaunchOptions:
    data_dir: Path
    port_offset: int = 0
    replicas: dict[str, int] = field(default_factory=dict)
    database_url: str | None = None  # set: use that server instead of the embedded one
    kafka_bootstrap: str | None = None  # set: use that cluster instead of the embedded broker
    admin_password: str = ""
    service_account_password: str = ""
    environment: str = "development"
    observability: bool = False  # also run Prometheus, scraping every replica


def plan(options: LaunchOptions) -> list[Component]:
    """Components in start order: infrastructure, then services, the gateway last."""
    off = options.port_offset
    components: list[Component] = []
    database_url = options.database_url
    if database_url is None:
        pg = Component("postgres", Kind.POSTGRES, POSTGRES_PORT + off)
        components.append(pg)
        database_url = pg.url
    kafka = options.kafka_bootstrap
    if kafka is None:
        broker = Component("broker", Kind.BROKER, BROKER_PORT + off)
        components.append(broker)
        kafka = broker.url
    prometheus_url = ""
    if options.observability:
        prometheus = Component("prometheus", Kind.PROMETHEUS, PROMETHEUS_PORT + off)
        components.append(prometheus)
        prometheus_url = prometheus.url

    ports = {
        svc: service_ports(svc, options.replicas.get(svc, 1), off)
        for svc in ("auth", "sensor", "events")
    }
    urls = {svc: ",".join(f"http://{HOST}:{p}" for p in plist) for svc, plist in ports.items()}
    shared_env = {
        "SENSOR_BACKEND_ENV": options.environment,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "AUTH_SERVICE_URLS": urls["auth"],
        "SENSOR_SERVICE_URLS": urls["sensor"],
        "EVENTS_SERVICE_URLS": urls["events"],
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
    }
    if options.admin_password:
        shared_env["ADMIN_PASSWORD"] = options.admin_password
    if options.service_account_password:
        shared_env["SERVICE_ACCOUNT_PASSWORD"] = options.service_account_password
    for svc in ("auth", "sensor", "events"):
        for index, port in enumerate(ports[svc]):
            name = svc if index == 0 else f"{svc}-{index + 1}"
            components.append(_service(svc, name, port, shared_env, options.data_dir))
    gateway = _service(
        "gateway", "gateway", BASE_PORTS["gateway"] + off, shared_env, options.data_dir
    )
    if prometheus_url:  # the console's SLO panel reads the recording rules there
        gateway.env["GATEWAY_PROMETHEUS_URL"] = prometheus_url
    components.append(gateway)
    return components


def _service(
    svc: str, name: str, port: int, shared_env: dict[str, str], data_dir: Path
) -> Component:
    prefix = PREFIXES[svc]
    env = dict(shared_env)
    env.update(
        {
            f"{prefix}HOST": HOST,
            f"{prefix}PORT": str(port),
            f"{prefix}INSTANCE_ID": name,
            # Spools are per instance (DESIGN.md §5): each gets its own directory.
            f"{prefix}SPOOL_DIR": str(data_dir / "spool" / name),
        }
    )
    if svc == "sensor":
        # The analysis is NumPy on 1M-reading arrays in a pool of worker threads; OpenBLAS's
        # own threads (one per core, spinning while they wait) only oversubscribe the cores:
        # on 2 busy cores analyse() of 1M readings took 170-230 ms with the default against
        # 36 ms pinned to one (bench/sensor_analysis.py's series, best of 15). An operator's
        # own setting wins.
        env.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    argv = (sys.executable, "-m", f"sensor_backend.{svc}.main")
    return Component(name, Kind.SERVICE, port, service=svc, argv=argv, env=env)


def default_data_dir() -> Path:
    return Path(os.environ.get("SENSOR_BACKEND_DATA_DIR", "var")).resolve()

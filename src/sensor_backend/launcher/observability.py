"""``sensor-backend up --observability``: a real Prometheus beside the local system.

The launcher knows every replica's port, so it writes the scrape configuration itself
(``<data-dir>/observability/prometheus.yml``): one job per service (``gateway``, ``auth``,
``sensor``, ``events``), one target per replica, each labelled ``replica`` with the
component's name (``sensor-2``...), the same labels the compose and Kubernetes variants in
``deploy/observability/`` produce. The alert and SLO recording rules are loaded from
``deploy/observability/rules/`` of the checkout (or ``SENSOR_BACKEND_RULES_DIR``).

Prometheus itself is Debian's ``prometheus`` package (or any ``prometheus`` on PATH, or
``PROMETHEUS_BIN``); without it ``up --observability`` says so and starts the system alone.
JSON is written, which is YAML too: no YAML library is needed at run time.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sensor_backend.launcher.layout import Component

SCRAPE_INTERVAL = "5s"
EVALUATION_INTERVAL = "5s"
RETENTION = "15d"
SERVICES = ("gateway", "auth", "sensor", "events")


def prometheus_binary() -> str | None:
    """The Prometheus server binary: ``PROMETHEUS_BIN``, else ``prometheus`` on PATH."""
    explicit = os.environ.get("PROMETHEUS_BIN")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("prometheus")


def missing_message() -> str:
    return (
        "Prometheus not found: install Debian's `prometheus` package "
        "(`sudo apt-get install prometheus`, or `make system-packages` as root) or set "
        "PROMETHEUS_BIN; starting without it"
    )


def rules_dir() -> Path | None:
    """``deploy/observability/rules`` of this checkout, or ``SENSOR_BACKEND_RULES_DIR``."""
    explicit = os.environ.get("SENSOR_BACKEND_RULES_DIR")
    if explicit:
        path = Path(explicit)
    else:
        # src/sensor_backend/launcher/observability.py -> the repository's root
        path = Path(__file__).resolve().parents[3] / "deploy" / "observability" / "rules"
    return path if path.is_dir() else None


def rule_files(directory: Path | None) -> list[str]:
    if directory is None:
        return []
    return sorted(str(p) for p in directory.glob("*.yml") if not p.name.endswith(".test.yml"))


def scrape_config(components: list[Component], rules: list[str]) -> dict[str, Any]:
    """Prometheus configuration scraping every service replica in ``components``."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for comp in components:
        if comp.service not in SERVICES:
            continue
        target = comp.url.removeprefix("http://")
        jobs.setdefault(comp.service, []).append(
            {"targets": [target], "labels": {"replica": comp.name}}
        )
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": EVALUATION_INTERVAL,
            "external_labels": {"system": "sensor-backend-local"},
        },
        "rule_files": rules,
        "scrape_configs": [
            {
                "job_name": service,
                "metrics_path": "/metrics",
                "scrape_timeout": "4s",
                "static_configs": jobs[service],
            }
            for service in SERVICES
            if service in jobs
        ],
    }


def write_config(
    data_dir: Path, components: list[Component], rules: list[str] | None = None
) -> Path:
    """Write ``<data-dir>/observability/prometheus.yml``; returns its path."""
    directory = data_dir / "observability"
    directory.mkdir(parents=True, exist_ok=True)
    if rules is None:
        rules = rule_files(rules_dir())
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(scrape_config(components, rules), indent=2) + "\n")
    return path


def server_command(binary: str, config: Path, port: int, host: str) -> list[str]:
    tsdb = config.parent / "tsdb"
    tsdb.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={host}:{port}",
        "--web.enable-lifecycle",
    ]

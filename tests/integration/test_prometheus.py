"""A real Prometheus beside a running system: every series the rules and dashboard name exists.

The system runs through the launcher's own supervisor with a Prometheus component, as
``sensor-backend up --observability`` does (config written by the launcher, rules loaded from
deploy/observability/rules). After some traffic (sensor tests and an event through the
gateway) the test asks Prometheus's HTTP API that:

- every replica is scraped and up;
- every rule file loaded and no rule evaluates with an error;
- every metric name in the alert and recording rules and in the Grafana dashboard's queries
  is among the scraped series (``/api/v1/label/__name__/values``);
- every recording rule's expression and every dashboard query is valid PromQL, and every
  recording rule's expression returns data.

Needs Debian's ``prometheus`` package (``make system-packages``); skips without it.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import Harness, wait_for

from sensor_backend.launcher import layout, observability
from sensor_backend.launcher.supervisor import Supervisor

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        observability.prometheus_binary() is None,
        reason="prometheus missing: install Debian's `prometheus` package (make system-packages)",
    ),
    pytest.mark.timeout(90),
]

OBS = Path(__file__).resolve().parents[2] / "deploy" / "observability"
SELECTORS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords)."""
    text = expr.replace("$__rate_interval", "1m")
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = SELECTORS.sub(" ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        after = text[match.end() :].lstrip()
        if after.startswith("(") or match.group(0).lower() in KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def rules() -> list[dict[str, Any]]:
    """Every rule, with ``_interval`` set from its group's evaluation interval."""
    return [
        {**rule, "_interval": group.get("interval")}
        for path in sorted((OBS / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def dashboard_queries() -> list[str]:
    doc = json.loads((OBS / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_metric_names_parser() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (job, le) (rate(http_request_duration_seconds_bucket"
        '{route!~"/health.*|/x"}[$__rate_interval]))) > 0.2 and on (job) up == 1'
        ' or slo:sli_error:ratio_rate5m{slo="a"} / 0.001'
    )
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "up",
        "slo:sli_error:ratio_rate5m",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        doc = response.json()
        assert doc["status"] == "success", (path, params, doc)
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr.replace("$__rate_interval", "1m"))
        result: list[dict[str, Any]] = data["result"]
        return result


def _all_scraped(api: Prometheus, services: int) -> None:
    def all_up() -> bool:
        targets = api.get("/api/v1/targets")["activeTargets"]
        return len(targets) == services and all(t["health"] == "up" for t in targets)

    assert wait_for(all_up, 20, 0.5), api.get("/api/v1/targets")
    jobs = {r["metric"]["job"] for r in api.query("up == 1")}
    assert jobs == {"gateway", "auth", "sensor", "events"}


def _traffic(harness: Harness) -> None:
    """Sensor tests (completed) and an event through the gateway."""
    gateway = harness.url("gateway")
    headers = harness.headers()
    ids = []
    for sensor_type in ("temperature", "humidity", "temperature"):
        response = httpx.post(f"{gateway}/test/sensor/{sensor_type}", headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        ids.append(response.json()["test_id"])
    event = {"id": str(uuid.uuid4()), "source": "/rig/7", "type": "rig.reading"}
    response = httpx.post(f"{gateway}/events", json=event, headers=headers, timeout=10)
    assert response.status_code in {201, 202}, response.text

    def done() -> bool:
        docs = [httpx.get(f"{gateway}/test/{i}", headers=headers, timeout=10).json() for i in ids]
        return all(d.get("status") == "completed" for d in docs)

    assert wait_for(done, 20, 0.3)


def _recording_rules_have_data(api: Prometheus) -> None:
    """Each recording rule's expression returns data once two scrapes saw the traffic.

    Those reading series recorded by the once-a-minute group (1d, 3d, 30d windows) may have
    nothing to read yet: their inputs are checked, they are not.
    """
    records = [r for r in rules() if "record" in r]
    slow = {r["record"] for r in records if r["_interval"]}
    checked = [r for r in records if not metric_names(r["expr"]) & slow]
    assert len(checked) > len(records) / 2
    missing: list[str] = []

    def all_have_data() -> bool:
        missing[:] = [r["expr"] for r in checked if not api.query(r["expr"])]
        return not missing

    assert wait_for(all_have_data, 25, interval=1), missing


def _rules_loaded_without_error(api: Prometheus) -> None:
    groups = api.get("/api/v1/rules")["groups"]
    assert {Path(g["file"]).name for g in groups} == {"alerts.yml", "slo.yml"}
    loaded = [rule for g in groups for rule in g["rules"]]
    assert len(loaded) == len(rules())
    errors = [(r["name"], r.get("lastError")) for r in loaded if r["health"] == "err"]
    assert not errors, errors


def _every_named_series_scraped(api: Prometheus) -> None:
    """Recorded names are checked through their expressions (above)."""
    recorded = {r["record"] for r in rules() if "record" in r}
    scraped = set(api.get("/api/v1/label/__name__/values"))
    exprs = [r["expr"] for r in rules()] + dashboard_queries()
    named = set().union(*(metric_names(e) for e in exprs)) - recorded
    assert len(named) > 20, named
    assert named <= scraped, sorted(named - scraped)
    # Every dashboard query is valid PromQL (api.query asserts success).
    for expr in dashboard_queries():
        api.query(expr)


def test_real_prometheus_finds_every_series_named_by_rules_and_dashboard() -> None:
    prom = layout.Component("prometheus", layout.Kind.PROMETHEUS, free_port())
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=41000,
        env={"GATEWAY_PROMETHEUS_URL": prom.url},  # what `up --observability` sets
    )
    # The launcher's own path for `up --observability`: the supervisor writes the scrape
    # config for every service component and loads deploy/observability/rules.
    harness.components.append(prom)
    harness.supervisor = Supervisor(harness.components, data_dir=harness.data_dir)
    started = time.monotonic()
    try:
        harness.start()
        api = Prometheus(prom.url)
        services = [c for c in harness.components if c.kind is layout.Kind.SERVICE]
        _all_scraped(api, len(services))
        _traffic(harness)  # after the first scrape, so that rates see an increase
        _recording_rules_have_data(api)
        _rules_loaded_without_error(api)
        _every_named_series_scraped(api)
        # The dashboard shows data for the traffic above, per route and per sensor type.
        assert api.query("sum by (sensor_type, verdict) (rate(sensor_tests_completed_total[1m]))")
        routes = {
            r["metric"]["route"]
            for r in api.query('http_requests_total{job="gateway", method="POST"}')
        }
        assert "/test/sensor/{sensor_type}" in routes

        # The console's SLO panel reads the recording rules through the gateway (recorded
        # at the next evaluation, every 5 s, after the expressions had data).
        def slo_doc() -> dict[str, Any]:
            doc: dict[str, Any] = httpx.get(
                f"{harness.url('gateway')}/console/api/slo", timeout=10
            ).json()
            return doc

        wait_for(lambda: all(s["error_ratio_1h"] is not None for s in slo_doc()["slos"]), 15, 1)
        slo = slo_doc()
        assert slo["source"] == "prometheus"
        assert slo["reachable"]
        states = {s["name"]: s for s in slo["slos"]}
        assert set(states) == {"test_submission", "test_completion", "events_delivery"}
        for state in states.values():
            assert state["error_ratio_1h"] is not None, state
            assert state["status"] in {"ok", "burning", "burning fast"}, state
        assert states["events_delivery"]["status"] == "ok"
    finally:
        harness.close()
    assert time.monotonic() - started < 90

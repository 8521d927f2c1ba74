"""deploy/observability: alert and SLO rules (promtool), scrape configs, generated files.

``promtool`` comes with Debian's ``prometheus`` package (``make system-packages`` installs it
as root); without it the promtool tests skip and say so. The rules' metric names are checked
against a running system by tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from sensor_backend.launcher import layout, observability

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
RULES = sorted((OBS / "rules").glob("*.yml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool missing: install Debian's `prometheus` package (make system-packages)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False, cwd=OBS
    )


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, OBS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", "tests/alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("name", ["prometheus.local.yml", "prometheus.compose.yml"])
def test_scrape_configs_are_valid(name: str) -> None:
    result = promtool("check", "config", "--syntax-only", name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_kubernetes_scrape_config_is_valid() -> None:
    result = promtool("check", "config", "--syntax-only", "prometheus.k8s.yml")
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        pytest.skip("this promtool is built without Kubernetes discovery (Debian's is)")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists() -> None:
    alerts = {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    required = {
        "ServiceDown",
        "CircuitBreakerOpen",
        "TestQueueStale",
        "OutboxGrowing",
        "SpoolGrowing",
        "EventsDeadLettered",
        "HighErrorRatio",
        "AuthFallbackMode",
        "SLOBurnRateTestSubmission1h",
        "SLOBurnRateTestCompletion1h",
    }
    assert required <= alerts
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["labels"]["severity"] in {"page", "ticket", "warning"}
                    assert rule["annotations"]["summary"]


def test_alert_unit_tests_cover_every_alert() -> None:
    tests = yaml.safe_load((OBS / "tests" / "alerts.test.yml").read_text())
    tested = {
        case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])
    }
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((OBS / "rules" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alerts <= tested


def test_slo_rules_are_what_the_generator_writes() -> None:
    slo_rules = load("slo_rules")
    assert (OBS / "rules" / "slo.yml").read_text() == slo_rules.render(), (
        "run python deploy/observability/slo_rules.py"
    )


def test_dashboard_is_what_the_generator_writes() -> None:
    dashboard = load("dashboard")
    assert (OBS / "grafana-dashboard.json").read_text() == dashboard.text(), (
        "run python deploy/observability/dashboard.py"
    )


def test_dashboard_panels_have_queries_and_unique_ids() -> None:
    doc = json.loads((OBS / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    assert len(rows) == 5
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["targets"]
            assert all(t["expr"] for t in panel["targets"])
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_launcher_scrapes_every_replica() -> None:
    options = layout.LaunchOptions(
        data_dir=Path("/tmp/x"),  # noqa: S108 - never written
        port_offset=100,
        replicas={"sensor": 3, "auth": 2},
        observability=True,
    )
    components = layout.plan(options)
    prom = next(c for c in components if c.kind is layout.Kind.PROMETHEUS)
    assert prom.port == layout.PROMETHEUS_PORT + 100
    assert components[-1].service == "gateway"
    config = observability.scrape_config(components, ["/r/alerts.yml"])
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "auth", "sensor", "events"}
    assert [c["targets"] for c in jobs["sensor"]] == [
        ["127.0.0.1:8102"],
        ["127.0.0.1:8121"],
        ["127.0.0.1:8122"],
    ]
    assert [c["labels"]["replica"] for c in jobs["sensor"]] == ["sensor", "sensor-2", "sensor-3"]
    assert [c["targets"] for c in jobs["auth"]] == [["127.0.0.1:8101"], ["127.0.0.1:8111"]]
    assert config["rule_files"] == ["/r/alerts.yml"]
    # The console's SLO panel reads that Prometheus.
    assert components[-1].env["GATEWAY_PROMETHEUS_URL"] == prom.url


def test_no_prometheus_without_the_option() -> None:
    components = layout.plan(layout.LaunchOptions(data_dir=Path("/tmp/x")))  # noqa: S108
    assert all(c.kind is not layout.Kind.PROMETHEUS for c in components)
    assert "GATEWAY_PROMETHEUS_URL" not in components[-1].env


def test_committed_local_config_matches_the_default_layout() -> None:
    components = layout.plan(layout.LaunchOptions(data_dir=Path("/tmp/x")))  # noqa: S108
    generated = observability.scrape_config(components, [])
    committed = yaml.safe_load((OBS / "prometheus.local.yml").read_text())
    for want, got in zip(generated["scrape_configs"], committed["scrape_configs"], strict=True):
        assert got["job_name"] == want["job_name"]
        assert got["static_configs"] == want["static_configs"]
    assert committed["rule_files"] == ["rules/alerts.yml", "rules/slo.yml"]


def test_rules_dir_is_found_in_the_checkout() -> None:
    found = observability.rules_dir()
    assert found == OBS / "rules"
    files = observability.rule_files(found)
    assert [Path(f).name for f in files] == ["alerts.yml", "slo.yml"]


def test_write_config_is_json_prometheus_reads(tmp_path: Path) -> None:
    components = layout.plan(layout.LaunchOptions(data_dir=tmp_path, observability=True))
    path = observability.write_config(tmp_path, components)
    doc = json.loads(path.read_text())
    assert [j["job_name"] for j in doc["scrape_configs"]] == list(observability.SERVICES)
    if PROMTOOL is not None:
        result = promtool("check", "config", str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_missing_binary_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_BIN", "/nonexistent/prometheus")
    assert observability.prometheus_binary() is None
    assert "prometheus" in observability.missing_message()


def test_up_observability_without_prometheus_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sensor_backend.launcher import cli  # noqa: PLC0415 - rich console at import

    monkeypatch.setenv("PROMETHEUS_BIN", "/nonexistent/prometheus")
    monkeypatch.setenv("COLUMNS", "200")
    args = cli.build_parser().parse_args(["up", "--observability", "--data-dir", "/tmp/x"])  # noqa: S108
    assert args.observability
    assert cli.wants_observability(args) is False
    assert "Prometheus not found" in capsys.readouterr().err
    args = cli.build_parser().parse_args(["up", "--data-dir", "/tmp/x"])  # noqa: S108
    assert cli.wants_observability(args) is False


def test_compose_overlay_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(OBS / "docker-compose.observability.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

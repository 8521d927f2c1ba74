"""Generate grafana-dashboard.json, the sensor-backend Grafana dashboard.

    python deploy/observability/dashboard.py   # rewrites grafana-dashboard.json

One row per question an operator asks (README "Observability" describes each). Every query
uses only series the services export or rules/slo.yml records;
tests/integration/test_prometheus.py checks each name against a real Prometheus scraping a
running system, and tests/unit/test_observability_rules.py that the JSON is what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
NOT_HEALTH = 'route!~"/health.*|/metrics"'
RI = "$__rate_interval"

# (row title, [(panel title, kind, unit, [(expr, legend)], description)])
ROWS: list[tuple[str, list[tuple[str, str, str, list[tuple[str, str]], str]]]] = [
    (
        "SLOs: are we keeping our promises?",
        [
            (
                "Error ratio over 1h, by SLO",
                "stat",
                "percentunit",
                [("slo:sli_error:ratio_rate1h", "{{slo}}")],
                "Share of bad events in the last hour. Objectives: test_submission 0.1 %, "
                "test_completion 1 %, events_delivery 0 %.",
            ),
            (
                "Error budget left (30 days)",
                "stat",
                "percentunit",
                [("slo:error_budget_remaining:ratio", "{{slo}}")],
                "1 = untouched, 0 = spent, negative = overspent.",
            ),
            (
                "Burn rate (1h and 5m)",
                "timeseries",
                "none",
                [
                    ("slo:error_budget_burn:rate1h", "{{slo}} 1h"),
                    ("slo:error_budget_burn:rate5m", "{{slo}} 5m"),
                ],
                "1 spends the budget exactly over 30 days; the page alert fires above 14.4 "
                "on both windows.",
            ),
        ],
    ),
    (
        "Traffic: how much, how fast, how many errors, per route",
        [
            (
                "Requests per second by route",
                "timeseries",
                "reqps",
                [
                    (
                        f"sum by (job, method, route) (rate(http_requests_total{{{NOT_HEALTH}}}[{RI}]))",
                        "{{job}} {{method}} {{route}}",
                    )
                ],
                "Health checks and scrapes left out.",
            ),
            (
                "Latency p95 by route",
                "timeseries",
                "s",
                [
                    (
                        "histogram_quantile(0.95, sum by (job, route, le) "
                        f"(rate(http_request_duration_seconds_bucket{{{NOT_HEALTH}}}[{RI}])))",
                        "{{job}} {{route}}",
                    )
                ],
                "The submission SLO's threshold is 200 ms at the gateway.",
            ),
            (
                "Latency p50 / p99 at the gateway",
                "timeseries",
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (route, le) (rate("
                        f'http_request_duration_seconds_bucket{{job="gateway", {NOT_HEALTH}}}[{RI}])))',
                        "p50 {{route}}",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (route, le) (rate("
                        f'http_request_duration_seconds_bucket{{job="gateway", {NOT_HEALTH}}}[{RI}])))',
                        "p99 {{route}}",
                    ),
                ],
                "",
            ),
            (
                "5xx share by service",
                "timeseries",
                "percentunit",
                [
                    (
                        f'sum by (job) (rate(http_requests_total{{status=~"5..", {NOT_HEALTH}}}[{RI}]))'
                        f" / sum by (job) (rate(http_requests_total{{{NOT_HEALTH}}}[{RI}]))",
                        "{{job}}",
                    )
                ],
                "HighErrorRatio fires above 1 % for 10 min. 503s are included (degraded "
                "dependency, honest refusal).",
            ),
            (
                "Answers by status class",
                "timeseries",
                "reqps",
                [
                    (
                        'sum by (job, status) (rate(http_requests_total{status!~"2..", '
                        f"{NOT_HEALTH}}}[{RI}]))",
                        "{{job}} {{status}}",
                    )
                ],
                "Everything that was not 2xx.",
            ),
        ],
    ),
    (
        "Availability: what is up, which breakers are open, is auth in fallback?",
        [
            (
                "Replicas up",
                "stat",
                "none",
                [('sum by (job) (up{job=~"gateway|auth|sensor|events"})', "{{job}}")],
                "Replicas answering scrapes, per service.",
            ),
            (
                "Breakers not closed",
                "timeseries",
                "none",
                [
                    (
                        'circuit_breaker_state{state!="closed"} == 1',
                        "{{job}} → {{name}} {{state}} ({{instance}})",
                    )
                ],
                "Empty when every breaker is closed. CircuitBreakerOpen fires after 5 min.",
            ),
            (
                "Calls refused by breakers",
                "timeseries",
                "ops",
                [
                    (
                        'sum by (job, name) (rate(circuit_breaker_calls_total{outcome="rejected"}'
                        f"[{RI}]))",
                        "{{job}} → {{name}}",
                    ),
                    (
                        "sum by (job, name) (rate(circuit_breaker_trips_total[5m]))",
                        "trips {{job}} → {{name}}",
                    ),
                ],
                "",
            ),
            (
                "Dependencies down",
                "timeseries",
                "none",
                [("dependency_up == 0", "{{job}} → {{name}} ({{instance}})")],
                "Cached health probes that fail.",
            ),
            (
                "Token checks by result",
                "timeseries",
                "ops",
                [
                    (
                        f"sum by (job, result) (rate(auth_token_checks_total[{RI}]))",
                        "{{job}} {{result}}",
                    )
                ],
                "fallback = checked locally against the cached JWKS (auth unreachable); "
                "AuthFallbackMode fires when it is the majority for 10 min.",
            ),
        ],
    ),
    (
        "Sensor tests: are they flowing, how long do they wait, what verdicts?",
        [
            (
                "Queue depth",
                "timeseries",
                "none",
                [("max by (state) (sensor_queue_depth)", "{{state}}")],
                "Same count in every replica (database), hence max.",
            ),
            (
                "Oldest queued test",
                "timeseries",
                "s",
                [("max(sensor_queue_oldest_age_seconds)", "oldest queued")],
                "TestQueueStale fires above 60 s, TestQueueStuck above 5 min.",
            ),
            (
                "Accepted and completed per second",
                "timeseries",
                "ops",
                [
                    (
                        f"sum by (source) (rate(sensor_tests_submitted_total[{RI}]))",
                        "accepted {{source}}",
                    ),
                    (f"sum(rate(sensor_test_completion_seconds_count[{RI}]))", "completed"),
                    (f"sum(rate(sensor_tests_failed_total[{RI}]))", "failed (no verdict)"),
                    (f"sum(rate(sensor_test_retries_total[{RI}]))", "retried"),
                ],
                "",
            ),
            (
                "Verdicts per sensor type",
                "timeseries",
                "ops",
                [
                    (
                        f"sum by (sensor_type, verdict) (rate(sensor_tests_completed_total[{RI}]))",
                        "{{sensor_type}} {{verdict}}",
                    )
                ],
                "",
            ),
            (
                "Verdicts (last hour)",
                "piechart",
                "none",
                [("sum by (verdict) (increase(sensor_test_verdicts_total[1h]))", "{{verdict}}")],
                "",
            ),
            (
                "Acceptance to verdict, processing, queue wait (p95)",
                "timeseries",
                "s",
                [
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(sensor_test_completion_seconds_bucket[{RI}])))",
                        "accepted → verdict",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(sensor_test_processing_seconds_bucket[{RI}])))",
                        "analysis",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(sensor_test_queue_wait_seconds_bucket[{RI}])))",
                        "queue wait",
                    ),
                ],
                "The completion SLO: 99 % within 5 s.",
            ),
        ],
    ),
    (
        "Events: throughput, lag, and anything stuck or dead-lettered",
        [
            (
                "Event throughput",
                "timeseries",
                "ops",
                [
                    (
                        'sum(rate(http_requests_total{job="events", route="/send-event"}'
                        f"[{RI}]))",
                        "batches in (event service)",
                    ),
                    (
                        f"sum by (path) (rate(events_journal_confirmed_total[{RI}]))",
                        "stored by consumer ({{path}})",
                    ),
                    (f"sum(rate(sensor_outbox_delivered_total[{RI}]))", "sensor outbox delivered"),
                    (
                        f"sum by (spool) (rate(spool_forwarded_total[{RI}]))",
                        "forwarded from {{spool}}",
                    ),
                ],
                "",
            ),
            (
                "Delivery lag: oldest event not yet stored",
                "timeseries",
                "s",
                [
                    ("max(events_journal_oldest_unconfirmed_age_seconds)", "event journal"),
                    ("max by (spool) (spool_oldest_age_seconds)", "spool {{spool}}"),
                ],
                "EventsUnconfirmed / SpoolStale fire above 5 min.",
            ),
            (
                "Waiting to be delivered",
                "timeseries",
                "none",
                [
                    ("sum by (spool) (spool_depth)", "spool {{spool}}"),
                    ('max(sensor_outbox_depth{status="pending"})', "sensor outbox"),
                    ("sum by (state) (events_journal_rows)", "journal {{state}}"),
                ],
                "OutboxGrowing / SpoolGrowing fire when above 100 and still growing for 10 min.",
            ),
            (
                "Dead letters",
                "timeseries",
                "none",
                [
                    ("max by (where) (events_dead_letters)", "waiting at {{where}}"),
                    (
                        "sum by (where) (increase(events_dead_lettered_total[10m]))",
                        "new at {{where}} (10 min)",
                    ),
                ],
                "Any new dead letter pages (EventsDeadLettered): the delivery SLO is 100 %.",
            ),
            (
                "Resends",
                "timeseries",
                "ops",
                [
                    (f"sum(rate(events_journal_reproduced_total[{RI}]))", "produced again"),
                    (
                        f"sum(rate(events_journal_resend_rounds_total[{RI}]))",
                        "broker found empty (resend all)",
                    ),
                ],
                "After broker loss or an unconfirmed event; harmless (dedup on the event id). "
                "Outbox retries by reason: sensor_outbox_delivery_failures_total (once any).",
            ),
        ],
    ),
]


def _panel(
    pid: int,
    title: str,
    kind: str,
    unit: str,
    targets: list[tuple[str, str]],
    desc: str,
    x: int,
    y: int,
) -> dict[str, Any]:
    width = 8 if kind in {"stat", "piechart"} else 12
    panel: dict[str, Any] = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    if kind == "stat":
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return panel


def render() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid = 1
    y = 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid += 1
        y += 1
        x = 0
        for title, kind, unit, targets, desc in row_panels:
            panel = _panel(pid, title, kind, unit, targets, desc, x, y)
            width = panel["gridPos"]["w"]
            if x + width > 24:
                x = 0
                y += 8
                panel["gridPos"]["x"] = 0
                panel["gridPos"]["y"] = y
            panels.append(panel)
            pid += 1
            x += width
        y += 8
    return {
        "uid": "sensor-backend",
        "title": "sensor-backend",
        "description": "Request rates and latency per route, breakers, queues, verdicts, "
        "event throughput and lag, and the SLOs (deploy/observability).",
        "tags": ["sensor-backend"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def text() -> str:
    return json.dumps(render(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    target = Path(__file__).parent / "grafana-dashboard.json"
    target.write_text(text())
    sys.stdout.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()

"""The console's SLO state (gateway/slo.py) from the gateway's own metrics."""

from __future__ import annotations

from sensor_backend.core.metrics import ServiceMetrics
from sensor_backend.gateway import slo

ROUTE = "/test/sensor/{sensor_type}"


def test_judge() -> None:
    assert slo.judge(0.999, None, None) == "no data"
    assert slo.judge(0.999, 0.0005, 0.5) == "ok"
    assert slo.judge(0.999, 0.002, 2.0) == "burning"
    assert slo.judge(0.999, 0.02, 20.0) == "burning fast"
    assert slo.judge(1.0, 0.0, None) == "ok"
    assert slo.judge(1.0, 0.01, None) == "burning"


def test_from_gateway_counts_submissions_only() -> None:
    metrics = ServiceMetrics("gateway")
    for _ in range(96):
        metrics.observe_request("POST", ROUTE, 202, 0.01)
    metrics.observe_request("POST", ROUTE, 503, 0.01)  # an honest 503: good
    metrics.observe_request("POST", ROUTE, 500, 0.01)  # bad
    metrics.observe_request("POST", ROUTE, 202, 0.5)  # too slow: bad
    metrics.observe_request("POST", ROUTE, 422, 0.01)  # the client's: not counted as bad
    metrics.observe_request("GET", "/tests", 500, 0.01)  # another route
    doc = slo.from_gateway(metrics.registry)
    assert doc["source"] == "gateway"
    states = {s["name"]: s for s in doc["slos"]}
    submission = states["test_submission"]
    # 1 unavailable of 99 non-4xx answers, plus 1 slow of 100 answers.
    assert abs(submission["error_ratio"] - (1 / 99 + 1 / 100)) < 1e-9
    assert submission["status"] == "burning"
    assert states["test_completion"]["status"] == "no data"
    assert states["events_delivery"]["status"] == "no data"


def test_from_gateway_without_traffic_has_no_data() -> None:
    doc = slo.from_gateway(ServiceMetrics("gateway").registry)
    assert all(s["status"] == "no data" for s in doc["slos"])

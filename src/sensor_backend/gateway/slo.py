"""The SLOs the system states about itself, and their state for the console.

``GET /console/api/slo`` answers each SLO's objective and current state:

- from Prometheus when ``GATEWAY_PROMETHEUS_URL`` is set (``sensor-backend up
  --observability`` sets it): the recording rules of deploy/observability/rules/slo.yml,
  error ratio and burn rate over the last hour and the 30-day budget left;
- otherwise from the gateway's own metrics, for the one SLO the gateway sees alone (test
  submissions), since the gateway started; the other two need the sensor and event
  services' series, so they say so instead of guessing.

The definitions here and in deploy/observability/slo_rules.py are the same three SLOs.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import APIRouter, Request

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sensor_backend.core.http_client import SessionHolder
    from sensor_backend.core.metrics import ServiceMetrics

SUBMIT_ROUTE = "/test/sensor/{sensor_type}"
SUBMIT_LATENCY_S = "0.2"
FAST_BURN = 14.4  # the page alert's burn rate over 1h (slo_rules.py)
QUERY_TIMEOUT_S = 1.5

SLOS: tuple[dict[str, Any], ...] = (
    {
        "name": "test_submission",
        "objective": 0.999,
        "description": "test submissions answered 2xx or an honest 503 within 200 ms",
    },
    {
        "name": "test_completion",
        "objective": 0.99,
        "description": "accepted tests with a verdict within 5 s",
    },
    {
        "name": "events_delivery",
        "objective": 1.0,
        "description": "accepted events delivered (none dead-lettered)",
    },
)
QUERIES = {
    "error_ratio_1h": "slo:sli_error:ratio_rate1h",
    "burn_rate_1h": "slo:error_budget_burn:rate1h",
    "budget_remaining": "slo:error_budget_remaining:ratio",
}

slo_router = APIRouter(tags=["console"])


def prime_submission_series(metrics: ServiceMetrics) -> None:
    """Create the submission route's series at zero when the gateway starts.

    A labelled series otherwise appears with its first request already counted, and
    Prometheus's ``rate`` never sees that increase: after a restart the SLO would read
    "no data" until the second burst of traffic.
    """
    metrics.requests.labels(metrics.service, "POST", SUBMIT_ROUTE, "202")
    metrics.latency.labels(metrics.service, "POST", SUBMIT_ROUTE)


def judge(objective: float, error_ratio: float | None, burn: float | None) -> str:
    """One word: ``ok``, ``burning`` (over budget), ``burning fast`` (page) or ``no data``."""
    if error_ratio is None:
        return "no data"
    budget = 1.0 - objective
    if burn is not None and burn > FAST_BURN:
        return "burning fast"
    if error_ratio > budget + 1e-12:
        return "burning"
    return "ok"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


async def _query(session: aiohttp.ClientSession, base: str, expr: str) -> dict[str, float | None]:
    """``{slo: value}`` for one instant query; empty when Prometheus does not answer."""
    try:
        async with session.get(
            f"{base.rstrip('/')}/api/v1/query",
            params={"query": expr},
            # The gateway's session does not decompress (it forwards bodies as they are).
            headers={"Accept-Encoding": "identity"},
            timeout=aiohttp.ClientTimeout(total=QUERY_TIMEOUT_S),
        ) as resp:
            doc = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("status") != "success":
        return {}
    values: dict[str, float | None] = {}
    for item in doc["data"]["result"]:
        name = item["metric"].get("slo")
        if name:
            values[name] = _finite(float(item["value"][1]))
    return values


async def from_prometheus(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    keys = list(QUERIES)
    answers = await asyncio.gather(*(_query(session, base, QUERIES[k]) for k in keys))
    reached = any(answers)
    slos = []
    for slo in SLOS:
        state: dict[str, Any] = dict(slo)
        for key, values in zip(keys, answers, strict=True):
            state[key] = values.get(slo["name"])
        state["status"] = judge(slo["objective"], state["error_ratio_1h"], state["burn_rate_1h"])
        state["window"] = "1h"
        slos.append(state)
    return {"source": "prometheus", "prometheus": base, "reachable": reached, "slos": slos}


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    """The submission route's totals from the gateway's own registry."""
    sums = {"valid": 0.0, "unavailable": 0.0, "count": 0.0, "fast": 0.0}
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if labels.get("route") != SUBMIT_ROUTE or labels.get("method") != "POST":
                continue
            if sample.name == "http_requests_total":
                status = labels.get("status", "")
                if not status.startswith("4"):
                    sums["valid"] += sample.value
                if status.startswith("5") and status != "503":
                    sums["unavailable"] += sample.value
            elif sample.name == "http_request_duration_seconds_count":
                sums["count"] += sample.value
            elif (
                sample.name == "http_request_duration_seconds_bucket"
                and labels.get("le") == SUBMIT_LATENCY_S
            ):
                sums["fast"] += sample.value
    return sums


def from_gateway(registry: CollectorRegistry) -> dict[str, Any]:
    sums = _samples(registry)
    ratio: float | None = None
    if sums["valid"] > 0 and sums["count"] > 0:
        ratio = sums["unavailable"] / sums["valid"] + (sums["count"] - sums["fast"]) / sums["count"]
    slos = []
    for slo in SLOS:
        state: dict[str, Any] = dict(slo)
        if slo["name"] == "test_submission":
            state["error_ratio"] = ratio
            state["requests"] = sums["count"]
            state["status"] = judge(slo["objective"], ratio, None)
            state["window"] = "since the gateway started"
        else:
            state["error_ratio"] = None
            state["status"] = "no data"
            state["window"] = "needs Prometheus (sensor-backend up --observability)"
        slos.append(state)
    return {"source": "gateway", "slos": slos}


@slo_router.get("/console/api/slo", summary="Each SLO's objective and current state")
async def console_slo(request: Request) -> dict[str, Any]:
    base: str = getattr(request.app.state, "prometheus_url", "") or ""
    if base:
        http: SessionHolder = request.app.state.http
        return await from_prometheus(http.session, base)
    registry: CollectorRegistry = request.app.state.gateway.ctx.metrics.registry
    return from_gateway(registry)

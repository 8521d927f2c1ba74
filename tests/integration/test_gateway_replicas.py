"""Load balancing over three real sensor replicas while one is killed mid-run."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from harness import Harness, wait_for

pytestmark = pytest.mark.integration


def test_a_replica_killed_mid_run_costs_no_idempotent_request():
    """GETs keep succeeding while sensor-2 is SIGKILLed; it is ejected, then readmitted."""
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=39000,
        replicas={"sensor": 3},
        env={"GATEWAY_HEALTH_PROBE_INTERVAL_S": "0.5"},
    ).start()
    try:
        gateway = harness.url("gateway")
        headers = harness.headers()
        statuses: list[int | None] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(headers=headers, timeout=10) as client:
                while not stop.is_set():
                    try:
                        statuses.append(client.get(f"{gateway}/sensor-types").status_code)
                    except httpx.HTTPError:
                        statuses.append(None)

        def replicas() -> list[dict]:
            return httpx.get(f"{gateway}/health").json()["upstreams"]["sensor"]["replicas"]

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        try:
            time.sleep(2)
            killed_url = harness.url("sensor-2")
            harness.kill("sensor-2")
            assert wait_for(
                lambda: any(r["url"] == killed_url and r["ejected"] for r in replicas()), 10
            )
            time.sleep(2)
            harness.restart("sensor-2")
            assert wait_for(lambda: not any(r["ejected"] for r in replicas()), 30), (
                "the restarted replica was not readmitted"
            )
            time.sleep(2)
        finally:
            stop.set()
            thread.join(timeout=15)
        served = {r["url"]: r["requests"] for r in replicas()}
        assert len(statuses) > 50
        assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
        assert all(count > 0 for count in served.values()), served
        assert httpx.get(f"{gateway}/health").json()["services"]["sensor"]["replicas_up"] == 3
    finally:
        harness.close()

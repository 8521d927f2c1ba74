"""SIGTERM to every service process under traffic (a rolling update): nothing accepted is lost.

Each service (auth, a sensor replica, the event service, the gateway) is stopped with
SIGTERM, as an orchestrator does, while the chaos test's load generator keeps sending
authenticated sensor tests and events through the gateway, then started again. At the end
every accepted test has finished and every accepted event was processed exactly once.
"""

from __future__ import annotations

import time

import httpx
import pytest
from harness import Harness, logged_event_ids, wait_for
from test_chaos import Load

pytestmark = pytest.mark.integration

ROLLING = ("auth", "sensor-2", "events", "gateway", "sensor")


def _roll(harness: Harness, load: Load) -> tuple[float, float]:
    """SIGTERM and restart each service in turn; returns the gateway's downtime."""
    gateway_down = (0.0, 0.0)
    thread = load.run_in_thread()
    try:
        time.sleep(3)
        for name in ROLLING:
            stopped_at = time.monotonic()
            harness.loop.run_until_complete(harness.supervisor.stop(name))  # SIGTERM
            exit_code = harness.supervisor.managed[name].state.exit_code
            # uvicorn re-raises SIGTERM after its graceful shutdown; SIGKILL would be -9.
            assert exit_code in {0, -15}, f"{name} did not shut down gracefully: {exit_code}"
            harness.restart(name)
            if name == "gateway":
                gateway_down = (stopped_at, time.monotonic() + 1)
            time.sleep(2)
    finally:
        load.stop.set()
        thread.join(timeout=30)
    return gateway_down


def _logged(gateway: str, headers: dict[str, str]) -> list[str]:
    return logged_event_ids(gateway, headers, "chaos.event")


def test_sigterm_under_traffic_loses_nothing():
    """Stop and restart each service with SIGTERM under load: every accepted request kept."""
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=38000,
        replicas={"sensor": 2},
        env={"GATEWAY_HTTP_TOTAL_TIMEOUT_S": "2.0", "GATEWAY_HEALTH_PROBE_INTERVAL_S": "0.5"},
    ).start()
    try:
        gateway = harness.url("gateway")
        load = Load(gateway, harness.admin_token())
        gateway_down = _roll(harness, load)
        headers = {"Authorization": f"Bearer {harness.admin_token()}"}
        tests = [
            o.body["test_id"]
            for o in load.outcomes
            if o.kind == "test" and o.status == 202 and o.body
        ]
        events = {o.key for o in load.outcomes if o.kind == "event" and o.status in {201, 202}}
        assert tests
        assert events

        def unfinished() -> list[str]:
            return [
                t
                for t in tests
                if httpx.get(f"{gateway}/test/{t}", headers=headers, timeout=10)
                .json()
                .get("status")
                not in {"completed", "failed"}
            ]

        assert wait_for(lambda: not unfinished(), 90, interval=2), unfinished()[:5]
        assert wait_for(lambda: events <= set(_logged(gateway, headers)), 90, interval=2)
        ids = _logged(gateway, headers)
        assert len(ids) == len(set(ids)), "an event was counted twice"
        statuses = {o.status for o in load.outcomes}
        assert not {s for s in statuses if s is not None and s >= 500 and s != 503}, statuses
        stray = [
            o
            for o in load.outcomes
            if o.status is None and not gateway_down[0] - 1 <= o.started <= gateway_down[1]
        ]
        assert not stray, f"{len(stray)} connection errors while the gateway was up"
    finally:
        harness.close()

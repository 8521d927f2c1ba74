"""`sensor-backend drill` against systems started by the launcher.

The drills hold on a fresh `up`, and fail loudly when a resilience feature is switched off
on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from harness import free_offset

pytestmark = pytest.mark.integration


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "KAFKA_"))}
    return subprocess.run(
        [sys.executable, "-m", "sensor_backend.launcher.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def system(offset_start: int, env: dict[str, str] | None = None):
    data_dir = Path(tempfile.mkdtemp(prefix="drill-"))
    offset = free_offset(offset_start)
    started = cli(
        "up", "--detach", "--data-dir", str(data_dir), "--port-offset", str(offset), env=env
    )
    assert started.returncode == 0, started.stdout + started.stderr
    return data_dir


def test_every_drill_holds_on_a_fresh_system():
    """`drill all` holds on a fresh system, exit code 0.

    It kills auth, events, PostgreSQL, sensor and the broker and freezes sensor; every
    expectation of the original notes holds.
    """
    data_dir = system(50000)
    try:
        result = cli("drill", "all", "--data-dir", str(data_dir))
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        for name in ("auth", "events", "database", "health", "broker", "freeze"):
            assert f"drill {name}: held" in output
        assert "✗" not in output
    finally:
        cli("down", "--data-dir", str(data_dir))


def test_database_drill_holds_five_times_in_a_row():
    """Five PostgreSQL outages back to back: each time tests are accepted again within 5 s.

    Recovery must not depend on the outage history (issue 12 saw the gateway's breaker
    trip 150 times and wait 300 s after repeated outages), and no breaker is reset by hand.
    """
    data_dir = system(54000)
    try:
        result = cli("drill", "database", "--repeat", "5", "--data-dir", str(data_dir))
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        for round_ in range(1, 6):
            assert f"drill database #{round_}: held" in output, output
        assert output.count("✓ tests are accepted again within 5 s of PostgreSQL answering") == 5
        assert "✗" not in output
    finally:
        cli("down", "--data-dir", str(data_dir))


def test_a_drill_fails_when_its_resilience_feature_is_off():
    """With the JWT fallback off (AUTH_FALLBACK=false) the auth drill fails and says why.

    It names the expectation that broke and exits non-zero.
    """
    data_dir = system(52000, env={"AUTH_FALLBACK": "false"})
    try:
        result = cli("drill", "auth", "--data-dir", str(data_dir))
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "drill auth: FAILED" in output
        assert "✗ a sensor test is accepted with auth down (202)" in output
        assert "expectations broken in: auth" in output
    finally:
        cli("down", "--data-dir", str(data_dir))


def test_drill_without_a_running_system_says_so():
    """No system running: a clear message and exit code 2."""
    result = cli("drill", "auth", "--data-dir", tempfile.mkdtemp(prefix="drill-empty-"))
    assert result.returncode == 2
    assert "no running system" in result.stderr

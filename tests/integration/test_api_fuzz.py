"""schemathesis against every service's OpenAPI, with a valid token.

No 5xx, no response that breaks its own schema. Real processes (the harness), the
schemathesis CLI (its pytest plugin does not support pytest 9), a bounded number of
examples per operation, one fixed seed so a failure reproduces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import Harness

pytestmark = pytest.mark.integration

REPORTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "schemathesis"
# Bounded for CI on 2 cores: enough to find a 500 in a parser, not a soak test.
MAX_EXAMPLES = "15"


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "sensor", "events", "gateway"},
        offset_start=36000,
        # Fuzzed logins must not lock the admin out of the rest of the run.
        env={"AUTH_LOGIN_MAX_FAILURES": "100000", "AUTH_LOGIN_MAX_CLIENT_FAILURES": "100000"},
    )
    yield harness.start()
    harness.close()


@pytest.mark.parametrize("service", ["auth", "sensor", "events", "gateway"])
def test_schemathesis_finds_no_server_error(system, service):
    """Generated requests (valid and invalid) never get a 5xx or break the declared schema."""
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    report = REPORTS / f"{service}.xml"
    REPORTS.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            cli,
            "run",
            f"{system.url(service)}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "20261125",
            "--header",
            f"Authorization: Bearer {system.admin_token()}",
            "--request-timeout",
            "15",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

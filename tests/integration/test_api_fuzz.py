"""schemathesis ``--checks all`` against every service's OpenAPI and the gateway's.

Every check: no 5xx, every status and body as documented, schema-valid requests accepted
and schema-invalid ones refused, 405 with a matching ``Allow`` for undocumented methods,
auth enforced where the schema says so. The few per-operation exceptions, where JSON
Schema cannot express a validation rule, are in ``schemathesis.toml`` with the reason.

Real processes (the harness), the schemathesis CLI (its pytest plugin does not support
pytest 9), a bounded number of examples per operation and one fixed seed, so a failure
reproduces (``st replay <id>`` from the printed report).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_PASSWORD, Harness

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"
REPORTS = HERE.parents[1] / "test-artifacts" / "schemathesis"
# Bounded for CI on 2 cores (the whole file stays under about 3 minutes): enough to find
# a 500 in a parser or a status the document does not list, not a soak test.
MAX_EXAMPLES = "15"
SEED = "20261125"
# POST /revoke revokes the token it is called with: it runs on its own, with its own
# token, so it cannot turn every later request of the run into a 401.
REVOKE = r"/revoke$"
RUNS = {
    "auth": ("auth", ["--exclude-path-regex", REVOKE]),
    "auth-revoke": ("auth", ["--include-path-regex", REVOKE]),
    "sensor": ("sensor", []),
    "events": ("events", []),
    "gateway": ("gateway", ["--exclude-path-regex", REVOKE]),
    "gateway-revoke": ("gateway", ["--include-path-regex", REVOKE]),
}


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


def fresh_admin_token(system: Harness) -> str:
    """A token of its own per run: a run may revoke the one it was given."""
    response = httpx.post(
        f"{system.url('auth')}/token",
        data={"username": "admin", "password": ADMIN_PASSWORD},
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


@pytest.mark.parametrize("run", list(RUNS))
def test_schemathesis_all_checks_pass(system, run):
    """Generated requests (valid and invalid) pass every schemathesis check."""
    service, selection = RUNS[run]
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    report = REPORTS / f"{run}.xml"
    REPORTS.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            cli,
            "--config-file",
            str(CONFIG),
            "run",
            f"{system.url(service)}/openapi.json",
            "--checks",
            "all",
            *selection,
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--header",
            f"Authorization: Bearer {fresh_admin_token(system)}",
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
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]

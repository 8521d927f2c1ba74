"""A plain install works: what the installed commands import is a runtime dependency.

The wheel is built from this checkout and installed into a fresh virtual environment
without the dev extras, as a user's `pip install sensor-backend` would; then the commands a
user runs first are started. A module in src/ importing a dev-only package (httpx once, in
launcher/drills.py) makes this fail with the ImportError.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel and its declared dependencies."""
    where = tmp_path_factory.mktemp("plain-install")
    wheels = where / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    env_dir = where / "venv"
    venv.create(env_dir, with_pip=True)
    wheel = next(wheels.glob("sensor_backend-*.whl"))
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        timeout=600,
    )
    return env_dir


@pytest.mark.parametrize(
    "command",
    [
        ["sensor-backend", "--help"],
        ["sensor-backend", "drill", "--help"],
        ["sensor-backend", "status", "--help"],
        ["sensor-auth-admin", "--help"],
    ],
    ids=" ".join,
)
def test_installed_commands_start_without_dev_extras(plain_venv: Path, command: list[str]):
    """Each installed command starts and prints its help (exit 0) in a plain install."""
    result = subprocess.run(
        [str(plain_venv / "bin" / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage" in result.stdout.lower()


def test_every_service_module_imports_without_dev_extras(plain_venv: Path):
    """Every module of the package imports in the plain install (no dev-only import)."""
    script = (
        "import importlib, pkgutil, sensor_backend\n"
        "for m in pkgutil.walk_packages(sensor_backend.__path__, 'sensor_backend.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [str(plain_venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"

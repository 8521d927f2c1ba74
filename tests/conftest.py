"""Shared fixtures: one real embedded PostgreSQL server per test session."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from sensor_backend.launcher import embedded_postgres

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


def _server_tmpdir(name: str) -> Path:
    # Not tmp_path_factory: as root the server runs as another user, which must traverse
    # every parent directory, and each new pytest session chmods /tmp/pytest-of-root back
    # to 0700 (breaking a concurrent session's server on restart).
    return Path(tempfile.mkdtemp(prefix=f"sensor-backend-{name}-"))


@pytest.fixture(scope="session")
def postgres_layout() -> Iterator[embedded_postgres.PostgresLayout]:
    """Start one embedded PostgreSQL for the session; yield its layout (DSN, port, dirs)."""
    layout = embedded_postgres.PostgresLayout(
        data_dir=_server_tmpdir("pg"), port=embedded_postgres.find_free_port()
    )
    log_file = layout.default_log_file
    process = embedded_postgres.start(layout, log_file)
    try:
        embedded_postgres.wait_ready_blocking(layout.dsn, 30.0, process=process, log_file=log_file)
        yield layout
    finally:
        embedded_postgres.stop(process)
        shutil.rmtree(layout.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn(postgres_layout: embedded_postgres.PostgresLayout) -> str:
    """DSN of the session's PostgreSQL (superuser, database ``postgres``)."""
    return postgres_layout.dsn


@pytest.fixture
async def fresh_db_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A new, empty database on the session server for one test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield f"{postgres_dsn.rsplit('/', 1)[0]}/{name}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()

"""Migrations and the Database wrapper against a real PostgreSQL (no mocks)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest
from harness import eventually

from sensor_backend.core.breaker import BreakerConfig, BreakerState, CircuitBreaker
from sensor_backend.core.db import Database, DatabaseUnavailable
from sensor_backend.core.migrations import (
    MigrationError,
    advisory_lock_key,
    apply_migrations,
    load_migrations,
)
from sensor_backend.launcher import embedded_postgres

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent / "migrations_fixture"
NAMES = ["0001_create_items", "0002_add_item_created_at", "0003_seed_items"]
SCHEMA = "svc"  # SQL in this file spells it out literally


async def _applied_rows(conn) -> list[tuple[int, str, str]]:
    rows = await conn.fetch(
        "SELECT version, name, checksum FROM svc.schema_migrations ORDER BY version"
    )
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


def _copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(FIXTURE, target)
    return target


# ---------------------------------------------------------------- migrations


async def test_migrations_apply_in_order_and_are_recorded(fresh_db_dsn):
    """All files apply in version order and land in schema_migrations with checksums."""
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        applied = await apply_migrations(conn, schema=SCHEMA, migrations=FIXTURE)
        assert applied == NAMES
        expected = [(m.version, m.name, m.checksum) for m in load_migrations(FIXTURE)]
        assert await _applied_rows(conn) == expected
        runs = await conn.fetch("SELECT version FROM svc.migration_runs ORDER BY version")
        assert [r["version"] for r in runs] == [1, 2, 3]
        # 0002's column exists, so 0003 ran after it; unqualified names went into the schema.
        assert await conn.fetchval("SELECT count(*) FROM svc.items") == 1
        assert await conn.fetchval("SELECT to_regclass('public.items')") is None
    finally:
        await conn.close()


async def test_rerun_applies_nothing(fresh_db_dsn):
    """A second run finds every migration applied and changes nothing."""
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        assert await apply_migrations(conn, schema=SCHEMA, migrations=FIXTURE) == NAMES
        before = await _applied_rows(conn)
        assert await apply_migrations(conn, schema=SCHEMA, migrations=FIXTURE) == []
        assert await _applied_rows(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM svc.migration_runs") == 3
    finally:
        await conn.close()


async def test_concurrent_appliers_apply_each_migration_once(fresh_db_dsn):
    """Five replicas migrating at once apply every migration exactly once."""
    conns = [await asyncpg.connect(fresh_db_dsn) for _ in range(5)]
    try:
        results = await asyncio.gather(
            *(apply_migrations(c, schema=SCHEMA, migrations=FIXTURE) for c in conns)
        )
        assert sorted(name for result in results for name in result) == NAMES
        assert sum(1 for result in results if result) == 1  # one winner applies them all
        runs = await conns[0].fetch("SELECT version FROM svc.migration_runs")
        assert sorted(r["version"] for r in runs) == [1, 2, 3]
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def test_changed_checksum_is_refused(fresh_db_dsn, tmp_path):
    """Editing an applied migration refuses to migrate and applies nothing new."""
    migrations = _copy_fixture(tmp_path)
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        await apply_migrations(conn, schema=SCHEMA, migrations=migrations)
        before = await _applied_rows(conn)
        edited = migrations / "0002_add_item_created_at.sql"
        edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
        (migrations / "0004_more.sql").write_text("CREATE TABLE more (id int);")
        with pytest.raises(MigrationError, match="edited"):
            await apply_migrations(conn, schema=SCHEMA, migrations=migrations)
        assert await _applied_rows(conn) == before
        assert await conn.fetchval("SELECT to_regclass('svc.more')") is None
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": "SELECT 1;", "0003_c.sql": "SELECT 1;"}, "contiguous"),
        ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}, "duplicate"),
        ({"0002_b.sql": "SELECT 1;"}, "contiguous"),
        ({"1_a.sql": "SELECT 1;"}, "does not match"),
    ],
)
async def test_inconsistent_migration_files_are_refused(fresh_db_dsn, tmp_path, files, message):
    """Gaps, duplicate versions and badly named files refuse to migrate."""
    for name, sql in files.items():
        (tmp_path / name).write_text(sql)
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        with pytest.raises(MigrationError, match=message):
            await apply_migrations(conn, schema=SCHEMA, migrations=tmp_path)
    finally:
        await conn.close()


async def test_missing_migration_directory_is_refused(fresh_db_dsn, tmp_path):
    """A migrations directory that is not there (packaging bug) fails loudly."""
    with pytest.raises(MigrationError, match="does not exist"):
        Database(dsn=fresh_db_dsn, schema=SCHEMA, migrations=tmp_path / "missing")


async def test_failing_migration_rolls_back_all_pending(fresh_db_dsn, tmp_path):
    """A migration whose SQL fails is a MigrationError and no pending migration sticks."""
    migrations = _copy_fixture(tmp_path)
    (migrations / "0004_broken.sql").write_text("CREATE TABLE broken (id int); SELEC 1;")
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        with pytest.raises(MigrationError, match="0004_broken"):
            await apply_migrations(conn, schema=SCHEMA, migrations=migrations)
        assert await conn.fetchval("SELECT to_regnamespace('svc')") is None
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "schema", ["", "Svc", "svc; DROP TABLE x", "1svc", "pg_svc", "svc-x", "s" * 64, 'svc"']
)
async def test_invalid_schema_name_is_refused(fresh_db_dsn, schema):
    """Schema names that are not plain lowercase identifiers never reach SQL."""
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        with pytest.raises(ValueError, match="invalid schema name"):
            await apply_migrations(conn, schema=schema, migrations=FIXTURE)
    finally:
        await conn.close()
    with pytest.raises(ValueError, match="invalid schema name"):
        Database(dsn=fresh_db_dsn, schema=schema, migrations=FIXTURE)


def test_advisory_lock_key_is_stable():
    """The lock key is a fixed signed 64-bit value, the same in every process."""
    key = advisory_lock_key("auth")
    assert key == advisory_lock_key("auth") != advisory_lock_key("sensor")
    assert -(2**63) <= key < 2**63


# ---------------------------------------------------------------- Database


async def test_run_uses_schema_search_path(fresh_db_dsn):
    """Database.run sees the schema's tables unqualified; SQL errors pass through."""
    breaker = CircuitBreaker("db-test", BreakerConfig(consecutive_failures=1))
    db = Database(dsn=fresh_db_dsn, schema=SCHEMA, migrations=FIXTURE, breaker=breaker)
    await db.start()
    try:
        await db.wait_until_up(10.0)
        assert db.status == "up"
        assert db.applied_migrations == NAMES
        assert await db.run(lambda c: c.fetchval("SELECT current_schema()")) == SCHEMA
        assert await db.run(lambda c: c.fetchval("SELECT name FROM items")) == "seed"

        with pytest.raises(asyncpg.UniqueViolationError):
            await db.run(lambda c: c.execute("INSERT INTO items (name) VALUES ('seed')"))

        async def insert_then_fail(conn):
            await conn.execute("INSERT INTO items (name) VALUES ('rolled back')")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await db.run(insert_then_fail, transaction=True)
        assert await db.run(lambda c: c.fetchval("SELECT count(*) FROM items")) == 1

        assert 0 < await db.ping() < 1.0
        # SQL and caller errors are not outages: the strict breaker never opened.
        assert breaker.state is BreakerState.CLOSED
        assert breaker.failure_count == 0
    finally:
        await db.stop()
    assert db.status == "down"


async def test_database_starts_while_postgres_is_down():
    """With nothing listening, start() returns, status is not up and run fails fast."""
    port = embedded_postgres.find_free_port()
    db = Database(
        dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
        schema=SCHEMA,
        migrations=FIXTURE,
        connect_timeout_s=0.5,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
    )
    await db.start()
    try:
        assert await eventually(lambda: db.last_error is not None)  # it tried, and failed
        assert db.status in {"connecting", "down"}
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as info:
            await db.run(lambda c: c.fetchval("SELECT 1"))
        assert time.monotonic() - started < 0.5  # no connect attempt on the request path
        assert info.value.retry_after_s >= 1.0
        with pytest.raises(DatabaseUnavailable):
            await db.ping()
        with pytest.raises(TimeoutError):
            await db.wait_until_up(0.2)
        assert db.status != "up"  # still retrying in the background, no crash
    finally:
        await db.stop()
    assert db.status == "down"


async def test_edited_migration_keeps_database_down(fresh_db_dsn, tmp_path):
    """A refused migration is fatal for the connect task: down, with the error exposed."""
    migrations = _copy_fixture(tmp_path)
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        await apply_migrations(conn, schema=SCHEMA, migrations=migrations)
    finally:
        await conn.close()
    first = migrations / "0001_create_items.sql"
    first.write_text(first.read_text().replace("NOT NULL UNIQUE", "UNIQUE"))
    db = Database(dsn=fresh_db_dsn, schema=SCHEMA, migrations=migrations)
    await db.start()
    try:
        with pytest.raises(MigrationError):
            await db.wait_until_up(10.0)
        assert db.status == "down"
        assert db.fatal_error is not None
        with pytest.raises(DatabaseUnavailable):
            await db.run(lambda c: c.fetchval("SELECT 1"))
    finally:
        await db.stop()


class OwnServer:
    """A dedicated embedded PostgreSQL a test may kill and restart on the same data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.layout = embedded_postgres.PostgresLayout(
            data_dir=data_dir, port=embedded_postgres.find_free_port()
        )
        self.process = None

    async def start(self) -> None:
        self.process = embedded_postgres.start(self.layout, self.layout.default_log_file)
        await embedded_postgres.wait_ready(
            self.layout.dsn,
            30.0,
            process=self.process,
            log_file=self.layout.default_log_file,
        )

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would, and wait for its children to go."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        embedded_postgres.kill_leftovers(self.process)

    def stop(self) -> None:
        if self.process is not None:
            embedded_postgres.stop(self.process)


@pytest.fixture
def own_server():
    """A per-test PostgreSQL server (not started yet), removed afterwards."""
    server = OwnServer(Path(tempfile.mkdtemp(prefix="sensor-backend-own-pg-")))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.layout.data_dir, ignore_errors=True)


async def test_database_connects_once_postgres_comes_up(own_server):
    """A Database started before its server connects and migrates when the server appears."""
    db = Database(
        dsn=own_server.layout.dsn,
        schema=SCHEMA,
        migrations=FIXTURE,
        connect_timeout_s=0.5,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
    )
    await db.start()
    try:
        assert await eventually(lambda: db.last_error is not None)  # it tried, and failed
        assert db.status != "up"
        await own_server.start()
        await db.wait_until_up(10.0)
        assert db.status == "up"
        assert db.applied_migrations == NAMES
        assert await db.run(lambda c: c.fetchval("SELECT name FROM items")) == "seed"
    finally:
        await db.stop()


async def test_database_recovers_after_postgres_is_killed(own_server):
    """A SIGKILLed server makes run unavailable; after a restart the same pool recovers."""
    await own_server.start()
    breaker = CircuitBreaker(
        "database",
        BreakerConfig(
            consecutive_failures=2, open_wait_s=0.2, max_open_wait_s=0.4, half_open_max_wait_s=1
        ),
    )
    db = Database(
        dsn=own_server.layout.dsn,
        schema=SCHEMA,
        migrations=FIXTURE,
        min_size=2,
        connect_timeout_s=0.5,
        breaker=breaker,
    )
    await db.start()
    try:
        await db.wait_until_up(10.0)
        await db.run(
            lambda c: c.execute("INSERT INTO items (name) VALUES ('before crash')"),
            transaction=True,
        )

        own_server.kill()
        for _ in range(4):
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                await db.run(lambda c: c.fetchval("SELECT 1"))
            assert time.monotonic() - started < 1.0
        assert breaker.state is BreakerState.OPEN
        assert db.last_error is not None

        await own_server.start()  # same data directory and port

        async def items() -> list | None:
            try:
                return await db.run(lambda c: c.fetch("SELECT name FROM items ORDER BY id"))
            except DatabaseUnavailable:
                return None

        names = await eventually(items, 10.0, interval=0.05)
        assert names is not None, "pool did not recover"
        # The committed row survived the SIGKILL (fsync on): accepted means durable.
        assert [r["name"] for r in names] == ["seed", "before crash"]
        assert db.status == "up"
        assert db.last_error is None
        assert breaker.state is BreakerState.CLOSED
    finally:
        await db.stop()

"""Migrating a sensor database that already holds readings (migrations 0005 to 0007).

Readings written before migration 0006 live in ``test_readings`` as whole bytea values,
pglz-compressed when written before 0005. 0006 moves them into 8,000-byte blocks; the
readings must come back bit-exact through both the worker's path (``read_arrays``) and
the ``test_readings`` view, an old replica's INSERT into the view (a rolling upgrade)
must still store its readings, and a block gone missing must be an error, never a
shorter, misaligned array.
"""

from __future__ import annotations

import uuid
from importlib.resources import files

import asyncpg
import numpy as np
import pytest

from sensor_backend.sensor.reading_blocks import read_arrays

MIGRATIONS = files("sensor_backend.sensor").joinpath("migrations")
INSERT_TEST = (
    "INSERT INTO tests (id, sensor_type, device_id, source, spec, params, n_readings,"
    " submitted_by, request_hash, event_id, max_attempts)"
    " VALUES ($1, 'temperature', 'rig-1', 'readings', '{}', '{}', $2, 'u', '\\x00', $3, 3)"
)
OLD_INSERT = (
    "INSERT INTO test_readings (test_id, values_f64, timestamps_f64, reference_f64)"
    " VALUES ($1, $2, $3, $4)"
)


def migration(prefix: str) -> str:
    (found,) = [m for m in MIGRATIONS.iterdir() if m.name.startswith(prefix)]
    return found.read_text()


async def add_test(
    conn: asyncpg.Connection, values: np.ndarray, times: np.ndarray | None
) -> uuid.UUID:
    test_id = uuid.uuid4()
    await conn.execute(INSERT_TEST, test_id, values.size, uuid.uuid4())
    stamps = None if times is None else times.tobytes()
    await conn.execute(OLD_INSERT, test_id, values.tobytes(), stamps, None)
    return test_id


async def test_existing_readings_survive_the_move_to_blocks(fresh_db_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_db_dsn)
    try:
        await conn.execute("CREATE SCHEMA sensor; SET search_path = sensor, public")
        for prefix in ("0001", "0002", "0003", "0004"):
            await conn.execute(migration(prefix))
        rng = np.random.default_rng(7)
        written: dict[uuid.UUID, tuple[np.ndarray, np.ndarray | None]] = {}
        # Rounded values compress well: stored pglz-compressed, as before migration 0005.
        for n, timed in ((300_000, True), (1000, False), (1001, True), (1, True)):
            values = np.round(20 + rng.normal(0, 0.1, n), 2)
            times = np.arange(n, dtype=np.float64) if timed else None
            written[await add_test(conn, values, times)] = (values, times)
        stored = await conn.fetchval("SELECT sum(pg_column_size(values_f64)) FROM test_readings")
        assert stored < 8 * 302_002 / 2, "the old rows are not compressed: nothing is tested"
        await conn.execute(migration("0005"))
        async with conn.transaction():
            for prefix in ("0006", "0007"):
                await conn.execute(migration(prefix))

        for test_id, (values, times) in written.items():
            got_values, got_times, got_reference = await read_arrays(conn, test_id)
            assert np.array_equal(got_values, values)
            assert got_reference is None
            if times is None:
                assert got_times is None
            else:
                assert np.array_equal(got_times, times)
            row = await conn.fetchrow("SELECT * FROM test_readings WHERE test_id = $1", test_id)
            assert np.array_equal(np.frombuffer(row["values_f64"]), values)

        # An old replica during a rolling upgrade still inserts into test_readings.
        values = np.arange(2500, dtype=np.float64)
        test_id = await add_test(conn, values, values + 0.5)
        got_values, got_times, _ = await read_arrays(conn, test_id)
        assert np.array_equal(got_values, values)
        assert np.array_equal(got_times, values + 0.5)
        blocks = await conn.fetchval(
            "SELECT count(*) FROM test_reading_blocks WHERE test_id = $1", test_id
        )
        assert blocks == 6  # 2 series of 20,000 bytes: 8,000 + 8,000 + 4,000

        # A missing middle block is refused, never returned as a shorter array.
        await conn.execute(
            "DELETE FROM test_reading_blocks WHERE test_id = $1 AND series = 0 AND block = 1",
            test_id,
        )
        with pytest.raises(asyncpg.DataCorruptedError, match="incomplete"):
            await conn.fetchrow("SELECT * FROM test_readings WHERE test_id = $1", test_id)
        # ... and so is a lost last block (the series would only be shorter) ...
        await conn.execute(
            "UPDATE test_reading_blocks SET block = 1"
            " WHERE test_id = $1 AND series = 0 AND block = 2",
            test_id,
        )
        with pytest.raises(asyncpg.DataCorruptedError, match="incomplete"):
            await conn.fetchrow("SELECT * FROM test_readings WHERE test_id = $1", test_id)
        # ... and a short block before the last one.
        test_id = await add_test(conn, values, None)
        await conn.execute(
            "UPDATE test_reading_blocks SET data = substring(data FROM 1 FOR 100)"
            " WHERE test_id = $1 AND series = 0 AND block = 0",
            test_id,
        )
        with pytest.raises(asyncpg.DataCorruptedError, match="incomplete"):
            await conn.fetchrow("SELECT * FROM test_readings WHERE test_id = $1", test_id)
    finally:
        await conn.close()

"""SQL for accepted tests: submitting (with Idempotency-Key), reading and listing.

The queue side of the same table (claim, lease, completion) is in :mod:`.jobs`. Readings
travel as little-endian float64 ``bytea`` (:func:`pack` / :func:`unpack`): a million
readings is 8 MB per array, written and read without any per-number work. They are
written by ``COPY`` as blocks of 1,000 readings (:func:`blocks`, migration 0006: a third
to a half of the server's work of one TOASTed value per array) and read back whole
through the ``test_readings`` view.

Readings just stored are also handed to this process's own workers (:data:`HANDOFF`), so
the replica that accepted a test and claims it next does not read 24 MB back from the
database it has just written them to (issue 14: 30-50 ms of a million-reading test).
The queue is untouched by it: a test is still claimed through its row and lease, by any
replica; one that finds nothing here reads the database as before.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sensor_backend.core.sql import newest_first
from sensor_backend.sensor.models import InvalidRequestError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from numpy.typing import NDArray

    from sensor_backend.core.db import Connection, Database

F64 = np.dtype("<f8")

SUMMARY_COLUMNS = (
    "t.id, t.seq, t.sensor_type, t.device_id, t.source, t.n_readings, t.status, t.verdict,"
    " t.attempts, t.max_attempts, t.created_at, t.started_at, t.finished_at, t.processing_ms,"
    " t.error, t.event_id"
)
DETAIL_COLUMNS = (
    f"{SUMMARY_COLUMNS}, t.params, t.spec, t.result, t.last_error, t.claimed_by, t.traceparent,"
    " o.status AS event_status, o.attempts AS event_attempts, o.sent_at AS event_sent_at,"
    " o.last_error AS event_error"
)


def pack(array: NDArray[np.float64] | None) -> bytes | None:
    return None if array is None else array.astype(F64, copy=False).tobytes()


def unpack(raw: bytes | None) -> NDArray[np.float64] | None:
    return None if raw is None else np.frombuffer(raw, dtype=F64)


StoredArrays = tuple[bytes, bytes | None, bytes | None]  # values, timestamps, reference
# Rows of test_reading_blocks (migration 0006): 1,000 float64 each, so that a row fits in
# a page and is never TOASTed; ``series`` is the position in `StoredArrays`.
BLOCK_BYTES = 8000
BLOCK_COLUMNS = ("test_id", "series", "block", "data")


def blocks(
    test_id: uuid.UUID, arrays: StoredArrays
) -> list[tuple[uuid.UUID, int, int, memoryview]]:
    """The rows of ``test_reading_blocks`` for a test's packed arrays (views, no copies)."""
    rows = []
    for series, raw in enumerate(arrays):
        if raw is None:
            continue
        view = memoryview(raw)
        starts = range(0, max(len(raw), 1), BLOCK_BYTES)
        rows += [(test_id, series, n, view[at : at + BLOCK_BYTES]) for n, at in enumerate(starts)]
    return rows


class ReadingsMissingError(LookupError):
    """A test's stored readings are gone or do not fit together: no retry will find them."""


class Handoff:
    """The packed readings of tests this process stored, until one of its workers takes them.

    Bounded by bytes, oldest dropped first: a test claimed by another replica, or waiting
    behind a long queue, just falls out and is read from the database when claimed. An
    entry is the very ``bytea`` the INSERT sent, so the analysis sees the same float64
    values either way; it is added inside the insert transaction (its row is not visible
    to any claim before COMMIT) and removed again if that transaction fails.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[uuid.UUID, StoredArrays] = OrderedDict()
        self._size = 0  # only ever used on the event loop: no lock
        # Told of each test as it is being stored (the worker pool analyses it meanwhile).
        self.listener: Callable[[NewTest], None] | None = None
        # Off in a process without workers (SENSOR_WORKERS=0): nothing would ever take them.
        self.enabled = True

    def put(self, test_id: uuid.UUID, arrays: StoredArrays, *, test: NewTest | None = None) -> None:
        if not self.enabled:
            return
        size = sum(len(a) for a in arrays if a is not None)
        if test is not None and self.listener is not None:
            self.listener(test)
        if size > self.max_bytes:
            return
        self._drop(test_id)
        self._entries[test_id] = arrays
        self._size += size
        while self._size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def take(self, test_id: uuid.UUID) -> StoredArrays | None:
        arrays = self._entries.get(test_id)
        self._drop(test_id)
        return arrays

    def discard(self, test_id: uuid.UUID) -> None:
        self._drop(test_id)

    def _drop(self, test_id: uuid.UUID) -> None:
        arrays = self._entries.pop(test_id, None)
        if arrays is not None:
            self._size -= sum(len(a) for a in arrays if a is not None)


# Room for two uploads of a million readings with timestamps and reference (24 MB each):
# a worker of the accepting process normally takes its test within milliseconds.
HANDOFF = Handoff(max_bytes=48 << 20)


async def read_arrays(
    conn: Connection, test_id: uuid.UUID
) -> tuple[NDArray[np.float64] | None, ...] | None:
    """(values, timestamps, reference) of a stored test from its blocks; None without any.

    Each block is copied to its place by its number, so no ORDER BY (a plan that sorts 24 MB
    of blocks is slower than the whole read), and a series whose blocks do not add up to
    one array is an error, never zeros in a gap.
    """
    rows = await conn.fetch(
        "SELECT series, block, data FROM test_reading_blocks WHERE test_id = $1", test_id
    )
    if not rows:
        return None
    extent, filled, present = [0, 0, 0], [0, 0, 0], set()
    for series, block, data in rows:
        extent[series] = max(extent[series], block * BLOCK_BYTES + len(data))
        filled[series] += len(data)
        present.add(series)
    if extent != filled or any(len(data) > BLOCK_BYTES for *_, data in rows):
        raise ReadingsMissingError(f"test {test_id}: its stored reading blocks do not fit together")
    out = [bytearray(size) for size in extent]
    for series, block, data in rows:
        at = block * BLOCK_BYTES
        out[series][at : at + len(data)] = data
    arrays: list[NDArray[np.float64] | None] = []
    for series, raw in enumerate(out):
        array = np.frombuffer(raw, dtype=F64) if series in present else None
        if array is not None:
            array.flags.writeable = False  # as read from bytes: the analysis only reads
        arrays.append(array)
    return tuple(arrays)


class IdempotencyKeyReusedError(InvalidRequestError):
    """Same Idempotency-Key, different request: 422 (IETF draft-ietf-httpapi-idempotency-key)."""


@dataclass(frozen=True, slots=True)
class NewTest:
    sensor_type: str
    device_id: str
    source: str  # "readings" | "simulate"
    spec: dict[str, Any]
    params: dict[str, Any]
    n_readings: int
    submitted_by: str
    idempotency_key: str | None
    fingerprint: bytes
    traceparent: str | None
    max_attempts: int
    values: bytes | None = None
    timestamps: bytes | None = None
    reference: bytes | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class Submitted:
    test_id: uuid.UUID
    status: str
    created: bool  # False: an Idempotency-Key replay of an earlier submission


@dataclass(frozen=True, slots=True)
class ListFilter:
    sensor_type: str | None = None
    device_id: str | None = None
    verdict: str | None = None
    status: str | None = None
    since: datetime | None = None
    before: int | None = None
    limit: int = 50


class TestRepository:
    __test__ = False  # not a pytest test class

    def __init__(self, db: Database) -> None:
        self.db = db

    async def submit(self, new: NewTest) -> Submitted:
        """Insert the test and its readings in one transaction, or find its earlier twin."""

        async def write(conn: Connection) -> Submitted:
            row = await conn.fetchrow(
                "INSERT INTO tests (id, sensor_type, device_id, source, spec, params,"
                " n_readings, submitted_by, idempotency_key, request_hash, traceparent,"
                " event_id, max_attempts)"
                " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11, $12, $13)"
                " ON CONFLICT (submitted_by, idempotency_key) WHERE idempotency_key IS NOT NULL"
                " DO NOTHING RETURNING status",
                new.id,
                new.sensor_type,
                new.device_id,
                new.source,
                json.dumps(new.spec),
                json.dumps(new.params),
                new.n_readings,
                new.submitted_by,
                new.idempotency_key,
                new.fingerprint,
                new.traceparent,
                uuid.uuid4(),
                new.max_attempts,
            )
            if row is None:
                return await _replay(conn, new)
            if new.values is not None:
                arrays = (new.values, new.timestamps, new.reference)
                # Before the COPY: a worker of this process may analyse them meanwhile.
                HANDOFF.put(new.id, arrays, test=new)
                await conn.copy_records_to_table(
                    "test_reading_blocks",
                    columns=BLOCK_COLUMNS,
                    records=blocks(new.id, arrays),
                )
            return Submitted(new.id, row["status"], created=True)

        try:
            return await self.db.run(write, transaction=True)
        except BaseException:
            HANDOFF.discard(new.id)  # never committed: no claim can ever ask for it
            raise

    async def get(self, test_id: uuid.UUID) -> dict[str, Any] | None:
        async def read(conn: Connection) -> Any:  # noqa: ANN401 - an asyncpg Record
            return await conn.fetchrow(
                f"SELECT {DETAIL_COLUMNS} FROM tests t"  # noqa: S608 - fixed column lists
                " LEFT JOIN outbox o ON o.event_id = t.event_id WHERE t.id = $1",
                test_id,
            )

        row = await self.db.run(read)
        return None if row is None else detail(row)

    async def list(self, flt: ListFilter) -> list[dict[str, Any]]:
        """Tests newest first, filtered, keyset-paginated on ``seq`` (``before``)."""
        sql, args = newest_first(
            f"SELECT {SUMMARY_COLUMNS} FROM tests t",  # noqa: S608 - fixed columns
            filters=(
                ("t.sensor_type =", flt.sensor_type),
                ("t.device_id =", flt.device_id),
                ("t.verdict =", flt.verdict),
                ("t.status =", flt.status),
                ("t.created_at >=", flt.since),
            ),
            seq_column="t.seq",
            before=flt.before,
            limit=flt.limit,
        )

        async def read(conn: Connection) -> list[Any]:
            return list(await conn.fetch(sql, *args))

        return [summary(row) for row in await self.db.run(read)]


async def _replay(conn: Connection, new: NewTest) -> Submitted:
    existing = await conn.fetchrow(
        "SELECT id, status, request_hash FROM tests"
        " WHERE submitted_by = $1 AND idempotency_key = $2",
        new.submitted_by,
        new.idempotency_key,
    )
    if existing["request_hash"] != new.fingerprint:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was used for a different request",
            fields=[{"field": "Idempotency-Key", "message": "reused with another body"}],
            test_id=str(existing["id"]),
        )
    return Submitted(existing["id"], existing["status"], created=False)


def links(test_id: uuid.UUID | str) -> dict[str, str]:
    return {"self": f"/test/{test_id}"}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def summary(row: Any) -> dict[str, Any]:  # noqa: ANN401 - an asyncpg Record
    return {
        "test_id": str(row["id"]),
        "seq": row["seq"],
        "status": row["status"],
        "sensor_type": row["sensor_type"],
        "device_id": row["device_id"],
        "source": row["source"],
        "n_readings": row["n_readings"],
        "verdict": row["verdict"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "processing_ms": row["processing_ms"],
        "error": row["error"],
        "links": links(row["id"]),
    }


def detail(row: Any) -> dict[str, Any]:  # noqa: ANN401 - an asyncpg Record
    doc = summary(row)
    doc["params"] = json.loads(row["params"])
    doc["spec"] = json.loads(row["spec"])
    doc["last_error"] = row["last_error"]
    doc["processed_by"] = row["claimed_by"]
    doc["event"] = {
        "id": str(row["event_id"]),
        "status": row["event_status"],  # None until the test ends: pending, sent or dead
        "attempts": row["event_attempts"],
        "sent_at": _iso(row["event_sent_at"]),
        "error": row["event_error"],
    }
    doc["result"] = json.loads(row["result"]) if row["result"] is not None else None
    return doc

"""SQL for accepted tests: submitting (with Idempotency-Key), reading and listing.

The queue side of the same table (claim, lease, completion) is in :mod:`.jobs`; how the
readings themselves are stored (packed float64 in 8,000-byte blocks, and handed to this
process's own workers) is in :mod:`.reading_blocks`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sensor_backend.core.sql import newest_first
from sensor_backend.sensor.models import InvalidRequestError
from sensor_backend.sensor.reading_blocks import BLOCK_COLUMNS, HANDOFF, blocks

if TYPE_CHECKING:
    from datetime import datetime

    from sensor_backend.core.db import Connection, Database

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

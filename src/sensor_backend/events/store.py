"""The event service's tables: the processing log and exact counters (schema ``events``).

A consumed batch is stored in ONE transaction: rows are inserted with ``ON CONFLICT (id) DO
NOTHING`` and only the rows actually inserted bump the counters, so redelivery after a crash
or a rebalance never double-counts (the event id is the dedup key, DESIGN.md §5). Offsets
are committed to the broker only after this transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sensor_backend.core.sql import newest_first

if TYPE_CHECKING:
    from datetime import datetime

    from sensor_backend.core.db import Connection, Database

LOG_COLUMNS = (
    "seq, id, type, source, subject, sensor_type, verdict, outcome, detail, event_time,"
    ' produced_at, processed_at, partition, "offset"'
)


@dataclass(frozen=True, slots=True)
class ConsumedRow:
    id: str
    type: str
    source: str
    subject: str | None
    sensor_type: str | None
    verdict: str | None
    outcome: str  # processed | rejected
    detail: str | None
    event_time: datetime | None
    produced_at: datetime | None
    partition: int
    offset: int


def counter_names(row: ConsumedRow) -> list[str]:
    names = ["consumed", f"outcome:{row.outcome}", f"type:{row.type}"]
    if row.sensor_type:
        names.append(f"sensor_type:{row.sensor_type}")
    if row.verdict:
        names.append(f"verdict:{row.verdict}")
    return names


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, rows: list[ConsumedRow]) -> int:
        """Store a consumed batch once; returns how many rows were new."""
        # One row per id: a batch can hold an event and its resend (the journal produces
        # again what the broker may have lost), and both rows would match the one id the
        # INSERT returns, counting it twice.
        unique: dict[str, ConsumedRow] = {}
        for row in rows:
            unique.setdefault(row.id, row)
        rows = list(unique.values())
        if not rows:
            return 0

        async def write(conn: Connection) -> int:
            inserted = await conn.fetch(
                "INSERT INTO processed_events (id, type, source, subject, sensor_type, verdict,"
                ' outcome, detail, event_time, produced_at, partition, "offset")'
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[],"
                " $11::int[], $12::bigint[])"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                *[[getattr(r, col) for r in rows] for col in _ROW_FIELDS],
            )
            new_ids = {r["id"] for r in inserted}
            counts: dict[str, int] = {}
            for row in rows:
                if row.id in new_ids:
                    for name in counter_names(row):
                        counts[name] = counts.get(name, 0) + 1
            if counts:
                await conn.execute(
                    "INSERT INTO counters (name, value)"
                    " SELECT * FROM unnest($1::text[], $2::bigint[])"
                    " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                    list(counts),
                    list(counts.values()),
                )
            return len(new_ids)

        return await self.db.run(write, transaction=True)

    async def stored_ids(self, ids: list[str]) -> set[str]:
        """Which of these event ids are stored (by any consumer of the group): one query."""
        if not ids:
            return set()

        async def read(conn: Connection) -> set[str]:
            rows = await conn.fetch(
                "SELECT id FROM processed_events WHERE id = ANY($1::text[])", ids
            )
            return {r["id"] for r in rows}

        return await self.db.run(read)

    async def counters(self) -> dict[str, int]:
        async def read(conn: Connection) -> dict[str, int]:
            return {
                r["name"]: r["value"] for r in await conn.fetch("SELECT name, value FROM counters")
            }

        return await self.db.run(read)

    async def latency_ms(self, recent: int = 5000) -> dict[str, float | None]:
        """End-to-end (event time to processed) and broker-to-processed percentiles, in ms."""

        async def read(conn: Connection) -> dict[str, float | None]:
            row = await conn.fetchrow(
                "WITH recent AS (SELECT event_time, produced_at, processed_at FROM processed_events"
                " WHERE outcome = 'processed' ORDER BY seq DESC LIMIT $1)"
                " SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP"
                " (ORDER BY extract(epoch FROM processed_at - event_time) * 1000) AS e2e"
                " FROM recent WHERE event_time IS NOT NULL",
                recent,
            )
            e2e = row["e2e"] or [None, None, None]
            return {"e2e_p50_ms": e2e[0], "e2e_p95_ms": e2e[1], "e2e_p99_ms": e2e[2]}

        return await self.db.run(read)

    async def log(
        self,
        *,
        type_: str | None,
        subject: str | None,
        since: datetime | None,
        before: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The processing log, newest first, keyset-paginated on ``seq``."""
        sql, args = newest_first(
            f"SELECT {LOG_COLUMNS} FROM processed_events",  # noqa: S608 - fixed columns
            filters=(("type =", type_), ("subject =", subject), ("processed_at >=", since)),
            seq_column="seq",
            before=before,
            limit=limit,
        )

        async def read(conn: Connection) -> list[dict[str, Any]]:
            return [_log_item(r) for r in await conn.fetch(sql, *args)]

        return await self.db.run(read)


_ROW_FIELDS = (
    "id",
    "type",
    "source",
    "subject",
    "sensor_type",
    "verdict",
    "outcome",
    "detail",
    "event_time",
    "produced_at",
    "partition",
    "offset",
)


def _log_item(row: Any) -> dict[str, Any]:  # noqa: ANN401 - an asyncpg Record
    item = dict(row)
    for key in ("event_time", "produced_at", "processed_at"):
        if item[key] is not None:
            item[key] = item[key].isoformat()
    return item

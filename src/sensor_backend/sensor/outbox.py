"""The transactional outbox: events written with the result, delivered later by the relay.

Why an outbox: "store the result, then send the event" loses the event when the process
dies in between, and "send, then store" emits events for results that never committed.
:func:`enqueue` runs inside the transaction that records a test's end, so the event exists
if and only if the result does. :mod:`.relay` then delivers rows at least once; the event
service deduplicates on the event id, which makes delivery exactly once in effect.

Row life: ``pending`` -> ``sent`` (the event service answered 200/201/202) or ``dead`` (it
refused the event with a 4xx: retrying cannot help, so the reason is kept for an operator).
A claim is ``FOR UPDATE SKIP LOCKED`` plus a lease (``claimed_by``, ``lease_until``), so
relays in several replicas never post the same row at once, and a relay that dies
mid-delivery leaves its rows to be claimed again when the lease runs out. Sent rows are
kept for ``outbox_retention_s`` (the test's detail shows when its event left), then purged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uuid

    from sensor_backend.core.cloudevents import CloudEvent
    from sensor_backend.core.db import Connection, Database


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    event_id: str
    event: dict[str, Any]
    attempts: int


async def enqueue(conn: Connection, *, test_id: uuid.UUID, event: CloudEvent) -> None:
    """Add ``event`` to the outbox inside the caller's transaction (idempotent on its id)."""
    await conn.execute(
        "INSERT INTO outbox (event_id, test_id, event_type, event)"
        " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (event_id) DO NOTHING",
        event.id,
        test_id,
        event.type,
        event.model_dump_json(exclude_none=True),
    )


class Outbox:
    def __init__(self, db: Database, *, lease_s: float) -> None:
        self.db = db
        self.lease_s = lease_s

    async def claim(self, relay: str, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` due rows, oldest first, leased to ``relay``."""

        async def write(conn: Connection) -> list[Any]:
            return list(
                await conn.fetch(
                    "UPDATE outbox SET claimed_by = $1, attempts = attempts + 1,"
                    " lease_until = now() + make_interval(secs => $2)"
                    " WHERE seq IN (SELECT seq FROM outbox WHERE status = 'pending'"
                    " AND next_attempt_at <= now()"
                    " AND (lease_until IS NULL OR lease_until < now())"
                    " ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)"
                    " RETURNING seq, event_id, event, attempts",
                    relay,
                    self.lease_s,
                    limit,
                )
            )

        rows = await self.db.run(write)
        return sorted(
            (
                OutboxRow(r["seq"], str(r["event_id"]), json.loads(r["event"]), r["attempts"])
                for r in rows
            ),
            key=lambda row: row.seq,
        )

    async def mark_sent(self, seqs: list[int]) -> None:
        await self._update(
            "UPDATE outbox SET status = 'sent', sent_at = now(), lease_until = NULL,"
            " last_error = NULL WHERE seq = ANY($1::bigint[]) AND status = 'pending'",
            seqs,
        )

    async def mark_dead(self, seq: int, reason: str) -> None:
        await self._update(
            "UPDATE outbox SET status = 'dead', lease_until = NULL, last_error = $2"
            " WHERE seq = ANY($1::bigint[]) AND status = 'pending'",
            [seq],
            reason[:1000],
        )

    async def release(self, seqs: list[int], reason: str, *, delay_s: float) -> None:
        """Give rows back for another attempt in ``delay_s`` seconds."""
        await self._update(
            "UPDATE outbox SET lease_until = NULL, claimed_by = NULL, last_error = $2,"
            " next_attempt_at = now() + make_interval(secs => $3)"
            " WHERE seq = ANY($1::bigint[]) AND status = 'pending'",
            seqs,
            reason[:1000],
            delay_s,
        )

    async def purge_sent(self, older_than_s: float) -> int:
        async def write(conn: Connection) -> str:
            result: str = await conn.execute(
                "DELETE FROM outbox WHERE status = 'sent'"
                " AND sent_at < now() - make_interval(secs => $1)",
                older_than_s,
            )
            return result

        return int((await self.db.run(write)).rsplit(" ", 1)[-1])

    async def _update(self, sql: str, *args: object) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(sql, *args)

        await self.db.run(write)

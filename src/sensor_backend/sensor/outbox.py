"""The transactional outbox: events written with the result, delivered later by the relay.

Why an outbox: "store the result, then send the event" loses the event when the process
dies in between, and "send, then store" emits events for results that never committed.
:func:`enqueue` runs inside the transaction that records a test's end, so the event exists
if and only if the result does. :mod:`.relay` then delivers rows at least once; the event
service deduplicates on the event id, which makes delivery exactly once in effect.

Row life: ``pending`` -> ``sent`` (the event service answered 200/201/202) or ``dead`` (it
refused the event with a 4xx that retrying cannot fix, or the event is over the contract's
size limit: the row is the dead letter, with the reason, the HTTP status and when, for an
operator). An operator replays a dead row (back to ``pending``; delivered, or dead again
with ``times_dead`` incremented) or discards it (``discarded``, kept with who and when until
the retention purge).
A claim is ``FOR UPDATE SKIP LOCKED`` plus a lease (``claimed_by``, ``lease_until``), so
relays in several replicas never post the same row at once, and a relay that dies
mid-delivery leaves its rows to be claimed again when the lease runs out. Sent rows are
kept for ``outbox_retention_s`` (the test's detail shows when its event left), then purged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sensor_backend.core.event_limits import MAX_BATCH_BYTES

if TYPE_CHECKING:
    import uuid

    from sensor_backend.core.cloudevents import CloudEvent
    from sensor_backend.core.db import Connection, Database


_DEAD_COLUMNS = (
    "seq, event_id, dead_status, last_error, attempts, octet_length(event::text) AS size,"
    " created_at, dead_at, times_dead"
)


def _dead_out(row: Any) -> dict[str, Any]:  # noqa: ANN401 - an asyncpg Record
    """A dead row in the shared admin shape (core/dead_letter_api.py)."""
    return {
        "id": str(row["event_id"]),
        "where": "sensor-outbox",
        "status": row["dead_status"],
        "reason": row["last_error"] or "",
        "attempts": row["attempts"],
        "size": row["size"],
        "first_seen_at": row["created_at"],
        "dead_at": row["dead_at"] or row["created_at"],
        "times_dead": row["times_dead"],
        "cursor": row["seq"],
    }


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

    async def claim(
        self, relay: str, limit: int, max_bytes: int = MAX_BATCH_BYTES
    ) -> list[OutboxRow]:
        """Up to ``limit`` due rows, oldest first, leased to ``relay``.

        Bounded by bytes as well (the event contract, core/event_limits.py): only as many
        rows as fit in ``max_bytes`` framed as a JSON array, but always the oldest row (an
        oversized one must reach the relay to be dead-lettered, not block the outbox).
        The size is that of jsonb's text form, which has a space after every ``,`` and
        ``:`` and so bounds the compact encoding the relay sends from above.
        """

        async def write(conn: Connection) -> list[Any]:
            return list(
                await conn.fetch(
                    "UPDATE outbox SET claimed_by = $1, attempts = attempts + 1,"
                    " lease_until = now() + make_interval(secs => $2)"
                    " WHERE seq IN (SELECT seq FROM ("
                    "  SELECT seq, row_number() OVER (ORDER BY seq) AS n,"
                    "  1 + sum(octet_length(event::text) + 1) OVER (ORDER BY seq) AS running"
                    "  FROM (SELECT seq, event FROM outbox WHERE status = 'pending'"
                    "   AND next_attempt_at <= now()"
                    "   AND (lease_until IS NULL OR lease_until < now())"
                    "   ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED) AS due"
                    " ) AS sized WHERE n = 1 OR running <= $4)"
                    " RETURNING seq, event_id, event, attempts",
                    relay,
                    self.lease_s,
                    limit,
                    max_bytes,
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

    async def mark_dead(self, seq: int, reason: str, *, status: int | None = None) -> None:
        """The row becomes a dead letter: kept with the reason for an operator."""
        await self._update(
            "UPDATE outbox SET status = 'dead', lease_until = NULL, last_error = $2,"
            " dead_at = now(), dead_status = $3, times_dead = times_dead + 1"
            " WHERE seq = ANY($1::bigint[]) AND status = 'pending'",
            [seq],
            reason[:1000],
            status,
        )

    # -- dead letters (the admin API) ----------------------------------------------------

    async def dead_letters(self, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        """Dead rows newest first (by seq), without the events."""

        async def read(conn: Connection) -> list[Any]:
            return list(
                await conn.fetch(
                    f"SELECT {_DEAD_COLUMNS} FROM outbox WHERE status = 'dead'"  # noqa: S608 - a constant column list
                    " AND ($1::bigint IS NULL OR seq < $1) ORDER BY seq DESC LIMIT $2",
                    before,
                    limit,
                )
            )

        return [_dead_out(row) for row in await self.db.run(read)]

    async def dead_letter(self, event_id: uuid.UUID) -> dict[str, Any] | None:
        """One dead row with its event, or None."""

        async def read(conn: Connection) -> Any:  # noqa: ANN401 - an asyncpg Record
            return await conn.fetchrow(
                f"SELECT {_DEAD_COLUMNS}, event FROM outbox"  # noqa: S608 - a constant column list
                " WHERE event_id = $1 AND status = 'dead'",
                event_id,
            )

        row = await self.db.run(read)
        if row is None:
            return None
        return {**_dead_out(row), "event": json.loads(row["event"])}

    async def replay(self, event_id: uuid.UUID) -> bool:
        """A dead row back to ``pending``, due now; False if there is no such dead row."""
        return await self._change(
            "UPDATE outbox SET status = 'pending', next_attempt_at = now(),"
            " lease_until = NULL, claimed_by = NULL"
            " WHERE event_id = $1 AND status = 'dead' RETURNING seq",
            event_id,
        )

    async def replay_oldest(self, limit: int) -> list[str]:
        """The ``limit`` oldest dead rows back to ``pending``; their event ids, in order."""

        async def write(conn: Connection) -> list[Any]:
            return list(
                await conn.fetch(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = now(),"
                    " lease_until = NULL, claimed_by = NULL WHERE seq IN (SELECT seq FROM"
                    " outbox WHERE status = 'dead' ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)"
                    " RETURNING seq, event_id",
                    limit,
                )
            )

        rows = sorted(await self.db.run(write), key=lambda row: row["seq"])
        return [str(row["event_id"]) for row in rows]

    async def discard(self, event_id: uuid.UUID, *, by: str) -> bool:
        """A dead row ``discarded`` (kept with who and when until the retention purge)."""
        return await self._change(
            "UPDATE outbox SET status = 'discarded', discarded_at = now(), discarded_by = $2"
            " WHERE event_id = $1 AND status = 'dead' RETURNING seq",
            event_id,
            by,
        )

    async def _change(self, sql: str, *args: object) -> bool:
        async def write(conn: Connection) -> Any:  # noqa: ANN401 - an asyncpg Record
            return await conn.fetchrow(sql, *args)

        return await self.db.run(write) is not None

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

    async def due_now(self) -> None:
        """Rows waiting out a retry backoff are due at once (the event service is back)."""
        await self._update(
            "UPDATE outbox SET next_attempt_at = now()"
            " WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at > now()"
        )

    async def purge_sent(self, older_than_s: float) -> int:
        async def write(conn: Connection) -> str:
            result: str = await conn.execute(
                "DELETE FROM outbox WHERE (status = 'sent'"
                " AND sent_at < now() - make_interval(secs => $1)) OR (status = 'discarded'"
                " AND discarded_at < now() - make_interval(secs => $1))",
                older_than_s,
            )
            return result

        return int((await self.db.run(write)).rsplit(" ", 1)[-1])

    async def _update(self, sql: str, *args: object) -> None:
        async def write(conn: Connection) -> None:
            await conn.execute(sql, *args)

        await self.db.run(write)

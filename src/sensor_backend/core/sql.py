"""The one dynamic-WHERE builder: filtered, keyset-paginated lists, newest first.

Used by the sensor service's ``GET /tests`` (sensor/repository.py) and the event service's
``GET /logs`` (events/store.py). Only the fixed column expressions written in code are
interpolated into the SQL; every value is a ``$n`` parameter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["newest_first"]


def newest_first(
    select: str,
    *,
    filters: Sequence[tuple[str, object | None]],
    seq_column: str,
    before: int | None,
    limit: int,
) -> tuple[str, list[object]]:
    """``select`` narrowed by the filters whose value is not None, newest first.

    Each filter is ``(column and operator, value)``, e.g. ``("t.status =", "done")``;
    ``before`` keeps rows whose ``seq_column`` is below it (keyset pagination). Returns the
    SQL and its arguments.
    """
    clauses: list[str] = []
    args: list[object] = []
    for condition, value in filters:
        if value is not None:
            args.append(value)
            clauses.append(f"{condition} ${len(args)}")
    if before is not None:
        args.append(before)
        clauses.append(f"{seq_column} < ${len(args)}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    args.append(limit)
    return f"{select}{where} ORDER BY {seq_column} DESC LIMIT ${len(args)}", args

"""core/sqlite_files.py: moving a database file between releases; core/sql.py's builder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.core.sql import newest_first
from sensor_backend.core.sqlite_files import adopt_legacy_file

if TYPE_CHECKING:
    from pathlib import Path


def test_adopt_legacy_file_moves_the_file_and_its_wal(tmp_path: Path) -> None:
    """The event journal's old events.sqlite3/events.sqlite3 moves to journal/events.sqlite3."""
    old = tmp_path / "events.sqlite3" / "events.sqlite3"
    old.parent.mkdir()
    old.write_bytes(b"db")
    old.with_name("events.sqlite3-wal").write_bytes(b"wal")
    new = tmp_path / "journal" / "events.sqlite3"
    assert adopt_legacy_file(old, new)
    assert new.read_bytes() == b"db"
    assert new.with_name("events.sqlite3-wal").read_bytes() == b"wal"
    assert not old.parent.exists()


def test_adopt_legacy_file_never_overwrites(tmp_path: Path) -> None:
    old = tmp_path / "old" / "a.sqlite3"
    old.parent.mkdir()
    old.write_bytes(b"old")
    new = tmp_path / "a.sqlite3"
    new.write_bytes(b"new")
    assert not adopt_legacy_file(old, new)
    assert new.read_bytes() == b"new"
    assert not adopt_legacy_file(tmp_path / "missing", tmp_path / "b.sqlite3")


def test_newest_first_skips_absent_filters() -> None:
    sql, args = newest_first(
        "SELECT id FROM t",
        filters=(("kind =", "x"), ("owner =", None), ("at >=", 5)),
        seq_column="seq",
        before=9,
        limit=10,
    )
    assert (
        sql
        == "SELECT id FROM t WHERE kind = $1 AND at >= $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"
    )
    assert args == ["x", 5, 9, 10]
    sql, args = newest_first("SELECT id FROM t", filters=(), seq_column="seq", before=None, limit=1)
    assert sql == "SELECT id FROM t ORDER BY seq DESC LIMIT $1"
    assert args == [1]

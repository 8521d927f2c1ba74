"""SQLite plumbing shared by the local durable files: the spool, the journal, dead letters.

Chunked ``IN (...)`` lists below SQLite's host-parameter limit, a rollback that never
raises, and the directory fsync that makes a new database file's name durable.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

__all__ = ["CHUNK", "adopt_legacy_file", "chunks", "fsync_dir", "placeholders", "rollback"]

T = TypeVar("T")

# Host parameters per statement, far below SQLITE_MAX_VARIABLE_NUMBER on any build.
CHUNK: Final = 500


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    """``values`` in slices of at most ``size`` (one statement's parameters each)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def placeholders(n: int) -> str:
    """``?,?,...`` for an ``IN (...)`` list of ``n`` values."""
    return ",".join("?" * n)


def fsync_dir(path: Path) -> None:
    """Make a newly created directory entry durable (the database file's name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction; a failing rollback is ignored (the file stays valid)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def adopt_legacy_file(old: Path, new: Path) -> bool:
    """Move a database file (with its ``-wal`` and ``-shm``) from ``old`` to ``new``.

    Only when ``old`` exists and ``new`` does not; ``old``'s directory is removed if that
    leaves it empty. For a file that moved between releases; call it before opening.
    Returns True when a file was moved.
    """
    if new.exists() or not old.is_file():
        return False
    new.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", ""):  # the main file last: it marks the move done
        source = old.with_name(old.name + suffix)
        if source.exists():
            source.replace(new.with_name(new.name + suffix))
    fsync_dir(new.parent)
    with contextlib.suppress(OSError):
        old.parent.rmdir()
    return True

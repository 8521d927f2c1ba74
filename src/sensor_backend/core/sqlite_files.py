"""SQLite plumbing shared by the local durable files: the spool, the journal, dead letters.

`open_durable` opens such a file the one way they all need (an exclusive lock, WAL, an
fsync per commit, a versioned schema, the new file's name made durable); chunked ``IN
(...)`` lists below SQLite's host-parameter limit, a rollback that never raises.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

__all__ = [
    "CHUNK",
    "FileInUseError",
    "adopt_legacy_file",
    "chunks",
    "fsync_dir",
    "open_durable",
    "placeholders",
    "rollback",
]

T = TypeVar("T")

# Host parameters per statement, far below SQLITE_MAX_VARIABLE_NUMBER on any build.
CHUNK: Final = 500


class FileInUseError(RuntimeError):
    """Another connection (another process, or another store object) holds the file."""


def open_durable(
    file: Path, *, schema: str, schema_version: int, lock_timeout_s: float, what: str
) -> sqlite3.Connection:
    """Open (creating it and its directory if needed) a durable SQLite file.

    Exclusive locking before WAL (the WAL index then lives in heap memory, no ``-shm``
    file, and the first write takes a lock held until close), ``synchronous=FULL``,
    ``schema`` created and ``PRAGMA user_version`` set or checked against
    ``schema_version``. No implicit transactions (``isolation_level=None``); the
    connection must stay on the thread that opened it. Raises `FileInUseError` when
    another connection holds the file; ``what`` names the store in errors.
    """
    file.parent.mkdir(parents=True, exist_ok=True)
    created = not file.exists()
    conn = sqlite3.connect(file, timeout=lock_timeout_s, isolation_level=None)
    try:
        _prepare(conn, schema=schema, schema_version=schema_version, label=f"{what} {file}")
    except sqlite3.OperationalError as exc:
        rollback(conn)
        conn.close()
        if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            raise FileInUseError(f"{what} {file} is in use by another process") from exc
        raise
    except BaseException:
        rollback(conn)
        conn.close()
        raise
    if created:
        fsync_dir(file.parent)
    return conn


def _prepare(conn: sqlite3.Connection, *, schema: str, schema_version: int, label: str) -> None:
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    if str(mode).lower() != "wal":
        raise RuntimeError(f"{label}: could not enable WAL (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(schema)
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == 0:
        conn.execute(f"PRAGMA user_version={schema_version}")
    elif version != schema_version:
        raise RuntimeError(f"{label}: unknown schema version {version}")
    conn.execute("COMMIT")


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

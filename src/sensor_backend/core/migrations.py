"""Versioned SQL migrations, applied on start, safe when several replicas start at once.

Each service ships ``src/sensor_backend/<service>/migrations/NNNN_description.sql`` inside
its package and passes ``importlib.resources.files("sensor_backend.<service>") /
"migrations"`` (a ``Traversable``; a plain ``Path`` works too) to :func:`apply_migrations`.

Rules:

* versions start at ``0001`` and are contiguous; a gap or two files with one version is a
  :class:`MigrationError`, as is a ``.sql`` file whose name does not follow the pattern;
* an applied migration is never edited: a changed checksum (SHA-256 of the file, line
  endings normalised) or a renamed file refuses to start;
* applied versions *above* the newest file are tolerated (an older replica during a rolling
  upgrade), as Flyway does with "future" migrations;
* all pending migrations run in ONE transaction holding ``pg_advisory_xact_lock`` keyed on
  the schema name, so concurrent appliers serialise and each migration runs exactly once;
  a failing migration rolls every pending one back. Hence statements that cannot run in a
  transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``) are not supported.

Unqualified names in a migration resolve to the service's schema (``SET LOCAL
search_path``). Errors: :class:`MigrationError` (a ``RuntimeError``) for a defect that
retrying cannot fix (edited or inconsistent files, a migration's own SQL error); connection
loss, shutdown, deadlocks and timeouts propagate unchanged (retry later); an invalid schema
name is a ``ValueError`` from :func:`validate_schema_name`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable
    from pathlib import Path

__all__ = [
    "DEFAULT_MIGRATION_TIMEOUT_S",
    "Migration",
    "MigrationError",
    "advisory_lock_key",
    "apply_migrations",
    "load_migrations",
    "validate_schema_name",
]

#: Per-statement timeout while migrating (waiting for the lock included); the pool's
#: ``command_timeout`` is meant for requests and is far too short for a migration.
DEFAULT_MIGRATION_TIMEOUT_S = 300.0

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_FILE_RE = re.compile(r"^(?P<version>\d{4})_(?P<description>[a-z0-9_]+)\.sql$")
_LOCK_NAMESPACE = b"sensor_backend.migrations:"

# SQL errors that say nothing about the migration itself (lost connection, shutdown,
# deadlock, lock timeout): re-raised as they are so the caller can retry later.
_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.LockNotAvailableError,
)


class MigrationError(RuntimeError):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    """One migration file: ``NNNN_description.sql``."""

    version: int
    name: str  # the file name without ".sql", e.g. "0001_create_users"
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text, with CRLF normalised so a Windows checkout matches."""
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()


def validate_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a safe, unquoted identifier, else raise ``ValueError``.

    The name is interpolated into SQL, so only lowercase letters, digits and underscores
    are accepted (at most 63 bytes, PostgreSQL's limit), and ``pg_`` is reserved.
    """
    if not _SCHEMA_RE.fullmatch(schema) or schema.startswith("pg_"):
        raise ValueError(
            f"invalid schema name {schema!r}: use 1-63 of [a-z0-9_], not starting with a "
            "digit or 'pg_'"
        )
    return schema


def advisory_lock_key(schema: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for migrating ``schema``.

    Python's ``hash()`` is salted per process, so replicas would not agree; SHA-256 is.
    """
    digest = hashlib.sha256(_LOCK_NAMESPACE + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def load_migrations(migrations: Traversable | Path) -> list[Migration]:
    """Read and check the migration files in a directory, ordered by version.

    Files not ending in ``.sql`` (``__init__.py``, ``__pycache__``) are ignored.
    """
    if not migrations.is_dir():
        raise MigrationError(f"migration directory {migrations} does not exist")
    found: dict[int, Migration] = {}
    for entry in migrations.iterdir():
        if not entry.name.endswith(".sql") or not entry.is_file():
            continue
        match = _FILE_RE.fullmatch(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file {entry.name!r} does not match NNNN_description.sql "
                "(four digits, then lowercase letters, digits and underscores)"
            )
        version = int(match["version"])
        if version in found:
            raise MigrationError(
                f"duplicate migration version {version:04d}: "
                f"{found[version].name}.sql and {entry.name}"
            )
        found[version] = Migration(
            version=version, name=entry.name.removesuffix(".sql"), sql=entry.read_text("utf-8")
        )
    ordered = [found[v] for v in sorted(found)]
    for expected, migration in enumerate(ordered, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration versions must be contiguous from 0001: expected {expected:04d}, "
                f"found {migration.name}.sql"
            )
    return ordered


async def apply_migrations(
    conn: Any,  # noqa: ANN401 (asyncpg.Connection or a pool's proxy; asyncpg is untyped)
    *,
    schema: str,
    migrations: Traversable | Path,
    timeout_s: float = DEFAULT_MIGRATION_TIMEOUT_S,
) -> list[str]:
    """Apply the pending migrations of ``schema``; return the names applied, in order.

    Safe to call from several processes at once: the first one in applies, the others wait
    for its transaction and then find nothing to do. Raises :class:`MigrationError` when an
    applied migration changed or the files are inconsistent; nothing is applied then.
    """
    schema = validate_schema_name(schema)
    files = load_migrations(migrations)
    applied_names: list[str] = []
    # READ COMMITTED whatever the server default: a replica that waited for the lock must
    # see what the winner committed meanwhile (a snapshot from before would re-apply).
    async with conn.transaction(isolation="read_committed"):
        # Lock first: concurrent CREATE SCHEMA/TABLE IF NOT EXISTS can still collide.
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", advisory_lock_key(schema), timeout=timeout_s
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}", timeout=timeout_s)
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            timeout=timeout_s,
        )
        rows = await conn.fetch(
            f"SELECT version, name, checksum FROM {schema}.schema_migrations ORDER BY version",  # noqa: S608 (validated identifier)
            timeout=timeout_s,
        )
        applied: dict[int, tuple[str, str]] = {
            row["version"]: (row["name"], row["checksum"]) for row in rows
        }
        _check_applied(schema, files, applied)

        pending = [m for m in files if m.version not in applied]
        if pending:
            await conn.execute(f"SET LOCAL search_path TO {schema}", timeout=timeout_s)
        for migration in pending:
            try:
                await conn.execute(migration.sql, timeout=timeout_s)
            except _TRANSIENT:
                raise  # the caller may retry: not a defect of the migration
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {schema}/{migration.name}.sql failed: {exc}"
                ) from exc
            # A migration may change search_path itself; keep the bookkeeping qualified.
            await conn.execute(
                f"INSERT INTO {schema}.schema_migrations (version, name, checksum) "  # noqa: S608 (validated identifier)
                "VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
                timeout=timeout_s,
            )
            applied_names.append(migration.name)
    return applied_names


def _check_applied(
    schema: str, files: list[Migration], applied: dict[int, tuple[str, str]]
) -> None:
    by_version = {m.version: m for m in files}
    newest_file = files[-1].version if files else 0
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            if version > newest_file:
                continue  # applied by a newer release (rolling upgrade); not ours to judge
            raise MigrationError(
                f"{schema}: applied migration {version:04d} ({name}) has no file any more"
            )
        if migration.name != name:
            raise MigrationError(
                f"{schema}: applied migration {version:04d} was {name!r}, "
                f"the file is now {migration.name!r}; add a new migration instead"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{schema}: applied migration {name}.sql was edited (checksum changed); "
                "never edit an applied migration, add a new one"
            )
    if applied:
        versions = sorted(applied)
        gaps = sorted(set(range(1, versions[-1] + 1)) - set(versions))
        if gaps:
            raise MigrationError(f"{schema}: applied migrations have gaps at versions {gaps}")

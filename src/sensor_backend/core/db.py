"""PostgreSQL access for one service schema: an asyncpg pool behind a circuit breaker.

A service must start and answer (503 + ``Retry-After``) while its database is down, and
recover by itself when it returns (DESIGN.md §5). Hence:

* :meth:`Database.start` only launches a background task that connects with capped,
  jittered exponential backoff, applies the schema's migrations
  (:mod:`sensor_backend.core.migrations`) and then marks the database ready;
* :meth:`Database.run` is the only way to use a connection. It goes through the breaker;
  lost connections, refused connects, timeouts and server shutdowns are breaker failures
  and become :class:`DatabaseUnavailable`; SQL errors (``UniqueViolationError``...) are the
  caller's business, reach the caller unchanged and count as a healthy database;
* after an outage the pool heals lazily: asyncpg drops connections the server closed and
  opens new ones on the next acquire, so no restart and no new ``Database`` is needed.

Errors (``raise ... from exc`` at this boundary, never a raw asyncpg connection error)::

    DatabaseError                 base of this module's errors
    └── DatabaseUnavailable       breaker open, not ready yet, or the connection failed;
                                  also a core.errors.Unavailable, so it renders as a 503
                                  with Retry-After; carries ``retry_after_s``

A :class:`~sensor_backend.core.migrations.MigrationError` (an edited applied migration, a
broken file) is fatal for the background task: :attr:`Database.status` stays ``"down"``,
:attr:`Database.fatal_error` holds it and :meth:`Database.wait_until_up` raises it, since
retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import asyncpg

from sensor_backend.core.breaker import CircuitBreaker, CircuitOpenError
from sensor_backend.core.errors import Unavailable
from sensor_backend.core.migrations import (
    MigrationError,
    apply_migrations,
    load_migrations,
    validate_schema_name,
)
from sensor_backend.core.retry import RetryPolicy, retry_async

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from importlib.resources.abc import Traversable
    from pathlib import Path

__all__ = [
    "Connection",
    "Database",
    "DatabaseError",
    "DatabaseStatus",
    "DatabaseUnavailable",
]

T = TypeVar("T")

#: What :meth:`Database.run` hands to its callback: an asyncpg connection (a pool proxy).
#: asyncpg ships no type information, so this is ``Any`` for the type checker.
Connection: TypeAlias = Any

DatabaseStatus: TypeAlias = Literal["connecting", "migrating", "up", "down"]

_log = logging.getLogger(__name__)

# Outcomes that say "the database is not there" rather than "your SQL is wrong". OSError
# covers refused and reset connections; TimeoutError (== asyncio.TimeoutError on 3.11)
# covers connect, acquire and command timeouts.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, incl. ConnectionDoesNotExistError
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up, shutting down, recovery
    asyncpg.exceptions.AdminShutdownError,  # 57P01: fast shutdown while we were connected
    asyncpg.exceptions.CrashShutdownError,  # 57P02: another backend crashed
    asyncpg.exceptions.TooManyConnectionsError,  # 53300: max_connections reached
)

#: ``Retry-After`` floor: HTTP can only say whole seconds, and 0 invites a hot retry loop.
_MIN_RETRY_AFTER_S = 1.0


class DatabaseError(Exception):
    """Base of the errors raised by :mod:`sensor_backend.core.db`."""


class DatabaseUnavailable(DatabaseError, Unavailable):
    """The database cannot serve this call now; retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: float, reason: str = "database unavailable") -> None:
        self.retry_after_s = max(_MIN_RETRY_AFTER_S, retry_after_s)
        self.reason = reason
        super().__init__(reason, retry_after_s=self.retry_after_s)


class Database:
    """An asyncpg pool for one service schema, started degraded-tolerant, with a breaker.

    Every connection has ``search_path`` set to the schema, so SQL uses unqualified names.
    """

    def __init__(
        self,
        *,
        dsn: str,
        schema: str,
        migrations: Traversable | Path,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout_s: float = 5.0,
        connect_timeout_s: float = 3.0,
        breaker: CircuitBreaker | None = None,
        reconnect_initial_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        migration_timeout_s: float = 300.0,
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size and max_size >= 1, got {min_size}, {max_size}"
            )
        if not 0 < reconnect_initial_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        self.schema = validate_schema_name(schema)
        # Read the files now: a broken migration directory is a packaging bug, fail fast.
        load_migrations(migrations)
        self._dsn = dsn
        self._migrations = migrations
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout_s = command_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._breaker = breaker
        # "Equal jitter": at least half the delay, so replicas spread out but an outage
        # never turns into a tight reconnect loop.
        self._reconnect = RetryPolicy(
            max_attempts=None, base_s=reconnect_initial_s, cap_s=reconnect_max_s, jitter="equal"
        )
        self._migration_timeout_s = migration_timeout_s
        self._random = random.Random()  # noqa: S311 (backoff jitter, not cryptography)

        self._pool: Any = None  # asyncpg.Pool once connected and migrated
        self._task: asyncio.Task[None] | None = None
        self._status: DatabaseStatus = "down"
        self._last_error: str | None = None
        self._fatal_error: MigrationError | None = None
        self._next_attempt_at = 0.0
        self._applied: list[str] = []

    # ------------------------------------------------------------------ state

    @property
    def status(self) -> DatabaseStatus:
        """``connecting``, ``migrating``, ``up`` (pool ready) or ``down``.

        ``down`` before :meth:`start`, between failed connection attempts, after a fatal
        migration error and after :meth:`stop`. Once ``up`` it stays ``up``: an outage
        afterwards shows in :meth:`ping`, the breaker and :attr:`last_error`, and the pool
        heals by itself.
        """
        return self._status

    @property
    def last_error(self) -> str | None:
        """The most recent connection-level error, cleared by the next successful call."""
        return self._last_error

    @property
    def fatal_error(self) -> MigrationError | None:
        """Set when the migrations cannot be applied; the task then stops retrying."""
        return self._fatal_error

    @property
    def applied_migrations(self) -> list[str]:
        """Names of the migrations this instance applied on start (often none)."""
        return list(self._applied)

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The breaker guarding :meth:`run`, if any."""
        return self._breaker

    def snapshot(self) -> dict[str, object]:
        """JSON-serialisable view for ``/health``."""
        pool = self._pool
        return {
            "schema": self.schema,
            "status": self._status,
            "last_error": self._last_error,
            "pool_size": pool.get_size() if pool is not None else 0,
            "pool_idle": pool.get_idle_size() if pool is not None else 0,
            "pool_max": self._max_size,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start connecting and migrating in the background; return at once."""
        if self._task is not None:
            return
        self._fatal_error = None
        self._status = "connecting"
        self._task = asyncio.create_task(self._connect_loop(), name=f"db-{self.schema}-connect")

    async def wait_until_up(self, timeout_s: float | None = None) -> None:
        """Wait until the pool is ready (tests, or a service that must not start degraded).

        Raises the :class:`MigrationError` if migrating failed for good, ``TimeoutError``
        after ``timeout_s``, and ``RuntimeError`` if :meth:`start` was not called.
        """
        task = self._task
        if task is None:
            raise RuntimeError("Database.start() was not called")
        # The connect task ends once the pool is ready (or for good on a MigrationError);
        # shield it so our timeout does not cancel it.
        await asyncio.wait_for(asyncio.shield(task), timeout_s)
        if self._fatal_error is not None:
            raise self._fatal_error

    async def stop(self) -> None:
        """Stop connecting, close the pool (terminating it if closing hangs)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool, self._pool = self._pool, None
        self._status = "down"
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=self._command_timeout_s)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    async def _connect_loop(self) -> None:
        """Connect and migrate, retrying until it works (a refused migration ends it)."""
        try:
            pool, applied = await retry_async(
                self._connect_once,
                safe=True,
                policy=self._reconnect,
                budget=None,
                retry_on=lambda exc: not isinstance(exc, MigrationError),
                on_retry=self._connect_failed,
                rng=self._random,
            )
        except MigrationError as exc:
            self._fatal_error = exc
            self._last_error = f"MigrationError: {exc}"
            self._status = "down"
            _log.error("database %s: migrations refused, not retrying: %s", self.schema, exc)
            return
        self._applied = applied
        self._pool = pool
        self._last_error = None
        self._status = "up"
        if applied:
            _log.info("database %s: applied migrations %s", self.schema, applied)

    async def _connect_once(self) -> tuple[Any, list[str]]:
        """One attempt: a pool with the schema migrated; the pool is closed on failure."""
        self._status = "connecting"
        pool: Any = None
        try:
            pool = await self._create_pool()
            self._status = "migrating"
            async with pool.acquire(timeout=self._connect_timeout_s) as conn:
                applied = await apply_migrations(
                    conn,
                    schema=self.schema,
                    migrations=self._migrations,
                    timeout_s=self._migration_timeout_s,
                )
        except BaseException:
            if pool is not None:
                pool.terminate()
            raise
        return pool, applied

    def _connect_failed(self, outcome: object, sleep_s: float) -> None:
        self._last_error = _describe(outcome) if isinstance(outcome, BaseException) else None
        self._status = "down"
        self._next_attempt_at = time.monotonic() + sleep_s
        _log.warning(
            "database %s not reachable (%s); retrying in %.2f s",
            self.schema,
            self._last_error,
            sleep_s,
        )

    async def _create_pool(self) -> Any:  # noqa: ANN401 (asyncpg.Pool; asyncpg is untyped)
        return await asyncpg.create_pool(
            dsn=self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            command_timeout=self._command_timeout_s,
            timeout=self._connect_timeout_s,
            server_settings={
                "search_path": self.schema,
                "application_name": f"sensor_backend.{self.schema}",
            },
        )

    # ------------------------------------------------------------------ calls

    async def run(
        self,
        fn: Callable[[Connection], Awaitable[T]],
        *,
        transaction: bool = False,
    ) -> T:
        """Run ``fn(connection)`` on a pooled connection, in a transaction if asked.

        Raises :class:`DatabaseUnavailable` when the breaker is open, the pool is not ready,
        or the connection failed; any other exception from ``fn`` (SQL errors included)
        propagates unchanged.
        """
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable(self._not_ready_retry_after(), self._not_ready_reason())
        breaker = self._breaker
        generation = 0
        if breaker is not None:
            try:
                generation = breaker.acquire()
            except CircuitOpenError as exc:
                raise DatabaseUnavailable(
                    exc.retry_after_s, f"database circuit breaker open ({self.schema})"
                ) from exc
        started = time.monotonic()
        acquired = False
        broken = False
        try:
            async with pool.acquire(timeout=self._connect_timeout_s) as conn:
                acquired = True
                try:
                    result = await _invoke(conn, fn, transaction=transaction)
                except Exception as exc:
                    broken = _breaks_connection(exc, conn)
                    if broken and not isinstance(exc, TimeoutError):
                        # Its protocol state is unknown: never hand it out again.
                        conn.terminate()
                    raise
        except Exception as exc:
            if broken or _is_unavailable(exc, acquired=acquired):
                raise self._failed(generation, started, exc) from exc
            # The database answered (an SQL error) or the callback itself failed.
            self._succeeded(generation, started)
            raise
        except BaseException:
            # Cancelled: no verdict, but give a half-open probe slot back.
            if breaker is not None:
                breaker.release(generation)
            raise
        self._succeeded(generation, started)
        return result

    async def ping(self) -> float:
        """Round-trip ``SELECT 1`` through :meth:`run`; return the latency in seconds."""
        started = time.perf_counter()
        await self.run(_select_one)
        return time.perf_counter() - started

    def _succeeded(self, generation: int, started: float) -> None:
        if self._breaker is not None:
            self._breaker.record_success(generation, time.monotonic() - started)
        self._last_error = None

    def _failed(self, generation: int, started: float, exc: BaseException) -> DatabaseUnavailable:
        breaker = self._breaker
        retry_after = _MIN_RETRY_AFTER_S
        if breaker is not None:
            breaker.record_failure(generation, time.monotonic() - started)
            retry_after = max(retry_after, breaker.retry_after_s)
        self._last_error = _describe(exc)
        return DatabaseUnavailable(retry_after, f"database connection failed ({self.schema})")

    def _not_ready_retry_after(self) -> float:
        if self._status == "down" and self._next_attempt_at:
            return max(_MIN_RETRY_AFTER_S, self._next_attempt_at - time.monotonic())
        return _MIN_RETRY_AFTER_S

    def _not_ready_reason(self) -> str:
        if self._task is None:
            return f"database not started ({self.schema})"
        return f"database {self._status} ({self.schema}): {self._last_error or 'not ready yet'}"


async def _invoke(
    conn: Connection, fn: Callable[[Connection], Awaitable[T]], *, transaction: bool
) -> T:
    if not transaction:
        return await fn(conn)
    async with conn.transaction():
        return await fn(conn)


def _breaks_connection(exc: Exception, conn: Connection) -> bool:
    """Tell "the connection or server failed" from "the call was wrong" (SQL error, misuse)."""
    if isinstance(exc, _UNAVAILABLE_ERRORS):
        return True
    # A connection killed while idle can leave asyncpg's protocol mid-state (seen after a
    # SIGKILLed postmaster: "cannot switch to state 11; another operation (2) is in
    # progress"); that is the connection's failure, not the caller's.
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return True
    # "connection is closed" is an interface error; any other (wrong argument count, use
    # after release) is the caller's bug.
    return isinstance(exc, asyncpg.InterfaceError) and bool(conn.is_closed())


def _is_unavailable(exc: Exception, *, acquired: bool) -> bool:
    """Classify an error from acquiring or releasing a connection."""
    if isinstance(exc, _UNAVAILABLE_ERRORS):
        return True
    # "pool is closing" while acquiring.
    return not acquired and isinstance(exc, asyncpg.InterfaceError)


async def _select_one(conn: Connection) -> None:
    await conn.fetchval("SELECT 1")


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."  # noqa: PLR2004


async def server_answers(dsn: str, timeout_s: float = 1.5) -> bool:
    """Whether PostgreSQL answers ``SELECT 1`` on one short direct connection.

    Bypasses any pool and breaker: the launcher's readiness check, and a service's health
    probe while its database breaker is open.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    try:
        await conn.fetchval("SELECT 1", timeout=timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    finally:
        await conn.close(timeout=timeout_s)
    return True

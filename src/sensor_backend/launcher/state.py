"""The running system's state on disk: ``<data_dir>/run/state.json`` and a lock file.

The supervisor writes the state atomically (temp file + rename) whenever a component changes;
``status`` and ``down`` read it from another process. An exclusive ``flock`` on
``run/launcher.lock`` keeps two supervisors off one data directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass(slots=True)
class ComponentState:
    name: str
    kind: str
    url: str
    port: int
    log: str
    service: str | None = None
    pid: int | None = None
    state: str = "pending"  # pending, starting, running, exited, stopped, failed, frozen
    exit_code: int | None = None
    started_at: float | None = None


@dataclass(slots=True)
class SystemState:
    supervisor_pid: int
    data_dir: str
    phase: str = "starting"  # starting, ready, failed, stopping, stopped
    error: str | None = None
    components: list[ComponentState] = field(default_factory=list)

    def component(self, name: str) -> ComponentState | None:
        return next((c for c in self.components if c.name == name), None)


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def state_path(data_dir: Path) -> Path:
    return run_dir(data_dir) / "state.json"


def write_state(data_dir: Path, state: SystemState) -> None:
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def read_state(data_dir: Path) -> SystemState | None:
    try:
        raw: dict[str, Any] = json.loads(state_path(data_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    components = [ComponentState(**c) for c in raw.pop("components", [])]
    return SystemState(**raw, components=components)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not alive for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


class LauncherLock:
    """An exclusive lock on the data directory, held for the supervisor's lifetime."""

    def __init__(self, data_dir: Path) -> None:
        self.path = run_dir(data_dir) / "launcher.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

"""Tables for the terminal: components, URLs, PIDs, process state and health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from sensor_backend.launcher.state import SystemState

STYLES = {
    "healthy": "green",
    "running": "green",
    "degraded": "yellow",
    "starting": "cyan",
    "pending": "dim",
    "frozen": "magenta",
    "unhealthy": "red",
    "down": "red",
    "failed": "red",
    "exited": "red",
    "stopped": "dim",
}


def styled(word: str, key: str | None = None) -> str:
    style = STYLES.get(key or word, "white")
    return f"[{style}]{word}[/{style}]"


def component_table(state: SystemState, health: dict[str, str] | None = None) -> Table:
    table = Table(
        title=f"sensor-backend ({state.phase})",
        title_justify="left",
        caption=f"data and logs in {state.data_dir}",
        caption_justify="left",
    )
    table.add_column("component", no_wrap=True)
    table.add_column("url", no_wrap=True)
    table.add_column("pid", justify="right")
    table.add_column("process")
    if health is not None:
        table.add_column("health")
    table.add_column("log", no_wrap=True)
    for comp in state.components:
        process = comp.state
        if comp.exit_code is not None and comp.state in {"exited", "failed"}:
            process = f"{comp.state} ({comp.exit_code})"
        row = [comp.name, comp.url, str(comp.pid or "-"), styled(process, comp.state)]
        if health is not None:
            row.append(styled(health.get(comp.name, "unknown")))
        row.append(_relative(comp.log, state.data_dir))
        table.add_row(*row)
    return table


def _relative(path: str, data_dir: str) -> str:
    prefix = data_dir.rstrip("/") + "/"
    return path.removeprefix(prefix)

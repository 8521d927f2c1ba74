"""The running supervisor's control API, on a Unix socket (``<data_dir>/run/control.sock``).

Drills and operators use it to act on one component of a running system: SIGKILL it (a
crash), SIGSTOP/SIGCONT it (a hang), stop it gracefully, start it again. A Unix socket with
mode 0600 keeps it to the local user: nothing listens on the network.

    GET  /components                  the state document
    POST /components/{name}/{action}  action: kill, stop, start, restart, freeze, thaw
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from pathlib import Path

    from sensor_backend.launcher.supervisor import Supervisor

ACTIONS = ("kill", "stop", "start", "restart", "freeze", "thaw")


def socket_path(data_dir: Path) -> Path:
    return data_dir / "run" / "control.sock"


class ControlServer:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.path = socket_path(supervisor.data_dir)
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/components", self._components)
        app.router.add_post("/components/{name}/{action}", self._act)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        site = web.UnixSite(self._runner, str(self.path))
        await site.start()
        self.path.chmod(0o600)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _components(self, _: web.Request) -> web.Response:
        return web.json_response(asdict(self.supervisor.state))

    async def _act(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        action = request.match_info["action"]
        if name not in self.supervisor.managed:
            known = sorted(self.supervisor.managed)
            return web.json_response(
                {"error": f"unknown component {name!r}", "known": known}, status=404
            )
        if action not in ACTIONS:
            return web.json_response(
                {"error": f"unknown action {action!r}", "actions": ACTIONS}, status=404
            )
        async with self._lock:
            try:
                await self._do(name, action)
            except Exception as exc:  # noqa: BLE001 - reported to the caller, supervisor stays up
                return web.json_response({"error": f"{action} {name} failed: {exc}"}, status=500)
        state = self.supervisor.managed[name].state
        return web.json_response({"component": name, "action": action, "state": asdict(state)})

    async def _do(self, name: str, action: str) -> None:
        sup = self.supervisor
        if action == "kill":
            sup.signal(name, signal.SIGKILL)
            process = sup.managed[name].process
            if process is not None:
                await asyncio.to_thread(process.wait)
            sup.after_kill(name)
            sup.reap()
        elif action == "stop":
            await sup.stop(name)
        elif action == "start":
            await sup.start(name)
        elif action == "restart":
            await sup.stop(name)
            await sup.start(name)
        elif action == "freeze":
            sup.signal(name, signal.SIGSTOP)
        else:
            sup.signal(name, signal.SIGCONT)


class ControlClient:
    """Talks to a running supervisor's control socket."""

    def __init__(self, data_dir: Path, timeout_s: float = 90.0) -> None:
        self.path = socket_path(data_dir)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _request(self, method: str, url: str) -> dict[str, Any]:
        connector = aiohttp.UnixConnector(path=str(self.path))
        async with (
            aiohttp.ClientSession(connector=connector, timeout=self.timeout) as session,
            session.request(method, f"http://supervisor{url}") as resp,
        ):
            body: dict[str, Any] = await resp.json()
            if resp.status >= 400:  # noqa: PLR2004
                raise ControlError(str(body.get("error", resp.status)))
            return body

    async def components(self) -> dict[str, Any]:
        return await self._request("GET", "/components")

    async def act(self, name: str, action: str) -> dict[str, Any]:
        return await self._request("POST", f"/components/{name}/{action}")


class ControlError(RuntimeError):
    """The supervisor refused or failed an action."""

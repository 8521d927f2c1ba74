"""``sensor-backend client ...``: rig clients on the running system, without curl.

    sensor-backend client create --name rig-7 --scopes tests:write,tests:read
    sensor-backend client list
    sensor-backend client rotate CLIENT_ID
    sensor-backend client revoke CLIENT_ID
    sensor-backend client bulk rigs.csv          (or a .json file: {"clients": [...]})

They log in at the running system's gateway as the admin, with the password the launcher
keeps in ``<data dir>/secrets/admin_password`` (or ``ADMIN_PASSWORD``), as ``drill`` does,
and call auth's admin routes (``/auth/clients``). A secret is printed once, as auth answers
it; nothing is logged. ``sensor-auth-admin`` does the same against the database directly.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensor_backend.core.scopes import SCOPES
from sensor_backend.launcher.state import pid_alive, read_state

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

TIMEOUT_S = 30.0


class ClientCommandError(Exception):
    """What went wrong, for the operator (no secret in it)."""


def _request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:  # noqa: ANN401 - parsed JSON
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - the gateway's own http URL
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            doc = json.loads(exc.read())
            reason = f"{doc.get('error')}: {doc.get('message')}"
        except ValueError:
            reason = exc.reason
        raise ClientCommandError(
            f"{method} {urllib.parse.urlsplit(url).path}: {exc.code} {reason}"
        ) from exc
    except (urllib.error.URLError, TimeoutError) as exc:
        raise ClientCommandError(f"the gateway at {url} does not answer: {exc}") from exc


class AdminSession:
    """The admin's token at the running gateway."""

    def __init__(self, gateway_url: str, password: str, username: str = "admin") -> None:
        self.url = gateway_url.rstrip("/")
        form = urllib.parse.urlencode(
            {"grant_type": "password", "username": username, "password": password}
        ).encode()
        doc = _request(
            f"{self.url}/auth/token",
            method="POST",
            body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self._token: str = doc["access_token"]

    def call(
        self, method: str, path: str, *, body: bytes | None = None, content_type: str = ""
    ) -> Any:  # noqa: ANN401 - parsed JSON
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        return _request(f"{self.url}{path}", method=method, body=body, headers=headers)


def parse_scopes(value: str) -> list[str]:
    scopes = list(dict.fromkeys(s for s in re.split(r"[\s,;]+", value) if s))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise ClientCommandError(
            f"--scopes: choose from {', '.join(SCOPES)}"
            + (f" (unknown: {unknown[0]!r})" if unknown else "")
        )
    return scopes


def run(
    args: argparse.Namespace, password: Callable[[Path], str], out: Callable[[str], None]
) -> int:
    """One ``client`` verb against the running system; 0 on success, 2 otherwise."""
    data_dir = Path(args.data_dir).resolve()
    state = read_state(data_dir)
    if state is None or not pid_alive(state.supervisor_pid) or state.phase != "ready":
        raise ClientCommandError("no running system: start it with `sensor-backend up` first")
    gateway = next((c for c in state.components if c.service == "gateway"), None)
    if gateway is None:
        raise ClientCommandError("the running system has no gateway")
    session = AdminSession(
        gateway.url, password(data_dir), os.environ.get("ADMIN_USERNAME", "admin")
    )
    doc: Any
    if args.client_command == "create":
        body = json.dumps({"name": args.name, "scopes": parse_scopes(args.scopes)}).encode()
        doc = session.call("POST", "/auth/clients", body=body, content_type="application/json")
    elif args.client_command == "list":
        doc = session.call("GET", "/auth/clients")
    elif args.client_command in {"rotate", "revoke"}:
        client_id = urllib.parse.quote(args.client_id, safe="")
        doc = session.call("POST", f"/auth/clients/{client_id}/{args.client_command}")
    else:
        path = Path(args.file)
        kind = "application/json" if path.suffix.lower() == ".json" else "text/csv"
        doc = session.call("POST", "/auth/clients/bulk", body=path.read_bytes(), content_type=kind)
    out(json.dumps(doc, indent=2))
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser, func: Callable[..., int]) -> None:  # noqa: ANN401 - argparse's private subparsers type
    client = sub.add_parser(
        "client",
        parents=[common],
        help="rig clients (OAuth client credentials) on the running system",
    )
    verbs = client.add_subparsers(dest="client_command", required=True)
    create = verbs.add_parser(
        "create", parents=[common], help="a rig's client: id and secret, printed once"
    )
    create.add_argument("--name", required=True, help="the rig's name, e.g. rig-7")
    create.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
    verbs.add_parser("list", parents=[common], help="every client (never a secret)")
    for verb, text in (
        ("rotate", "a new secret; the old one is refused"),
        ("revoke", "refuse the client and its tokens"),
    ):
        one = verbs.add_parser(verb, parents=[common], help=text)
        one.add_argument("client_id")
    bulk = verbs.add_parser(
        "bulk", parents=[common], help="many clients from a CSV (name,scopes) or JSON file"
    )
    bulk.add_argument("file")
    client.set_defaults(func=func)

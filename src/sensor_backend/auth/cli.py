"""``sensor-auth-admin``: operator commands against the auth schema.

    sensor-auth-admin create-admin --username NAME   password from ADMIN_PASSWORD or a prompt
    sensor-auth-admin rotate-key                     new signing key; old one stays in the JWKS
    sensor-auth-admin create-client --name rig-7 --scopes tests:write,tests:read
                                                     a rig's client; prints its id and secret once
    sensor-auth-admin list-clients                   every client (never a secret)
    sensor-auth-admin rotate-client CLIENT_ID        a new secret (printed once); the old one dies
    sensor-auth-admin revoke-client CLIENT_ID        refuse its secret and, at /verify, its tokens

They talk to PostgreSQL directly (``DATABASE_URL``) and apply pending migrations first, so
they work before the service has ever started. ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from sensor_backend.auth.clients import ClientRepository, SecretHasher
from sensor_backend.auth.keys import KeyStore
from sensor_backend.auth.passwords import PasswordService
from sensor_backend.auth.settings import AuthSettings
from sensor_backend.auth.users import UserRepository
from sensor_backend.core.db import Database
from sensor_backend.core.errors import ServiceError
from sensor_backend.core.jwt_verify import JwtVerifier
from sensor_backend.core.scopes import SCOPES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MIN_PASSWORD = 8
CLI_CREATOR = "sensor-auth-admin"


async def _with_db(settings: AuthSettings) -> Database:
    db = Database(
        dsn=settings.database_url,
        schema="auth",
        migrations=files("sensor_backend.auth").joinpath("migrations"),
        min_size=1,
        max_size=2,
    )
    await db.start()
    await db.wait_until_up(timeout_s=30)
    return db


async def create_admin(settings: AuthSettings, username: str, password: str) -> bool:
    db = await _with_db(settings)
    passwords = PasswordService(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        workers=1,
    )
    try:
        return await UserRepository(db).ensure_admin(username, await passwords.hash(password))
    finally:
        passwords.close()
        await db.stop()


async def rotate_key(settings: AuthSettings) -> str:
    db = await _with_db(settings)
    try:
        verifier = JwtVerifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        keys = KeyStore(db, verifier, token_ttl_s=settings.access_token_ttl_s)
        await keys.load()
        return await keys.rotate()
    finally:
        await db.stop()


async def client_command(
    settings: AuthSettings, action: Callable[[ClientRepository], Awaitable[Any]]
) -> Any:  # noqa: ANN401 - whatever the action returns
    db = await _with_db(settings)
    try:
        return await action(ClientRepository(db, SecretHasher(settings.client_secret_key)))
    finally:
        await db.stop()


def parse_scopes(value: str) -> tuple[str, ...]:
    """``tests:write,tests:read`` (commas or spaces) as scopes; exits naming an unknown one."""
    scopes = tuple(dict.fromkeys(s for s in re.split(r"[\s,;]+", value) if s))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        sys.exit(
            f"unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}"
            if unknown
            else f"--scopes needs at least one of {', '.join(SCOPES)}"
        )
    return scopes


def _clients(args: argparse.Namespace, settings: AuthSettings) -> None:
    if args.command == "create-client":
        scopes = parse_scopes(args.scopes)
        client, secret = asyncio.run(
            client_command(settings, lambda r: r.create(args.name, scopes, CLI_CREATOR))
        )
        _print_client({**client.public(), "client_secret": secret}, as_json=args.json)
    elif args.command == "rotate-client":
        client, secret = asyncio.run(client_command(settings, lambda r: r.rotate(args.client_id)))
        _print_client({**client.public(), "client_secret": secret}, as_json=args.json)
    elif args.command == "revoke-client":
        client = asyncio.run(client_command(settings, lambda r: r.revoke(args.client_id)))
        _print_client(client.public(), as_json=args.json)
    else:
        clients = asyncio.run(client_command(settings, lambda r: r.list_all()))
        docs = [c.public() for c in clients]
        if args.json:
            print(json.dumps({"clients": docs}, indent=2))  # noqa: T201
        for doc in [] if args.json else docs:
            state = "active" if doc["active"] else f"revoked {doc['revoked_at']}"
            print(f"{doc['client_id']}  {doc['name']:<24} {' '.join(doc['scopes']):<40} {state}")  # noqa: T201


def _print_client(doc: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, indent=2))  # noqa: T201
        return
    lines = [
        f"client_id:     {doc['client_id']}",
        f"name:          {doc['name']}",
        f"scopes:        {' '.join(doc['scopes'])}",
        f"state:         {'active' if doc['active'] else 'revoked'}",
    ]
    if "client_secret" in doc:
        lines.append(f"client_secret: {doc['client_secret']}")
        lines.append("(the secret is shown this once: store it on the rig now)")
    print("\n".join(lines))  # noqa: T201


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sensor-auth-admin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    admin = sub.add_parser("create-admin", help="create an admin user (no-op if the name exists)")
    admin.add_argument("--username", default=os.environ.get("ADMIN_USERNAME", "admin"))
    sub.add_parser("rotate-key", help="make a new signing key; old tokens stay valid")
    create = sub.add_parser("create-client", help="a rig's client (id and secret printed once)")
    create.add_argument("--name", required=True, help="the rig's name, e.g. rig-7")
    create.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
    listing = sub.add_parser("list-clients", help="every client (never a secret)")
    rotate = sub.add_parser("rotate-client", help="a new secret; the old one is refused")
    rotate.add_argument("client_id")
    revoke = sub.add_parser("revoke-client", help="refuse the client and its tokens")
    revoke.add_argument("client_id")
    for one in (create, listing, rotate, revoke):
        one.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    settings = AuthSettings()
    if args.command.endswith("-client") or args.command == "list-clients":
        try:
            _clients(args, settings)
        except ServiceError as exc:
            sys.exit(f"{exc.code}: {exc.message}")
        return
    if args.command == "create-admin":
        password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("admin password: ")
        if len(password) < MIN_PASSWORD:
            sys.exit("password must have at least 8 characters")
        created = asyncio.run(create_admin(settings, args.username, password))
        print(f"admin {args.username!r} {'created' if created else 'already exists'}")  # noqa: T201
    else:
        kid = asyncio.run(rotate_key(settings))
        print(f"new signing key {kid}; previous keys stay published until their tokens expire")  # noqa: T201


if __name__ == "__main__":
    main()

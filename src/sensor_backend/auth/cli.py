"""``sensor-auth-admin``: operator commands against the auth schema.

    sensor-auth-admin create-admin --username NAME   password from ADMIN_PASSWORD or a prompt
    sensor-auth-admin rotate-key                     new signing key; old one stays in the JWKS

Both talk to PostgreSQL directly (``DATABASE_URL``) and apply pending migrations first, so
they work before the service has ever started.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from importlib.resources import files

from sensor_backend.auth.keys import KeyStore
from sensor_backend.auth.passwords import PasswordService
from sensor_backend.auth.settings import AuthSettings
from sensor_backend.auth.users import UserRepository
from sensor_backend.core.db import Database
from sensor_backend.core.jwt_verify import JwtVerifier

MIN_PASSWORD = 8


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sensor-auth-admin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    admin = sub.add_parser("create-admin", help="create an admin user (no-op if the name exists)")
    admin.add_argument("--username", default=os.environ.get("ADMIN_USERNAME", "admin"))
    sub.add_parser("rotate-key", help="make a new signing key; old tokens stay valid")
    args = parser.parse_args(argv)
    settings = AuthSettings()
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

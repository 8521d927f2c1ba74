"""The auth service in-process against the real embedded PostgreSQL: endpoints, errors, attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from harness import eventually

from sensor_backend.auth.app import build_app
from sensor_backend.auth.settings import AuthSettings

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-password-for-tests"  # noqa: S105 - a test fixture's password
PASSWORD = "correct horse battery"  # noqa: S105


def settings_for(dsn: str, **overrides: object) -> AuthSettings:
    values: dict[str, object] = {
        "database_url": dsn,
        "admin_password": ADMIN_PASSWORD,
        # Cheap argon2 for tests; production keeps RFC 9106's 64 MiB (the default).
        "argon2_memory_kib": 8192,
        "argon2_time_cost": 1,
        "argon2_parallelism": 1,
        "revocation_refresh_s": 0.2,
        "access_token_ttl_s": 600,
    }
    values.update(overrides)
    return AuthSettings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running(settings: AuthSettings):
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:

            async def keys_loaded() -> bool:
                return (await client.get("/health")).json()["signing_keys_loaded"]

            assert await eventually(keys_loaded, 20), "auth never loaded its keys"
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def client(fresh_db_dsn: str):
    async with running(settings_for(fresh_db_dsn)) as c:
        yield c


async def register(client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD):
    return await client.post("/register", json={"username": username, "password": password})


async def login(client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD, **kw):
    return await client.post("/token", data={"username": username, "password": password}, **kw)


async def token_for(client: httpx.AsyncClient, username: str = "alice") -> str:
    await register(client, username)
    response = await login(client, username)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signing_key(client: httpx.AsyncClient):
    return client.app.state.auth.keys._signing  # type: ignore[attr-defined]


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": "sensor-backend-auth",
        "aud": "sensor-backend",
        "sub": "00000000-0000-0000-0000-000000000001",
        "roles": ["user"],
        "iat": now,
        "exp": now + 300,
        "jti": "forged",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict, payload: dict, sign) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


# -- register ------------------------------------------------------------------------------
async def test_register_returns_the_user_without_the_hash(client):
    """POST /register answers 201 with id, username and roles, never the password hash."""
    response = await register(client)
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "alice"
    assert body["roles"] == ["user"]
    assert "password" not in json.dumps(body)
    assert "argon2" not in response.text


async def test_duplicate_username_is_409_case_insensitively(client):
    """A username taken in any letter case answers 409 with a JSON error."""
    assert (await register(client, "Bob")).status_code == 201
    response = await register(client, "bob")
    assert response.status_code == 409
    assert response.json()["error"] == "username_taken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab", "password": PASSWORD}, "body.username"),
        ({"username": "a" * 65, "password": PASSWORD}, "body.username"),
        ({"username": "bad name", "password": PASSWORD}, "body.username"),
        ({"username": "x'; DROP TABLE users;--", "password": PASSWORD}, "body.username"),
        ({"username": "ünïcode", "password": PASSWORD}, "body.username"),
        ({"username": "carol", "password": "short"}, "body.password"),
        ({"username": "carol", "password": "p" * 257}, "body.password"),
        ({"username": "carol"}, "body.password"),
        ({"username": "carol", "password": PASSWORD, "roles": ["admin"]}, "body.roles"),
    ],
)
async def test_bad_registration_is_422_naming_the_field(client, body, field):
    """Invalid usernames and passwords (and a smuggled role) answer 422 naming the field."""
    response = await client.post("/register", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert field in [f["field"] for f in response.json()["fields"]]


async def test_register_with_a_non_json_body_is_a_4xx_json_error(client):
    """A body that is not JSON is refused with a JSON error, not a 500."""
    response = await client.post(
        "/register", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


# -- token ---------------------------------------------------------------------------------
async def test_token_with_form_and_json(client):
    """The password grant works as an OAuth2 form and as JSON, and is not cacheable."""
    await register(client)
    form = await login(client)
    as_json = await client.post("/token", json={"username": "alice", "password": PASSWORD})
    for response in (form, as_json):
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"  # noqa: S105 - not a password
        assert body["expires_in"] == 600
        assert response.headers["cache-control"] == "no-store"


async def test_wrong_password_and_unknown_user_get_the_same_answer(client):
    """Wrong password and unknown user give the same 401 and message (no enumeration)."""
    await register(client)
    wrong = await login(client, "alice", "wrong password!")
    unknown = await login(client, "nobody", "wrong password!")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_unknown_user_still_pays_for_a_hash(client):
    """An unknown user's login still runs an argon2 verification (similar timing)."""
    hasher = client.app.state.auth.passwords._hasher
    calls = []
    original = hasher.verify

    def spy(password, hashed):
        calls.append(hashed)
        return original(password, hashed)

    hasher.verify = spy
    assert (await login(client, "nobody", "whatever-pass")).status_code == 401
    assert len(calls) == 1
    assert calls[0].startswith("$argon2id$")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": {"username": "alice"}}, 422),
        (
            {
                "data": {
                    "username": "alice",
                    "password": PASSWORD,
                    "grant_type": "authorization_code",
                }
            },
            400,
        ),
        # The client credentials grant takes no username or password: 422 naming them.
        (
            {
                "data": {
                    "username": "alice",
                    "password": PASSWORD,
                    "grant_type": "client_credentials",
                }
            },
            422,
        ),
        ({"content": b"<xml/>", "headers": {"content-type": "application/xml"}}, 400),
        ({"content": b"{bad", "headers": {"content-type": "application/json"}}, 400),
    ],
)
async def test_bad_token_requests_are_4xx_json(client, kwargs, status):
    """Missing fields, other grant types, wrong content types and broken JSON are clear 4xx."""
    response = await client.post("/token", **kwargs)
    assert response.status_code == status
    assert "error" in response.json()


async def test_login_rate_limit_per_username(client):
    """After 5 failures for one username, even the right password gets 429 with Retry-After."""
    await register(client)
    for _ in range(5):
        assert (await login(client, "alice", "wrong password!")).status_code == 401
    response = await login(client)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"] == "too_many_requests"


async def test_login_rate_limit_per_client_address(client):
    """20 failures from one forwarded address across usernames block that address only."""
    spray = {"X-Forwarded-For": "203.0.113.7"}
    for i in range(20):
        await login(client, f"user{i}", "wrong password!", headers=spray)
    assert (await login(client, "someone", "wrong password!", headers=spray)).status_code == 429
    other = {"X-Forwarded-For": "198.51.100.9"}
    assert (await login(client, "someone", "wrong password!", headers=other)).status_code == 401


async def test_admin_is_bootstrapped_with_the_admin_role(client):
    """ADMIN_USERNAME/ADMIN_PASSWORD create an admin on first start; the role is in the token."""
    response = await login(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 200
    verified = await client.get("/verify", headers=bearer(response.json()["access_token"]))
    assert set(verified.json()["roles"]) == {"user", "admin"}


# -- verify --------------------------------------------------------------------------------
async def test_verify_a_good_token(client):
    """/verify answers valid with sub, roles, exp and jti for a fresh token."""
    token = await token_for(client)
    response = await client.get("/verify", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["roles"] == ["user"]
    assert body["exp"] > time.time()
    assert body["jti"]
    assert body["user_checked"] is True


def _hs256_with_public_key(key) -> str:
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return raw_token(
        {"alg": "HS256", "kid": key.kid, "typ": "JWT"},
        claims(),
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )


def _tampered(sign) -> str:
    header, payload, signature = sign(claims()).split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["roles"] = ["admin"]
    return f"{header}.{b64(json.dumps(forged).encode())}.{signature}"


def _forged(client, kind: str) -> str:
    key = signing_key(client)

    def sign(payload: dict, kid: str = key.kid) -> str:
        return jwt.encode(payload, key.private_key, algorithm="EdDSA", headers={"kid": kid})

    now = int(time.time())
    builders = {
        "expired": lambda: sign(claims(exp=now - 60, iat=now - 120)),
        "not_yet_valid": lambda: sign(claims(nbf=now + 600)),
        "wrong_issuer": lambda: sign(claims(iss="someone-else")),
        "wrong_audience": lambda: sign(claims(aud="another-api")),
        "missing_jti": lambda: sign(claims(jti=None)),
        "wrong_kid": lambda: sign(claims(), kid="nope"),
        "alg_none": lambda: raw_token({"alg": "none", "kid": key.kid}, claims(), lambda _: b""),
        "hs256_with_public_key": lambda: _hs256_with_public_key(key),
        "tampered": lambda: _tampered(sign),
        "garbage": lambda: "not.a.token",
    }
    return builders[kind]()


ATTACKS = [
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "missing_jti",
    "wrong_kid",
    "alg_none",
    "hs256_with_public_key",
    "tampered",
    "garbage",
]


@pytest.mark.parametrize("kind", ATTACKS)
async def test_verify_refuses_every_broken_token(client, kind):
    """Each attack is refused with 401 and WWW-Authenticate: Bearer error="invalid_token"."""
    response = await client.get("/verify", headers=bearer(_forged(client, kind)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["error"] == "unauthorized"


async def test_a_correctly_signed_forged_token_for_a_missing_user_is_refused(client):
    """A valid signature is not enough: the token's user must still exist."""
    key = signing_key(client)
    token = jwt.encode(claims(), key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
    response = await client.get("/verify", headers=bearer(token))
    assert response.status_code == 401
    assert "no longer exists" in response.json()["message"]


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Bearer "])
async def test_verify_without_a_bearer_token_is_401(client, header):
    """No or malformed Authorization header answers 401 with WWW-Authenticate."""
    headers = {"Authorization": header} if header is not None else {}
    response = await client.get("/verify", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


# -- jwks, revoke, rotation, restart ------------------------------------------------------
async def test_jwks_publishes_public_keys_only(client):
    """The JWKS has one Ed25519 key with kid, alg and use, and no private part."""
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "EdDSA"
    assert key["kid"] == signing_key(client).kid
    assert "d" not in key


async def test_revoked_token_is_refused(client):
    """POST /revoke by the owner makes /verify refuse that token."""
    token = await token_for(client)
    response = await client.post("/revoke", headers=bearer(token))
    assert response.status_code == 200
    assert (await client.get("/verify", headers=bearer(token))).status_code == 401


async def test_only_owner_or_admin_may_revoke(client):
    """Revoking another user's token is 403; an admin may, also by token id."""
    alice = await token_for(client, "alice")
    bob = await token_for(client, "bob")
    denied = await client.post("/revoke", headers=bearer(bob), json={"token": alice})
    assert denied.status_code == 403
    by_jti = await client.post("/revoke", headers=bearer(bob), json={"jti": "x"})
    assert by_jti.status_code == 403
    admin = (await login(client, "admin", ADMIN_PASSWORD)).json()["access_token"]
    alice_jti = (await client.get("/verify", headers=bearer(alice))).json()["jti"]
    assert (
        await client.post("/revoke", headers=bearer(admin), json={"jti": alice_jti})
    ).status_code == 200
    assert (await client.get("/verify", headers=bearer(alice))).status_code == 401
    assert (await client.get("/verify", headers=bearer(bob))).status_code == 200


async def test_rotation_keeps_old_tokens_valid(client):
    """After a rotation, new tokens use the new kid and old tokens still verify."""
    old = await token_for(client)
    old_kid = signing_key(client).kid
    new_kid = await client.app.state.auth.keys.rotate()
    assert new_kid != old_kid
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {old_kid, new_kid}
    new = (await login(client)).json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    for token in (old, new):
        assert (await client.get("/verify", headers=bearer(token))).status_code == 200


async def test_restart_keeps_keys_and_tokens_valid(fresh_db_dsn):
    """A second auth process on the same database verifies the first one's tokens."""
    async with running(settings_for(fresh_db_dsn)) as first:
        token = await token_for(first)
    async with running(settings_for(fresh_db_dsn)) as second:
        assert (await second.get("/verify", headers=bearer(token))).status_code == 200


async def test_no_password_or_token_reaches_the_logs(client, caplog):
    """Registering, logging in and verifying never log a password, token or hash."""
    caplog.set_level(logging.DEBUG)
    token = await token_for(client, "dave")
    await client.get("/verify", headers=bearer(token))
    await login(client, "dave", "wrong password!")
    text = "\n".join(str(r.msg) + str(r.args) for r in caplog.records)
    assert caplog.records
    for secret in (PASSWORD, "wrong password!", token, "$argon2id$"):
        assert secret not in text


async def test_service_account_is_bootstrapped_with_only_the_service_role(fresh_db_dsn):
    """SERVICE_ACCOUNT_PASSWORD creates a machine account whose token has role service only."""
    settings = settings_for(fresh_db_dsn, service_account_password="relay-password-123")  # noqa: S106
    async with running(settings) as client:
        # Accounts are bootstrapped after the keys load (argon2 hashes): wait for that.
        bootstrap = client.app.state.auth._bootstrap
        assert await eventually(bootstrap.done, 20), "accounts never bootstrapped"
        response = await login(client, "sensor-relay", "relay-password-123")
        assert response.status_code == 200
        verified = await client.get("/verify", headers=bearer(response.json()["access_token"]))
        assert verified.json()["roles"] == ["service"]

"""The client credentials grant and scope checks (issue 14), without processes.

Tokens are real Ed25519 JWTs checked by the JwtVerifier every service uses; the grant runs
in AuthService with an in-memory client repository and signing key.
"""

from __future__ import annotations

import base64
import time
import types
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sensor_backend.auth.client_routes import _csv_rows
from sensor_backend.auth.clients import Client, SecretHasher
from sensor_backend.auth.oauth import (
    ClientCredentials,
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    basic_credentials,
    client_credentials,
)
from sensor_backend.auth.rate_limit import LoginLimiter
from sensor_backend.auth.service import AuthService
from sensor_backend.auth.settings import AuthSettings
from sensor_backend.core.errors import TooManyRequests, Unauthorized
from sensor_backend.core.jwt_verify import Claims, JwtVerifier, TokenError
from sensor_backend.core.token_auth import (
    Authenticated,
    InsufficientScope,
    TokenAuthenticator,
    require_scope,
)

ISS = "sensor-backend-auth"
AUD = "sensor-backend"
KEY = Ed25519PrivateKey.generate()


def signed(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": AUD, "iat": now, "exp": now + 60, "jti": "j", **claims}
    return jwt.encode(payload, KEY, algorithm="EdDSA", headers={"kid": "k1"})


def verifier() -> JwtVerifier:
    v = JwtVerifier(issuer=ISS, audience=AUD)
    v.add_key("k1", KEY.public_key())
    return v


def authenticated(scopes: tuple[str, ...] | None, roles: tuple[str, ...] = ()) -> Authenticated:
    claims = Claims(
        sub="s",
        roles=roles,
        exp=0,
        iat=0,
        jti="j",
        iss=ISS,
        scopes=scopes,
        client_id=None if scopes is None else "c",
    )
    return Authenticated(claims, "auth")


# -- claims and scope checks -------------------------------------------------------------


def test_a_client_token_carries_its_scopes_and_id():
    claims = verifier().verify(
        signed(sub="c1", client_id="c1", scope="tests:read tests:write", roles=[])
    )
    assert claims.scopes == ("tests:read", "tests:write")
    assert claims.client_id == "c1"
    assert claims.allows("tests:read")
    assert not claims.allows("events:write")
    assert claims.as_dict()["scope"] == "tests:read tests:write"


def test_a_persons_token_keeps_the_rights_of_its_roles():
    claims = verifier().verify(signed(sub="u1", roles=["user"]))
    assert claims.scopes is None
    assert claims.client_id is None
    assert claims.allows("tests:write")
    assert claims.as_dict()["scope"] is None


def test_a_client_token_without_scope_gets_no_rights():
    claims = verifier().verify(signed(sub="c1", client_id="c1"))
    assert claims.scopes == ()
    assert not claims.allows("tests:read")


@pytest.mark.parametrize("claims", [{"scope": ["tests:read"]}, {"client_id": 7}])
def test_malformed_scope_claims_are_refused(claims):
    with pytest.raises(TokenError):
        verifier().verify(signed(sub="c1", **claims))


def test_require_scope_names_the_missing_scope():
    reader = authenticated(("tests:read",))
    assert require_scope(reader, "tests:read") is reader
    with pytest.raises(InsufficientScope) as caught:
        require_scope(reader, "tests:write")
    error = caught.value
    assert error.status_code == 403
    assert error.body()["error"] == "insufficient_scope"
    assert error.body()["required_scope"] == "tests:write"
    assert "tests:write" in error.message
    assert 'scope="tests:write"' in error.headers()["WWW-Authenticate"]
    person = authenticated(None, roles=("user",))
    assert require_scope(person, "tests:write") is person


def test_the_subject_and_client_id_are_exposed_for_rate_limits():
    rig = authenticated(("tests:read",))
    assert rig.subject == "s"
    assert rig.client_id == "c"
    assert rig.is_client
    assert not authenticated(None).is_client


def test_verify_answers_carry_the_scope_to_every_service():
    fake = types.SimpleNamespace(_jwks=types.SimpleNamespace(verifier=verifier()))
    body = {
        "valid": True,
        "sub": "c1",
        "roles": [],
        "exp": 1,
        "jti": "j",
        "scope": "events:write",
        "client_id": "c1",
    }
    claims = TokenAuthenticator._claims(fake, body)  # type: ignore[arg-type]
    assert claims.scopes == ("events:write",)
    assert claims.client_id == "c1"
    person = TokenAuthenticator._claims(fake, {**body, "scope": None, "client_id": None})  # type: ignore[arg-type]
    assert person.scopes is None
    with pytest.raises(ValueError, match="scope"):
        TokenAuthenticator._claims(fake, {**body, "scope": 3})  # type: ignore[arg-type]


# -- client authentication (RFC 6749 §2.3.1) ----------------------------------------------


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_basic_credentials_are_form_decoded():
    creds = basic_credentials(basic("rig%3A7", "a%2Bb+c"))
    assert creds == ClientCredentials("rig:7", "a+b c")
    assert "a+b c" not in repr(creds)
    assert basic_credentials(None) is None
    assert basic_credentials("Bearer x") is None


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()])
def test_malformed_basic_credentials_are_invalid_client(header):
    with pytest.raises(InvalidClient) as caught:
        basic_credentials(header)
    assert caught.value.status_code == 401
    assert caught.value.headers()["WWW-Authenticate"].startswith("Basic")


def test_credentials_in_the_header_and_the_body_are_refused():
    with pytest.raises(InvalidRequest):
        client_credentials(basic("a", "b"), {"client_id": "a"})
    with pytest.raises(InvalidClient):
        client_credentials(None, {})
    assert client_credentials(None, {"client_id": "a", "client_secret": "b"}).client_id == "a"


def test_secrets_are_high_entropy_and_stored_keyed():
    hasher = SecretHasher("pepper")
    secret = hasher.new_secret()
    assert len(secret) >= 43
    stored = hasher.hash(secret)
    assert stored.startswith("hmac-sha256$")
    assert secret not in stored
    assert hasher.verify(secret, stored)
    assert not hasher.verify(secret + "x", stored)
    assert not hasher.verify(secret, None)
    assert SecretHasher("other").hash(secret) != stored


# -- the grant ----------------------------------------------------------------------------


class FakeClients:
    def __init__(self, hasher: SecretHasher) -> None:
        self.hasher = hasher
        self.secret = hasher.new_secret()
        self.client = Client(
            str(uuid.uuid4()),
            "rig-7",
            ("tests:read", "tests:write"),
            hasher.hash(self.secret),
            None,  # type: ignore[arg-type]
            "admin",
            None,
            None,
        )

    async def authenticate(self, client_id: str, secret: str) -> Client | None:
        ok = client_id == self.client.client_id
        return (
            self.client
            if self.hasher.verify(secret, self.client.secret_hash if ok else None)
            else None
        )


class FakeKeys:
    loaded = True

    @staticmethod
    def sign(payload: dict[str, Any]) -> str:
        return jwt.encode(payload, KEY, algorithm="EdDSA", headers={"kid": "k1"})


@pytest.fixture
def grant():
    hasher = SecretHasher()
    clients = FakeClients(hasher)
    settings = AuthSettings(admin_password="", client_token_ttl_s=900)
    svc = AuthService(
        settings=settings,
        db=None,  # type: ignore[arg-type]
        users=None,  # type: ignore[arg-type]
        keys=FakeKeys(),  # type: ignore[arg-type]
        revocations=None,  # type: ignore[arg-type]
        passwords=None,  # type: ignore[arg-type]
        limiter=LoginLimiter(max_failures=3, max_client_failures=100),
        verifier=verifier(),
        clients=clients,  # type: ignore[arg-type]
    )
    return svc, clients


async def test_the_grant_signs_a_short_lived_scoped_token(grant):
    svc, clients = grant
    creds = ClientCredentials(clients.client.client_id, clients.secret)
    answer = await svc.client_token(creds, None, "10.0.0.1")
    assert answer["expires_in"] == 900
    assert answer["scope"] == "tests:read tests:write"
    claims = verifier().verify(answer["access_token"])
    assert claims.client_id == claims.sub == clients.client.client_id
    assert claims.roles == ()
    assert claims.exp - claims.iat == 900
    narrow = await svc.client_token(creds, "tests:read", "10.0.0.1")
    assert narrow["scope"] == "tests:read"


async def test_a_scope_beyond_the_clients_is_invalid_scope(grant):
    svc, clients = grant
    creds = ClientCredentials(clients.client.client_id, clients.secret)
    with pytest.raises(InvalidScope) as caught:
        await svc.client_token(creds, "tests:read events:write", "10.0.0.1")
    assert caught.value.status_code == 400
    assert caught.value.body()["error"] == "invalid_scope"


async def test_failed_client_authentications_are_rate_limited(grant):
    svc, clients = grant
    wrong = ClientCredentials(clients.client.client_id, "wrong")
    for _ in range(3):
        with pytest.raises(InvalidClient):
            await svc.client_token(wrong, None, "10.0.0.1")
    with pytest.raises(TooManyRequests):
        await svc.client_token(
            ClientCredentials(clients.client.client_id, clients.secret), None, "10.0.0.2"
        )
    assert issubclass(InvalidClient, Exception)
    assert not issubclass(InvalidClient, Unauthorized)  # Basic, not Bearer, in its header


# -- bulk CSV -----------------------------------------------------------------------------


def test_csv_rows_are_judged_one_by_one():
    rows = _csv_rows(
        b"Name,Scopes\nrig-1,tests:read tests:write\n,tests:read\nrig-3,tests:fly\n"
        b"rig-4,events:write;events:read\nrig-5,tests:read,extra\n"
    )
    assert [(n, name, problem is None) for n, name, _, problem in rows] == [
        (1, "rig-1", True),
        (2, None, False),
        (3, "rig-3", False),
        (4, "rig-4", True),
        (5, "rig-5", False),
    ]
    assert rows[3][2] == ("events:write", "events:read")
    assert "tests:fly" in (rows[2][3] or "")

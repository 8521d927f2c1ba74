"""HTTP routes of the auth service."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from sensor_backend.auth.oauth import (
    CLIENT_CREDENTIALS,
    MAX_CREDENTIAL_CHARS,
    PASSWORD,
    UnsupportedGrantType,
    client_credentials,
)
from sensor_backend.auth.service import AuthService
from sensor_backend.core.errors import BadRequest, Unauthorized, Unavailable
from sensor_backend.core.jwt_verify import Claims, TokenError, bearer_token
from sensor_backend.core.openapi import error_responses
from sensor_backend.core.scopes import SCOPE_LIST_PATTERN
from sensor_backend.core.security import Authorization

router = APIRouter()
MAX_SCOPE_CHARS = 256

# Letters, digits and . _ - ; starts with a letter or digit (no look-alike punctuation games).
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN, min_length=3, max_length=64)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]


class RegisterRequest(BaseModel):
    model_config = {"extra": "forbid"}
    username: Username
    password: Password


class LoginRequest(BaseModel):
    # Unknown fields are refused (the schema says additionalProperties: false), so a
    # misspelt field is an answer naming it, not a mysterious 401.
    model_config = {"extra": "forbid"}
    username: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class RevokeRequest(BaseModel):
    model_config = {"extra": "forbid"}
    token: str | None = Field(default=None, max_length=8192)
    jti: str | None = Field(default=None, min_length=1, max_length=128)


class UserOut(BaseModel):
    id: str
    username: str
    roles: list[str]
    created_at: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    # The client credentials grant: the scopes granted (RFC 6749 §5.1); absent for people.
    scope: str | None = None


class VerifyOut(BaseModel):
    valid: bool
    sub: str
    roles: list[str]
    exp: int
    jti: str
    # A machine client's token: its scopes (space-separated) and id; null for people.
    scope: str | None = None
    client_id: str | None = None
    revocation_may_be_stale: bool
    user_checked: bool


def service(request: Request) -> AuthService:
    svc: AuthService = request.app.state.auth
    return svc


Service = Annotated[AuthService, Depends(service)]


def _trusted(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request, trusted: list[str]) -> str:
    """The client's address, read through trusted proxies (addresses or CIDR ranges).

    X-Forwarded-For is read right to left, skipping hops that are themselves trusted
    proxies (nginx, the gateway); the first untrusted hop is the client. Anyone else's
    X-Forwarded-For is ignored, so a client cannot choose its own rate-limit bucket.
    """
    peer = request.client.host if request.client else "unknown"
    networks = [ipaddress.ip_network(t, strict=False) for t in trusted]
    if not _trusted(peer, networks):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return peer
        if not _trusted(address, networks):
            return address
    return peer


def _bearer(authorization: str | None) -> str:
    try:
        return bearer_token(authorization)
    except TokenError as exc:
        raise Unauthorized(str(exc), token_error=authorization is not None) from exc


@router.post(
    "/register",
    status_code=201,
    response_model=UserOut,
    tags=["auth"],
    responses=error_responses(409, 503),
)
async def register(body: RegisterRequest, svc: Service) -> dict[str, object]:
    """Create a user with the `user` role; 409 when the username is taken."""
    user = await svc.register(body.username, body.password)
    return user.public()


_LOGIN_SCHEMA = LoginRequest.model_json_schema()
# OAuth2 form fields a password-grant client may send besides the credentials (RFC 6749
# §4.3.2 scope, §2.3.1 client credentials): accepted and ignored for that grant.
_OAUTH_FORM_FIELDS = ("scope", "client_id", "client_secret")
_SCOPE_STRING = {"type": "string", "pattern": SCOPE_LIST_PATTERN, "maxLength": 256}
_CREDENTIAL = {"type": "string", "minLength": 1, "maxLength": MAX_CREDENTIAL_CHARS}
# The client credentials grant's form (RFC 6749 §4.4.2): the client authenticates with
# HTTP Basic (preferred) or client_id and client_secret in the form (§2.3.1).
_CLIENT_GRANT_SCHEMA = {
    "title": "ClientCredentialsGrant",
    "type": "object",
    "properties": {
        "grant_type": {"type": "string", "enum": [CLIENT_CREDENTIALS]},
        "scope": _SCOPE_STRING,
        "client_id": _CREDENTIAL,
        "client_secret": _CREDENTIAL,
    },
    "required": ["grant_type"],
    "additionalProperties": False,
}
_PASSWORD_GRANT_SCHEMA = {
    **_LOGIN_SCHEMA,
    "title": "PasswordGrant",
    "properties": {
        "grant_type": {"type": "string", "enum": [PASSWORD]},
        **{name: {"type": "string"} for name in _OAUTH_FORM_FIELDS},
        **_LOGIN_SCHEMA["properties"],
    },
}
_TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"oneOf": [_PASSWORD_GRANT_SCHEMA, _CLIENT_GRANT_SCHEMA]}
            },
            "application/json": {"schema": _LOGIN_SCHEMA},
        },
    }
}


class UnprocessableError(BadRequest):
    status_code = 422
    code = "validation_error"

    def __init__(self, fields: list[dict[str, str]]) -> None:
        first = fields[0]["field"] if fields else "body"
        super().__init__(f"invalid {first}", fields=fields)


def _validation_error(exc: ValidationError) -> UnprocessableError:
    fields = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
    return UnprocessableError(fields)


async def _token_request(request: Request) -> LoginRequest | dict[str, str]:
    """A password grant (RFC 6749 §4.3.2, form or JSON), or a client credentials form."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            data: Any = json.loads(raw)
        elif content_type in {"application/x-www-form-urlencoded", ""}:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
            data = {key: values[0] for key, values in form.items()}
            grant = data.pop("grant_type", None)
            if grant == CLIENT_CREDENTIALS:
                return _client_form(data)
            for name in _OAUTH_FORM_FIELDS:
                data.pop(name, None)
            if grant not in {None, PASSWORD}:
                raise UnsupportedGrantType("grant_type must be 'password' or 'client_credentials'")
        else:
            raise BadRequest("send username and password as a form or JSON")
        return LoginRequest.model_validate(data)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ValidationError):
            raise _validation_error(exc) from exc
        raise BadRequest("request body is not valid form data or JSON") from exc


def _client_form(data: dict[str, str]) -> dict[str, str]:
    """The client credentials form's fields; 422 naming an unknown or malformed one."""
    fields = [
        {"field": name, "message": "unexpected field"}
        for name in data
        if name not in {"scope", "client_id", "client_secret"}
    ]
    scope = data.get("scope")
    if scope is not None and (len(scope) > MAX_SCOPE_CHARS or not scope.strip()):
        fields.append({"field": "scope", "message": "scope must list scopes"})
    fields += [
        {"field": name, "message": "must have 1 to 256 characters"}
        for name in ("client_id", "client_secret")
        if name in data and not 0 < len(data[name]) <= MAX_CREDENTIAL_CHARS
    ]
    if fields:
        raise UnprocessableError(fields)
    return data


@router.post(
    "/token",
    response_model=TokenOut,
    tags=["auth"],
    openapi_extra=_TOKEN_BODY,
    responses=error_responses(400, 401, 429, 503),
)
async def token(request: Request, svc: Service) -> JSONResponse:
    """OAuth2 token endpoint: the password grant, or the client credentials grant (rigs).

    Client credentials (RFC 6749 §4.4): the client's id and secret in HTTP Basic (or as
    ``client_id``/``client_secret`` in the form), an optional ``scope`` narrowing the
    client's scopes. Errors carry the RFC 6749 §5.2 codes in ``error``.
    """
    body = await _token_request(request)
    client = client_address(request, svc.settings.trusted_proxies)
    if isinstance(body, LoginRequest):
        result = await svc.login(body.username, body.password, client)
    else:
        creds = client_credentials(request.headers.get("authorization"), body)
        result = await svc.client_token(creds, body.get("scope"), client)
    # RFC 6749 §5.1: token responses must not be cached.
    return JSONResponse(result, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.get("/verify", response_model=VerifyOut, tags=["auth"], responses=error_responses(401, 503))
async def verify(svc: Service, authorization: Authorization) -> dict[str, Any]:
    """Validate a bearer token: signature, claims, revocation and that its user exists."""
    verified = await svc.verify(_bearer(authorization))
    return verified.body()


@router.get("/.well-known/jwks.json", tags=["auth"], responses=error_responses(503))
async def jwks(svc: Service) -> JSONResponse:
    """The public keys that verify access tokens (RFC 7517)."""
    if not svc.keys.loaded:
        raise Unavailable("signing keys not loaded yet (database unavailable)", retry_after_s=5)
    return JSONResponse(svc.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.post("/revoke", tags=["auth"], responses=error_responses(401, 403, 503))
async def revoke(
    svc: Service, authorization: Authorization, body: RevokeRequest | None = None
) -> dict[str, str]:
    """Revoke the presented token, another of the caller's, or (admin) any token id."""
    caller: Claims = svc.check_token(_bearer(authorization))
    jti = await svc.revoke(
        caller, token=body.token if body else None, jti=body.jti if body else None
    )
    return {"revoked": jti}

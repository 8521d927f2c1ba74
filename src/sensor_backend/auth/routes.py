"""HTTP routes of the auth service."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from sensor_backend.auth.service import AuthService
from sensor_backend.core.errors import BadRequest, Unauthorized, Unavailable
from sensor_backend.core.jwt_verify import Claims, TokenError, bearer_token
from sensor_backend.core.openapi import error_responses
from sensor_backend.core.security import Authorization

router = APIRouter()

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


class VerifyOut(BaseModel):
    valid: bool
    sub: str
    roles: list[str]
    exp: int
    jti: str
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
# OAuth2 form fields a standard client may send besides the credentials (RFC 6749 §4.3.2
# scope, §2.3.1 client credentials): accepted and ignored, this server has no scopes or
# registered clients.
_OAUTH_FORM_FIELDS = ("scope", "client_id", "client_secret")
# The form carries the same fields (one schema, so both say what validation accepts).
_TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    **_LOGIN_SCHEMA,
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        **{name: {"type": "string"} for name in _OAUTH_FORM_FIELDS},
                        **_LOGIN_SCHEMA["properties"],
                    },
                }
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


async def _login_request(request: Request) -> LoginRequest:
    """OAuth2 password flow form (RFC 6749 §4.3.2), or the same fields as JSON."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            data: Any = json.loads(raw)
        elif content_type in {"application/x-www-form-urlencoded", ""}:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
            data = {key: values[0] for key, values in form.items()}
            grant = data.pop("grant_type", None)
            for name in _OAUTH_FORM_FIELDS:
                data.pop(name, None)
            if grant not in {None, "password"}:
                raise BadRequest(
                    "grant_type must be 'password'", error_code="unsupported_grant_type"
                )
        else:
            raise BadRequest("send username and password as a form or JSON")
        return LoginRequest.model_validate(data)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ValidationError):
            fields = [
                {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()
            ]
            raise UnprocessableError(fields) from exc
        raise BadRequest("request body is not valid form data or JSON") from exc


@router.post(
    "/token",
    response_model=TokenOut,
    tags=["auth"],
    openapi_extra=_TOKEN_BODY,
    responses=error_responses(401, 429, 503),
)
async def token(request: Request, svc: Service) -> JSONResponse:
    """OAuth2 password grant: an access token for valid credentials."""
    body = await _login_request(request)
    client = client_address(request, svc.settings.trusted_proxies)
    result = await svc.login(body.username, body.password, client)
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

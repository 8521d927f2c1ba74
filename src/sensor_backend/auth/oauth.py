"""OAuth 2.0 token-endpoint errors (RFC 6749 §5.2) and client authentication (§2.3.1).

The errors keep the project's JSON error body (core.errors): ``error`` is the OAuth error
code itself, ``message`` and ``error_description`` say why, so an OAuth client library and
our own clients both read them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from sensor_backend.core.errors import BadRequest, ServiceError

CLIENT_CREDENTIALS = "client_credentials"
PASSWORD = "password"  # noqa: S105 - the grant's name, not a secret
GRANT_TYPES = (PASSWORD, CLIENT_CREDENTIALS)
MAX_CREDENTIAL_CHARS = 256


class OAuthError(BadRequest):
    """400 with an RFC 6749 §5.2 error code."""

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message, error_description=message, **extra)


class InvalidRequest(OAuthError):
    code = "invalid_request"


class InvalidScope(OAuthError):
    code = "invalid_scope"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"


class InvalidClient(ServiceError):
    """401: client authentication failed (unknown client, wrong secret, revoked, none sent).

    RFC 6749 §5.2: the answer names the scheme the client may use (HTTP Basic).
    """

    status_code = 401
    code = "invalid_client"

    def __init__(self, message: str = "client authentication failed") -> None:
        super().__init__(message, error_description=message)

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="sensor-backend", charset="UTF-8"'}


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str = ""

    def __repr__(self) -> str:  # never a secret in a log line or a traceback
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret=***)"


def basic_credentials(authorization: str | None) -> ClientCredentials | None:
    """The client id and secret of an ``Authorization: Basic`` header (RFC 6749 §2.3.1).

    Both are form-urlencoded before base64 (RFC 6749 Appendix B), so they are decoded after
    splitting at the first colon. None when the header is absent or is not Basic.
    """
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed Basic credentials") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("malformed Basic credentials")
    return ClientCredentials(unquote_plus(client_id), unquote_plus(secret))


def client_credentials(authorization: str | None, form: dict[str, str]) -> ClientCredentials:
    """The client's credentials from Basic or the form body, never both (RFC 6749 §2.3)."""
    basic = basic_credentials(authorization)
    in_body = "client_id" in form or "client_secret" in form
    if basic is not None and in_body:
        raise InvalidRequest("send client credentials in the Authorization header or the body")
    creds = basic or ClientCredentials(form.get("client_id", ""), form.get("client_secret", ""))
    if not creds.client_id or not creds.client_secret:
        raise InvalidClient("client authentication required")
    if len(creds.client_id) > MAX_CREDENTIAL_CHARS or len(creds.client_secret) > (
        MAX_CREDENTIAL_CHARS
    ):
        raise InvalidClient
    return creds

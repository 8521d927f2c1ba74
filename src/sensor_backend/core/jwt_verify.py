"""Access-token verification against a set of public keys (a JWKS), shared by every service.

Auth verifies with its own keys; the gateway and the sensor service verify locally with the
cached JWKS when auth is down (DESIGN.md §4). The rules are the same everywhere:
- the algorithm is allow-listed (EdDSA): ``alg: none`` and HS* (including HS256 "signed" with
  the public key, RFC 8725 §2.1 and §3.1) are refused before any key is touched;
- the ``kid`` must name a known key;
- ``exp``, ``iat``, ``iss``, ``aud``, ``sub`` and ``jti`` are required; ``iss`` and ``aud``
  must match; ``exp``/``nbf`` are checked with a small leeway for clock skew.

    TokenError                 the token is not acceptable (401)
    └── UnknownKeyError        its kid is not in the key set (refresh the JWKS and retry once)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import OKPAlgorithm

ALLOWED_ALGORITHMS = ("EdDSA",)
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")
MAX_TOKEN_BYTES = 8192


# Fixed messages per PyJWT error (never the library's text: it may echo token contents).
_REASONS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "token audience not accepted"),
    (jwt.InvalidIssuerError, "token issuer not accepted"),
    (jwt.InvalidSignatureError, "token signature invalid"),
)


class TokenError(Exception):
    """The token was refused; the message says why (safe to return to the client)."""


class UnknownKeyError(TokenError):
    def __init__(self, kid: str | None) -> None:
        super().__init__("token signed with an unknown key")
        self.kid = kid


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    roles: tuple[str, ...]
    exp: int
    iat: int
    jti: str
    iss: str
    # None: a person's token (no ``scope`` claim), with the rights of its roles. A tuple:
    # a machine client's token, limited to these scopes (core.scopes).
    scopes: tuple[str, ...] | None = None
    client_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def allows(self, scope: str) -> bool:
        """Whether the token may act within ``scope`` (people's tokens: always)."""
        return self.scopes is None or scope in self.scopes

    @property
    def scope(self) -> str | None:
        """The space-separated ``scope`` value, or None for a person's token."""
        return None if self.scopes is None else " ".join(self.scopes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "roles": list(self.roles),
            "exp": self.exp,
            "jti": self.jti,
            "scope": self.scope,
            "client_id": self.client_id,
        }


def public_jwk(public_key: Any, kid: str) -> dict[str, Any]:  # noqa: ANN401 - cryptography key
    """The RFC 7517 / RFC 8037 JWK of an Ed25519 public key, with ``kid``, ``alg`` and ``use``."""
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    return jwk


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or TokenError."""
    if not authorization:
        raise TokenError("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenError("authorization header must be 'Bearer <token>'")
    return token


class JwtVerifier:
    def __init__(self, *, issuer: str, audience: str, leeway_s: float = 5.0) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._keys: dict[str, Any] = {}

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def set_jwks(self, jwks: dict[str, Any]) -> None:
        """Replace the key set with the EdDSA signing keys of a JWKS document."""
        keys: dict[str, Any] = {}
        for entry in jwks.get("keys", []):
            if not isinstance(entry, dict):
                continue
            kid = entry.get("kid")
            if (
                not isinstance(kid, str)
                or entry.get("kty") != "OKP"
                or entry.get("use", "sig") != "sig"
            ):
                continue
            try:
                keys[kid] = OKPAlgorithm.from_jwk(entry)
            except (jwt.InvalidKeyError, ValueError, TypeError):
                continue
        self._keys = keys

    def add_key(self, kid: str, public_key: Any) -> None:  # noqa: ANN401 - cryptography key
        self._keys = {**self._keys, kid: public_key}

    def verify(self, token: str) -> Claims:
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenError("malformed token") from exc
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise TokenError("token algorithm not allowed")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKeyError(kid if isinstance(kid, str) else None)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the {exc.claim} claim") from exc
        except jwt.InvalidTokenError as exc:
            reason = next((msg for kind, msg in _REASONS if isinstance(exc, kind)), "token invalid")
            raise TokenError(reason) from exc
        return _claims(payload)


def _claims(payload: dict[str, Any]) -> Claims:
    roles = payload.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise TokenError("token roles claim invalid")
    sub, jti = payload["sub"], payload["jti"]
    if not isinstance(sub, str) or not isinstance(jti, str):
        raise TokenError("token sub and jti must be strings")
    scopes, client_id = scope_claims(payload.get("scope"), payload.get("client_id"))
    return Claims(
        sub=sub,
        roles=tuple(roles),
        exp=int(payload["exp"]),
        iat=int(payload["iat"]),
        jti=jti,
        iss=str(payload["iss"]),
        scopes=scopes,
        client_id=client_id,
    )


def scope_claims(scope: Any, client_id: Any) -> tuple[tuple[str, ...] | None, str | None]:  # noqa: ANN401 - JSON values
    """The scopes and client id of a token's claims (or /verify's answer).

    No ``scope`` and no ``client_id``: a person's token (None: the role's rights). A client
    token without a ``scope`` gets no scopes at all, never a person's rights.
    """
    if client_id is not None and (not isinstance(client_id, str) or not client_id):
        raise TokenError("token client_id claim invalid")
    if scope is None:
        return (None if client_id is None else ()), client_id
    if not isinstance(scope, str):
        raise TokenError("token scope claim invalid")
    return tuple(dict.fromkeys(scope.split())), client_id

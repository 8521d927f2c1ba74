"""Errors shared by the services and their mapping to JSON HTTP responses.

    ServiceError                  base: carries an HTTP status, a code and a message
    ├── BadRequest (400)
    ├── Unauthorized (401, WWW-Authenticate: Bearer)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    ├── PayloadTooLarge (413)
    ├── TooManyRequests (429, Retry-After)
    └── Unavailable (503, Retry-After)  a dependency is down or its breaker is open

Every error body is JSON: ``{"error": code, "message": text, ...extra}``. Domain code raises
these; outside errors (asyncpg, aiohttp, aiokafka) are converted at the boundary with
``raise ... from exc``. One handler table in `core.app` maps them to responses.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class ServiceError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """A missing or refused bearer token (RFC 6750 §3: error="invalid_token")."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, *, token_error: bool = True, **extra: object) -> None:
        super().__init__(message, **extra)
        self.token_error = token_error

    def headers(self) -> dict[str, str]:
        if not self.token_error:
            return {"WWW-Authenticate": "Bearer"}
        # The description is one of our fixed messages: no quotes or CR/LF can reach it.
        return {
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{self.message}"'
        }


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class RequestTimeout(ServiceError):
    """The client stopped sending its request body (RFC 9110 §15.5.9)."""

    status_code = 408
    code = "request_timeout"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class _RetryLaterError(ServiceError):
    def __init__(self, message: str, *, retry_after_s: float, **extra: object) -> None:
        # Retry-After is whole seconds (RFC 9110 §10.2.3); never advertise 0.
        self.retry_after = max(1, math.ceil(retry_after_s))
        super().__init__(message, retry_after=self.retry_after, **extra)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyRequests(_RetryLaterError):
    status_code = 429
    code = "too_many_requests"


class Unavailable(_RetryLaterError):
    status_code = 503
    code = "service_unavailable"

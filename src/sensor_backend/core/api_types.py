"""Request value types shared by the services, whose schema says exactly what is accepted.

- `Rfc3339`: the OpenAPI ``date-time`` format is RFC 3339 (a date, a time and an offset).
  Pydantic would also take ``0.5`` (seconds since the epoch), a bare date or a time without
  an offset; a naive time means a different instant on every server, and a number is
  simply not what the schema promises, so only RFC 3339 text passes.
- `INT64_MAX`: the largest integer PostgreSQL's ``bigint`` (and numpy's int64) holds; an
  integer field without a tighter bound gets this one, so a huge number is a 422 naming the
  field, not an overflow in the driver.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator

INT64_MAX = 2**63 - 1
RFC3339_HINT = "must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z"
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339_only(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(RFC3339_HINT)
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339_only)]

"""One validator at every service's edge for text no parser or PostgreSQL can take.

PostgreSQL ``text`` cannot hold NUL (U+0000), and a lone surrogate (U+D800 to U+DFFF not in
a pair) cannot be encoded as UTF-8 at all: either one reaching a query or an encoder is a
500. Invalid UTF-8 in a URL does not fail, it is silently turned into U+FFFD by the ASGI
server, so a filter would search for a string the client never sent. Route by route checks
would miss a route sooner or later, so `InputGuard` (a raw ASGI middleware, no task per
request) refuses all of them before routing, with the project's 422 body naming the field:

- the path, every query parameter name and value, every header value: NUL, lone
  surrogates, invalid UTF-8 (RFC 9110 §5.5 forbids NUL in field values anyway);
- request bodies, when the route reads them: JSON strings (and keys) holding NUL or a lone
  surrogate, and the non-JSON literals ``NaN``/``Infinity`` (refused by every parser here,
  but a 422 naming the field says more than "not JSON"); form bodies like the query; CSV
  bodies for NUL and invalid UTF-8; multipart bodies not at all (binary parts, `MULTIPART`).

Bodies are checked lazily, inside ``receive``: a route that authenticates first and then
reads its body (the sensor service's 64 MiB test bodies) still reads nothing for a caller
without a token. The common case costs two substring scans; only a body that holds a
suspicious escape or literal is parsed here, to name the field.

Integer ranges are not checked here: a number's limits belong to its field, so each model
declares them (``le=2**63 - 1``), and the OpenAPI document shows them.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from sensor_backend.core.errors import ServiceError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")
# A JSON escape that decodes to NUL or to half of a surrogate pair (pairs are checked after
# decoding); the literal prefix keeps the scan at memchr speed on a 64 MiB body.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_NON_FINITE = (b"NaN", b"Infinity")
# Above this size a suspicious body is parsed in a thread, not on the event loop.
_INLINE_PARSE_BYTES = 256 * 1024
FORM = "application/x-www-form-urlencoded"
CSV = "text/csv"
# Multipart bodies hold binary parts (the sensor service's .npy readings, sensor/uploads.py,
# whose parser takes only numbers and puts no text into PostgreSQL): there is no text to
# check, and scanning 24 MB of arrays for JSON escapes cost 0.2 s of a million-reading
# upload. A route that reads text parts must check them itself.
MULTIPART = "multipart/form-data"


class UnsafeInputError(ServiceError):
    """422 in the shape of the request-validation errors (``fields`` names the input)."""

    status_code = 422
    code = "validation_error"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(
            f"invalid {field}: {problem}",
            fields=[{"field": field, "message": problem, "type": "unsafe_text"}],
        )
        self.field = field


class UnsafeBodyError(StarletteHTTPException):
    """Raised from ``receive`` while a route reads its body; rendered by core.app's handler.

    An HTTPException because FastAPI re-raises those from body parsing (anything else
    would become its generic 400), and Starlette's handler table also catches it around
    raw ASGI routes.
    """

    def __init__(self, error: UnsafeInputError) -> None:
        super().__init__(status_code=422, detail=error.message)
        self.error = error


def text_problem(text: str) -> str | None:
    """Why PostgreSQL or an encoder cannot take ``text``, or None."""
    found = _UNSAFE_TEXT.search(text)
    if found is None:
        return None
    return "must not contain NUL" if found.group() == "\x00" else "contains a lone surrogate"


def _is_clean(raw: bytes) -> bool:
    """True when a whole query string or form body is NUL-free UTF-8 once decoded."""
    if raw.isascii() and b"%" not in raw:
        return b"\x00" not in raw
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _UNSAFE_TEXT.search(text) is None


def _decoded(raw: bytes, *, form: bool) -> tuple[str | None, str | None]:
    """(text, problem) of one percent-encoded URL component."""
    if raw.isascii() and b"%" not in raw and b"\x00" not in raw:
        # The common case, without a decode: plain ASCII is valid UTF-8 and NUL-free.
        return raw.decode("ascii"), None
    data = unquote_to_bytes(raw.replace(b"+", b" ") if form else raw)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "is not valid UTF-8"
    return text, text_problem(text)


def _pairs_problem(raw: bytes, prefix: str) -> UnsafeInputError | None:
    """The first unsafe name or value of ``a=1&b=2`` (a query string or a form body)."""
    if _is_clean(raw):
        return None  # one decode for the common case; pair by pair only to name the field
    for pair in raw.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name, problem = _decoded(raw_name, form=True)
        if name is None or problem is not None:
            return UnsafeInputError(prefix, f"a parameter name {problem}")
        _, problem = _decoded(raw_value, form=True)
        if problem is not None:
            return UnsafeInputError(f"{prefix}.{name}", problem)
    return None


def _header_problem(headers: list[tuple[bytes, bytes]]) -> UnsafeInputError | None:
    for key, value in headers:
        if value.isascii() and b"\x00" not in value:
            continue  # the common case: ASCII is valid UTF-8
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return UnsafeInputError(f"header.{key.decode('latin-1')}", "is not valid UTF-8")
        problem = text_problem(text)
        if problem is not None:
            return UnsafeInputError(f"header.{key.decode('latin-1')}", problem)
    return None


def request_line_problem(scope: Scope) -> UnsafeInputError | None:
    """The first unsafe part of the path, the query or a header, or None."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    _, problem = _decoded(raw_path, form=False)
    if problem is not None:
        return UnsafeInputError("path", problem)
    query: bytes = scope.get("query_string", b"")
    error = _pairs_problem(query, "query") if query else None
    return error or _header_problem(scope.get("headers", []))


def _printable(key: str) -> str:
    """A key as the error names it: the refused characters escaped, never echoed raw."""
    return _UNSAFE_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", key)


@dataclass(frozen=True, slots=True)
class _NonFinite:
    literal: str


def _walk(doc: Any, path: str) -> Iterator[tuple[str, Any]]:  # noqa: ANN401 - any JSON value
    """Every (field path, value) of a JSON document, keys included; iterative (deep input)."""
    stack: list[tuple[str, Any]] = [(path, doc)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for key, value in reversed(node.items()):
                yield f"{where}.{_printable(key)}", key
                stack.append((f"{where}.{_printable(key)}", value))
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(node))))
        else:
            yield where, node


def _json_suspicious(raw: bytes) -> bool:
    return _SUSPECT_ESCAPE.search(raw) is not None or any(lit in raw for lit in _NON_FINITE)


def json_body_problem(raw: bytes) -> UnsafeInputError | None:
    """The first JSON string with NUL or a lone surrogate, or NaN/Infinity, by field."""
    if not _json_suspicious(raw):
        return None
    try:
        doc = json.loads(raw, parse_constant=_NonFinite)
    except (ValueError, RecursionError):
        return None  # not JSON at all: the route's own parser answers that
    for field, value in _walk(doc, "body"):
        if isinstance(value, _NonFinite):
            return UnsafeInputError(field, f"{value.literal} is not a JSON number")
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            return UnsafeInputError(field, problem)
    return None


def _csv_problem(raw: bytes) -> UnsafeInputError | None:
    """CSV is text: UTF-8 without NUL (one memchr and one decode, no parse)."""
    if b"\x00" in raw:
        return UnsafeInputError("body", "must not contain NUL")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return UnsafeInputError("body", "is not valid UTF-8")
    return None


async def body_problem(raw: bytes, content_type: str) -> UnsafeInputError | None:
    if content_type == FORM:
        return _pairs_problem(raw, "body")
    if content_type == MULTIPART:
        return None
    if content_type == CSV:
        return _csv_problem(raw)
    # Every other body here is read as JSON whatever its declared type.
    if len(raw) > _INLINE_PARSE_BYTES and _json_suspicious(raw):
        return await asyncio.to_thread(json_body_problem, raw)
    return json_body_problem(raw)


def _content_type(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"content-type":
            return str(value.decode("latin-1")).split(";")[0].strip().lower()
    return ""


class InputGuard:
    """Refuse unsafe text before any route sees it (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, body_scan_paths: frozenset[str] | None = None) -> None:
        self.app = app
        self.body_scan_paths = body_scan_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = request_line_problem(scope)
        if error is not None:
            response = JSONResponse(error.body(), status_code=error.status_code)
            await response(scope, receive, send)
            return
        if self.body_scan_paths is not None and scope["path"] not in self.body_scan_paths:
            await self.app(scope, receive, send)
            return
        content_type = _content_type(scope)
        chunks: list[bytes] = []

        async def receive_checked() -> Message:
            # The whole body is handed on as one message once it is complete and checked;
            # the routes here read bodies whole anyway (Starlette joins the chunks).
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            chunks.clear()
            problem = await body_problem(body, content_type) if body else None
            if problem is not None:
                raise UnsafeBodyError(problem)
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, receive_checked, send)

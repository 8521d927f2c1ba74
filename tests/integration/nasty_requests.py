"""Requests for every operation of an OpenAPI document, with one input made nasty.

Used by the property-based test in test_nasty_input.py: the operations come from each
app's own ``/openapi.json`` (so a new route is covered the day it is added), and each
generated request puts one nasty value in one place: a path parameter, a query parameter,
a header, or a field of the JSON or form body. Everything else is a plausible value, so
the nasty one gets as far into the service as it can.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

METHODS = ("get", "put", "post", "delete", "patch")
# Text no parser or PostgreSQL can take, and text only long: as raw bytes for URLs.
NASTY_URL_BYTES = [
    b"a\x00b",
    b"\x00",
    b"\xed\xa0\x80",  # a UTF-8-encoded lone surrogate (invalid UTF-8)
    b"\xed\xb0\x80x",
    b"\xff\xfe",
    b"\xc3",
    b"%00",
    b"x" * 20_000,
    "ü😀\u202e".encode(),
]
# Numbers at the limits of their types, spelt as URL text.
NASTY_URL_NUMBERS = [
    str(2**63),
    str(-(2**63) - 1),
    str(2**64),
    "1" + "0" * 400,
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-0",
    "0.5",
    "1e-400",
]
NASTY_JSON = [
    "a\x00b",
    "\x00",
    "\ud800",
    "x\udfff",
    "x" * 200_000,
    2**63,
    -(2**63) - 1,
    2**64,
    10**400,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    {"k\x00": 1},
    ["\x00"],
]
# Plausible values for path parameters, by name: the nasty one replaces one of them.
PLAUSIBLE_PATH = {
    "sensor_type": "temperature",
    "name": "temperature",
    "service": "sensor",
}
# Bodies that pass validation, so a nasty field replaces one valid field of a valid body.
# /revoke names a token id that was never issued: an empty body would revoke our own.
PLAUSIBLE_BODIES: dict[str, dict[str, Any]] = {
    "/register": {"username": "fuzz-user", "password": "pass-word-1"},
    "/token": {"username": "no-such-user", "password": "not-the-password"},
    "/revoke": {"jti": "never-issued"},
    "/send-event": {"source": "/fuzz", "type": "fuzz.check"},
    "/events": {"source": "/fuzz", "type": "fuzz.check"},
    "/test/": {"simulate": {"n": 30, "seed": 1}},
}
HEADERS = ("idempotency-key", "x-request-id", "traceparent")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_fields: tuple[str, ...]
    media_type: str | None

    def places(self) -> list[tuple[str, str]]:
        """Every (kind, name) a nasty value can go."""
        return [
            *(("path", p) for p in self.path_params),
            *(("query", q) for q in self.query_params),
            ("header", ""),  # one place for all: headers matter on few routes
            *(("body", f) for f in self.body_fields),
            *([("body", "")] if self.media_type else []),
        ]


@dataclass
class NastyRequest:
    method: str
    url: str
    headers: dict[str, str | bytes] = field(default_factory=dict)
    content: bytes | None = None

    def describe(self) -> str:
        body = (self.content or b"")[:200]
        return f"{self.method.upper()} {self.url[:300]} {self.headers} {body!r}"


def _body_schema(op: dict[str, Any], doc: dict[str, Any]) -> tuple[str | None, list[str]]:
    content = op.get("requestBody", {}).get("content", {})
    for media_type in ("application/json", "application/x-www-form-urlencoded"):
        if media_type in content:
            schema = _resolve(content[media_type].get("schema", {}), doc)
            schema = _resolve((schema.get("oneOf") or schema.get("anyOf") or [schema])[0], doc)
            return media_type, sorted(schema.get("properties", {}))
    return None, []


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return found
    return schema


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document."""
    found: list[Operation] = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = op.get("parameters", [])
            media_type, fields = _body_schema(op, doc)
            found.append(
                Operation(
                    method=method,
                    path=path,
                    path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                    query_params=tuple(p["name"] for p in params if p["in"] == "query"),
                    body_fields=tuple(fields),
                    media_type=media_type,
                )
            )
    return found


def _plausible_path_value(name: str) -> bytes:
    return PLAUSIBLE_PATH.get(name, str(uuid.uuid4())).encode()


def _plausible_body(path: str) -> dict[str, Any]:
    for prefix, body in PLAUSIBLE_BODIES.items():
        if path.startswith(prefix) or path.endswith(prefix):
            doc = dict(body)
            if "type" in doc:
                doc["id"] = str(uuid.uuid4())
            return doc
    return {}


def _encode_body(body: Any, media_type: str) -> bytes:
    if media_type == "application/json":
        return json.dumps(body).encode()
    pairs = body.items() if isinstance(body, dict) else [("value", body)]
    return b"&".join(
        quote_from_bytes(str(k).encode("utf-8", "surrogatepass")).encode()
        + b"="
        + quote_from_bytes(str(v).encode("utf-8", "surrogatepass")).encode()
        for k, v in pairs
    )


def build(
    op: Operation,
    kind: str,
    name: str,
    url_value: bytes,
    json_value: Any,
) -> NastyRequest:
    """The request for ``op`` with the nasty value at (kind, name)."""
    path = op.path
    for param in op.path_params:
        raw = url_value if (kind, name) == ("path", param) else _plausible_path_value(param)
        path = path.replace(f"{{{param}}}", quote_from_bytes(raw, safe=""))
    url = path
    if kind == "query":
        url += f"?{quote_from_bytes(name.encode(), safe='')}={quote_from_bytes(url_value, safe='')}"
    request = NastyRequest(op.method, url)
    if kind == "header":
        name = HEADERS[len(url_value) % len(HEADERS)]
        # Header values travel as bytes; control characters and surrounding whitespace
        # cannot be sent at all (h11 refuses them), anything else can.
        request.headers[name] = re.sub(rb"[\x00-\x1f\x7f]", b"?", url_value)[:8000].strip() or b"?"
    if op.media_type:
        body: Any = _plausible_body(op.path)
        if kind == "body":
            body = json_value if name == "" else {**body, name: json_value}
        request.headers["content-type"] = op.media_type
        request.content = _encode_body(body, op.media_type)
    return request


def url_values() -> st.SearchStrategy[bytes]:
    text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
    return st.one_of(
        st.sampled_from(NASTY_URL_BYTES),
        st.sampled_from(NASTY_URL_NUMBERS).map(str.encode),
        st.binary(max_size=40),
        text.map(lambda s: s.encode("utf-8", "surrogatepass")),
    )


def json_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(NASTY_JSON),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(),
        st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    )

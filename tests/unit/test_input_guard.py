"""The input guard at every service's edge: unsafe text is a 422 naming the field.

Driven in-process through `create_app` (the factory every service uses) with
``httpx.ASGITransport``; the database-backed 500 this prevents is covered end to end in
tests/integration/test_nasty_input.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import pytest
from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.input_guard import json_body_problem, text_problem
from sensor_backend.core.settings import ServiceSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI


class GuardSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GUARDTEST_", frozen=True, extra="ignore")
    service_name: ClassVar[str] = "guard"
    default_port: ClassVar[int] = 8098


class Item(BaseModel):
    name: str


def build(body_scan_paths: frozenset[str] | None = None) -> FastAPI:
    ctx = ServiceContext(
        GuardSettings(environment="development"),
        max_body_bytes=1 << 20,
        body_scan_paths=body_scan_paths,
    )
    app = create_app(ctx, title="guard")

    @app.get("/things/{name}")
    async def get_thing(name: str, q: str | None = None) -> dict[str, Any]:
        return {"name": name, "q": q}

    @app.post("/things")
    async def post_thing(item: Item) -> dict[str, str]:
        return item.model_dump()

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/unread")
    async def unread() -> dict[str, str]:
        return {"body": "never read"}

    @app.delete("/things/{name}")
    async def delete_thing(name: str) -> dict[str, str]:
        return {"deleted": name}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://guard") as client:
        yield client


def refused_field(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["message"].startswith(f"invalid {body['fields'][0]['field']}")
    field: str = body["fields"][0]["field"]
    return field


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=a%00b", "query.q"),
        ("q=%ED%A0%80", "query.q"),  # an encoded lone surrogate is not UTF-8
        ("q=%FF", "query.q"),
        ("q=ok&other=%C3", "query.other"),
        ("a%00=1", "query"),
        ("q=a+%00", "query.q"),
    ],
)
async def test_unsafe_query_values_are_422_naming_the_parameter(
    client: httpx.AsyncClient, query: str, field: str
) -> None:
    """NUL or invalid UTF-8 in a query parameter: 422 naming it, the route never runs."""
    response = await client.get(f"/things/x?{query}")
    assert refused_field(response) == field


@pytest.mark.parametrize("segment", ["a%00b", "%ED%A0%80", "%FF%FE"])
async def test_unsafe_path_is_422(client: httpx.AsyncClient, segment: str) -> None:
    """NUL or invalid UTF-8 in the path: 422 naming the path."""
    response = await client.get(f"/things/{segment}")
    assert refused_field(response) == "path"


async def test_header_that_is_not_utf8_is_422_naming_it(client: httpx.AsyncClient) -> None:
    """A header value that is not UTF-8 is refused, naming the header."""
    response = await client.get("/things/x", headers={"X-Tag": b"\xff\xfe"})
    assert refused_field(response) == "header.x-tag"


async def test_safe_unicode_passes(client: httpx.AsyncClient) -> None:
    """Non-ASCII text is fine; only what no parser or PostgreSQL can take is refused."""
    response = await client.get("/things/%C3%BC?q=%F0%9F%98%80+x")
    assert response.status_code == 200
    assert response.json() == {"name": "ü", "q": "😀 x"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"name": "a\\u0000b"}', "body.name"),
        ('{"name": "x", "deep": [{"k": ["ok", "\\u0000"]}]}', "body.deep[0].k[1]"),
        ('{"na\\u0000me": "x"}', "body.na\\u0000me"),
        ('{"name": "\\ud800"}', "body.name"),
        ('{"name": "\\udc00x"}', "body.name"),
        ('{"name": "x", "n": NaN}', "body.n"),
        ('{"name": "x", "n": [1, -Infinity]}', "body.n[1]"),
    ],
)
@pytest.mark.parametrize("route", ["/things", "/raw"])
async def test_unsafe_json_body_is_422_naming_the_field(
    client: httpx.AsyncClient, payload: str, field: str, route: str
) -> None:
    """NUL, a lone surrogate or NaN/Infinity anywhere in a JSON body, model or raw route."""
    response = await client.post(
        route, content=payload, headers={"Content-Type": "application/json"}
    )
    assert refused_field(response) == field


@pytest.mark.parametrize(
    "payload",
    [
        '{"name": "a\\\\u0000b"}',  # an escaped backslash: the text \u0000, not NUL
        '{"name": "\\ud83d\\ude00"}',  # a surrogate pair: one emoji
        '{"name": "NaN and Infinity are words"}',
    ],
)
async def test_look_alikes_pass(client: httpx.AsyncClient, payload: str) -> None:
    """What only looks like an unsafe escape or literal is ordinary text."""
    response = await client.post(
        "/things", content=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == json.loads(payload)["name"]


async def test_form_body_is_checked_like_a_query(client: httpx.AsyncClient) -> None:
    """A form field with NUL is refused naming it."""
    response = await client.post(
        "/raw",
        content="username=%00admin&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused_field(response) == "body.username"


async def test_body_is_checked_only_when_the_route_reads_it(client: httpx.AsyncClient) -> None:
    """Lazy: a route that never reads its body (one refused before) does not pay for it."""
    response = await client.post(
        "/unread", content='{"x": "\\u0000"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200


async def test_streamed_body_is_checked_whole() -> None:
    """A body arriving in chunks is checked as one (an escape may straddle two chunks)."""
    payload = b'{"name": "ab\\u0000"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 3):
            yield payload[i : i + 3]

    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://guard") as client:
        response = await client.post(
            "/raw", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert refused_field(response) == "body.name"


async def test_body_scan_paths_limit_the_body_check() -> None:
    """The gateway checks only the bodies it keeps; the rest are streamed on unread."""
    transport = httpx.ASGITransport(app=build(frozenset({"/raw"})))
    async with httpx.AsyncClient(transport=transport, base_url="http://guard") as client:
        nul = {"content": '{"name": "\\u0000"}', "headers": {"Content-Type": "application/json"}}
        assert (await client.post("/raw", **nul)).status_code == 422
        assert (await client.post("/things", **nul)).status_code == 200
        # The request line is checked everywhere.
        assert (await client.get("/things/x?q=%00")).status_code == 422


async def test_refusal_keeps_the_request_id(client: httpx.AsyncClient) -> None:
    """The guard runs inside the observability middleware: the 422 has its request id."""
    response = await client.get("/things/x?q=%00", headers={"X-Request-ID": "guard-rid"})
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "guard-rid"


async def test_405_allow_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    """Two routes share /things/{name}: the 405's Allow names both (Starlette names one)."""
    response = await client.put("/things/x")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}


def test_text_problem_names_nul_and_lone_surrogates() -> None:
    assert text_problem("plain ü 😀") is None
    assert text_problem("a\x00") == "must not contain NUL"
    assert text_problem("a\ud800") == "contains a lone surrogate"


def test_json_scan_ignores_bodies_that_are_not_json() -> None:
    """Not JSON at all: the route's own parser answers that (400), not the guard."""
    assert json_body_problem(b'{"a": "\\u0000"') is None
    assert json_body_problem(b"[" * 100_000 + b'"\\u0000"') is None

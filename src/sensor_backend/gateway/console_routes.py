"""The operations console: one static page plus one server-side health fan-out.

The page (``/console``) is plain HTML, CSS and JS from the ``console`` package, served with
a strict Content-Security-Policy (``default-src 'self'``, no inline script), so the gateway
alone can show the system even when every other service is down.

``/console/api/system`` exists because the gateway's aggregated ``/health`` keeps only each
replica's summary status: the database, broker, queue, outbox and spool states live in the
services' own health documents, which a browser cannot reach (other ports, other hosts).
The gateway fetches them concurrently with a short timeout; a replica that does not answer
is reported as ``unavailable`` with the error, never as a failed request.
"""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from sensor_backend.core.errors import NotFound
from sensor_backend.core.service_probes import fetch_health
from sensor_backend.gateway.settings import public_name

if TYPE_CHECKING:
    from sensor_backend.core.http_client import SessionHolder
    from sensor_backend.gateway.gateway import Gateway

REPLICA_TIMEOUT_S = 1.0
# The printable report's stylesheet (sensor/report.py ``CSS``) by its hash: the console shows
# the report from a blob URL, and a blob document inherits this page's policy (CSP3 policy
# containers), so without it the report would open unstyled. tests/unit/test_report.py
# fails when the stylesheet changes and this hash does not.
REPORT_STYLE = "'sha256-xzf+lSWzE/Gdmvfv1diNKseOflibDn8NQGDAuHNpmB4='"
CSP = (
    f"default-src 'self'; script-src 'self'; style-src 'self' {REPORT_STYLE}; "
    "img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "plot.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

console_router = APIRouter(tags=["console"])


def _asset(name: str, media_type: str) -> Response:
    body = files("sensor_backend.gateway.console").joinpath(name).read_bytes()
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@console_router.get("/console", summary="The operations console (HTML)", include_in_schema=False)
async def console_page() -> Response:
    return _asset("index.html", "text/html; charset=utf-8")


@console_router.get("/console/static/{name}", include_in_schema=False)
async def console_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:  # a fixed list: no path from the URL reaches the file system
        raise NotFound(f"no console asset {name!r}")
    return _asset(name, media_type)


async def _replica_health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        status, doc = await fetch_health(session, url, REPLICA_TIMEOUT_S)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {"url": url, "reachable": False, "error": str(exc) or type(exc).__name__}
    if not isinstance(doc, dict):
        return {"url": url, "reachable": False, "error": "health answer is not a JSON object"}
    return {"url": url, "reachable": True, "http_status": status, "health": doc}


@console_router.get("/console/api/system", summary="Gateway and per-replica health documents")
async def console_system(request: Request) -> dict[str, Any]:
    """The gateway's aggregated /health and every replica's own /health, fetched now."""
    gateway: Gateway = request.app.state.gateway
    http: SessionHolder = request.app.state.http
    names = list(gateway.clients)
    urls = [[r.url for r in gateway.clients[n].pool.replicas] for n in names]
    flat = [u for group in urls for u in group]
    docs = await asyncio.gather(*(_replica_health(http.session, u) for u in flat))
    found = iter(docs)
    services = {
        public_name(name): [next(found) for _ in group]
        for name, group in zip(names, urls, strict=True)
    }
    return {"gateway": await _gateway_health(request), "services": services}


async def _gateway_health(request: Request) -> Any:  # noqa: ANN401 - a JSON document
    """The gateway's own ``/health`` document, from the route the app already serves."""
    for route in request.app.router.routes:
        if isinstance(route, APIRoute) and route.path == "/health" and route.methods == {"GET"}:
            return await route.endpoint()
    return None

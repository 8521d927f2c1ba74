"""HTTP routes of the sensor service: tests and sensor types (every one needs a token).

Bodies are read by hand after the token check (FastAPI reads a declared body *before* its
dependencies run, so a declared body would let anyone make us buffer 64 MiB) and parsed in
a thread (a million readings is a quarter second of parsing, which must not stall the
event loop). The OpenAPI document still shows the body schemas via ``openapi_extra``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from sensor_backend.core.api_types import INT64_MAX, Rfc3339
from sensor_backend.core.db import DatabaseUnavailable
from sensor_backend.core.errors import NotFound
from sensor_backend.core.openapi import ErrorBody, error_responses
from sensor_backend.core.security import AdminToken, TestsRead, TestsWrite
from sensor_backend.sensor import report, report_pdf
from sensor_backend.sensor.catalog import describe, parse_new_type
from sensor_backend.sensor.models import (
    IDEMPOTENCY_KEY,
    TYPE_NAME_PATTERN,
    TestRequest,
    check_idempotency_key,
)
from sensor_backend.sensor.repository import ListFilter, links
from sensor_backend.sensor.series import build_series, stored_readings
from sensor_backend.sensor.service import SensorService  # noqa: TC001 - FastAPI resolves it
from sensor_backend.sensor.specs import ALIASES, BUILTIN_SPECS, SensorSpec
from sensor_backend.sensor.uploads import Options, parse_submission, with_upload_formats

router = APIRouter()

# Type names are path-safe identifiers (built-ins, aliases and user types alike).
TypeName = Annotated[str, Path(pattern=TYPE_NAME_PATTERN)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="same key and body: the same test again; same key, other body: 422",
        # Documented here, checked by check_idempotency_key (a 400, as it always was).
        json_schema_extra={"pattern": IDEMPOTENCY_KEY.pattern},
    ),
]


def service(request: Request) -> SensorService:
    svc: SensorService = request.app.state.sensor
    return svc


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` inlined (OpenAPI resolves refs from the root)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:  # noqa: ANN401 - any JSON schema node
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            # A discriminator's mapping points into $defs; the inlined oneOf needs none.
            return {k: walk(v) for k, v in node.items() if k != "discriminator"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def _body(
    model: type[TestRequest | SensorSpec], *, required: bool, **properties: dict[str, Any]
) -> dict[str, Any]:
    """The body's schema; ``properties`` tightens fields the route validates further."""
    schema = _inline(model.model_json_schema())
    for name, extra in properties.items():
        schema["properties"][name].update(extra)
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


@router.post(
    "/test/{sensor_type}",
    tags=["tests"],
    status_code=202,
    openapi_extra=with_upload_formats(_body(TestRequest, required=False)),
    summary="Queue a sensor test (no body: a default simulated test)",
    responses=error_responses(401, 403, 404, 503),
)
@router.post(
    "/test/sensor/{sensor_type}",
    tags=["tests"],
    status_code=202,
    openapi_extra=with_upload_formats(_body(TestRequest, required=False)),
    summary="Same as POST /test/{sensor_type} (the original notes' path)",
    responses=error_responses(401, 403, 404, 503),
)
async def submit_test(  # noqa: PLR0917 - FastAPI parameters
    request: Request,
    response: Response,
    sensor_type: TypeName,
    auth: TestsWrite,
    options: Options,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """202 with the test id; poll ``links.self`` for the status and the result.

    The body: JSON, CSV (``text/csv``) or ``.npy`` arrays (``multipart/form-data``), see
    `sensor.uploads`; the query parameters are for the CSV and ``.npy`` forms only.
    """
    svc = service(request)
    key = check_idempotency_key(idempotency_key)
    raw = await request.body()
    parsed = await asyncio.to_thread(
        parse_submission,
        raw,
        request.headers.get("content-type", ""),
        sensor_type,
        options,
        max_readings=svc.settings.max_readings,
    )
    submitted = await svc.submit(
        sensor_type, parsed, submitted_by=auth.claims.sub, idempotency_key=key
    )
    response.headers["Location"] = f"/test/{submitted.test_id}"
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    return {
        "test_id": str(submitted.test_id),
        "status": submitted.status,
        "links": links(submitted.test_id),
    }


@router.get("/test/{test_id}", tags=["tests"], responses=error_responses(401, 403, 404, 503))
async def get_test(request: Request, test_id: uuid.UUID, _: TestsRead) -> dict[str, Any]:
    """Status (queued, running, completed, failed); the full result once completed."""
    doc = await service(request).tests.get(test_id)
    if doc is None:
        raise NotFound(f"no test {test_id}")
    return doc


@router.get(
    "/test/{test_id}/readings", tags=["tests"], responses=error_responses(401, 403, 404, 503)
)
async def get_test_readings(
    request: Request,
    test_id: uuid.UUID,
    _: TestsRead,
    max_points: Annotated[int, Query(ge=10, le=100_000)] = 5000,
) -> dict[str, Any]:
    """The test's readings, reference and tolerance band for plotting (thinned, flagged kept)."""
    svc = service(request)
    doc = await svc.tests.get(test_id)
    if doc is None:
        raise NotFound(f"no test {test_id}")
    stored = await stored_readings(svc.db, test_id) if doc.get("source") != "simulate" else None
    series = await asyncio.to_thread(build_series, doc, stored, max_points)
    if series is None:
        raise NotFound(f"test {test_id} has no stored readings")
    return series


@router.get(
    "/test/{test_id}/report",
    tags=["tests"],
    summary="A completed test's printable report (self-contained HTML, prints to A4)",
    # Not HTMLResponse: FastAPI would document the JSON error bodies as text/html too.
    response_class=Response,
    responses={
        200: {
            "description": "the report: inline CSS and SVG, no script; print it for a PDF",
            "content": {"text/html": {"schema": {"type": "string"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "inline; filename=report-<report id>.html",
                    "schema": {"type": "string"},
                },
                "Content-Security-Policy": {"schema": {"type": "string"}},
            },
        },
        **error_responses(401, 403, 404, 409, 503),
    },
)
async def get_test_report(request: Request, test_id: uuid.UUID, _: TestsRead) -> HTMLResponse:
    """The report of a completed test; 409 while it is queued or running, or when it failed."""
    rid, page = await report.build(service(request), test_id)
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": report.CSP,
            "Content-Disposition": f'inline; filename="report-{rid}.html"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/test/{test_id}/report.pdf",
    tags=["tests"],
    summary="The same report as an A4 PDF (WeasyPrint; the optional `pdf` extra)",
    response_class=Response,
    responses={
        200: {
            "description": "the report as a PDF, A4 pages; about a second to render",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "inline; filename=report-<report id>.pdf",
                    "schema": {"type": "string"},
                },
            },
        },
        **error_responses(401, 403, 404, 409, 429, 503),
        501: {
            "model": ErrorBody,
            "description": "No PDF renderer here: the `pdf` extra (WeasyPrint, pango) is missing",
        },
    },
)
async def get_test_report_pdf(request: Request, test_id: uuid.UUID, _: TestsRead) -> Response:
    """The report as a PDF; 429 with Retry-After while this process renders another one."""
    await report_pdf.check_renderer()  # 501 first: without the extra nothing else matters
    rid, pdf = await report_pdf.build(service(request), test_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="report-{rid}.pdf"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/tests", tags=["tests"], responses=error_responses(401, 403, 503))
async def list_tests(  # noqa: PLR0917 - FastAPI query parameters
    request: Request,
    _: TestsRead,
    sensor_type: Annotated[str | None, Query(max_length=100)] = None,
    device_id: Annotated[str | None, Query(max_length=128)] = None,
    verdict: Literal["pass", "suspect", "fail"] | None = None,
    status: Literal["queued", "running", "completed", "failed"] | None = None,
    since: Rfc3339 | None = None,
    before: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="cursor: `next` of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Tests newest first, filtered; ``next`` is the cursor for the following page."""
    flt = ListFilter(
        sensor_type=ALIASES.get(sensor_type, sensor_type) if sensor_type else None,
        device_id=device_id,
        verdict=verdict,
        status=status,
        since=since,
        before=before,
        limit=limit,
    )
    items = await service(request).tests.list(flt)
    next_cursor = items[-1]["seq"] if len(items) == limit else None
    return {"items": items, "count": len(items), "next": next_cursor}


@router.get("/sensor-types", tags=["sensor types"], responses=error_responses(401, 403, 503))
async def list_sensor_types(request: Request, _: TestsRead) -> dict[str, Any]:
    """Built-in types (datasheet specs), their aliases and user-defined types.

    With the database down the built-ins are still listed (``complete`` is then false).
    """
    items = [describe(s, builtin=True) for s in BUILTIN_SPECS.values()]
    try:
        user = await service(request).catalog.user_types()
    except DatabaseUnavailable:
        return {"items": items, "aliases": dict(ALIASES), "count": len(items), "complete": False}
    items += [describe(s, builtin=False) for s in user]
    return {"items": items, "aliases": dict(ALIASES), "count": len(items), "complete": True}


@router.get(
    "/sensor-types/{name}", tags=["sensor types"], responses=error_responses(401, 403, 404, 503)
)
async def get_sensor_type(request: Request, name: TypeName, _: TestsRead) -> dict[str, Any]:
    """One type's spec (aliases resolve); 404 lists the known names."""
    spec, builtin = await service(request).catalog.resolve(name)
    return describe(spec, builtin=builtin)


@router.post(
    "/sensor-types",
    tags=["sensor types"],
    status_code=201,
    # The name appears in URLs: the route allows fewer names than the spec model.
    openapi_extra=_body(SensorSpec, required=True, name={"pattern": TYPE_NAME_PATTERN}),
    responses=error_responses(401, 403, 409, 503),
)
async def create_sensor_type(
    request: Request, response: Response, auth: AdminToken
) -> dict[str, Any]:
    """Define a sensor type (admin): a complete spec under a new lowercase name."""
    spec = parse_new_type(await request.body())
    await service(request).catalog.create(spec, created_by=auth.claims.sub)
    response.headers["Location"] = f"/sensor-types/{spec.name}"
    return describe(spec, builtin=False)

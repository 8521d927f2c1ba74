"""Admin routes for machine clients (rigs): create, list, rotate, revoke, bulk-provision.

Every route needs an admin's token (``/verify`` rules: signature, revocation, user exists).
A client's secret is in the answer of ``POST /clients``, ``POST /clients/bulk`` and
``POST /clients/{id}/rotate`` only (``Cache-Control: no-store``), never again.

Bulk provisioning takes JSON (``{"clients": [{"name", "scopes"}]}``, validated as a whole:
422 names the offending item) or CSV (a ``name,scopes`` header, scopes separated by
spaces or ``;``; each bad row gets its own error in the answer). Every row is created on its
own: the answer lists per row ``created`` (with the id and secret) or ``error``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from sensor_backend.auth.clients import NAME_PATTERN
from sensor_backend.auth.routes import Service, UnprocessableError, _bearer, _validation_error
from sensor_backend.core.errors import BadRequest, ServiceError
from sensor_backend.core.openapi import error_responses
from sensor_backend.core.scopes import SCOPES
from sensor_backend.core.security import Authorization

router = APIRouter(tags=["clients"])

ScopeName = Literal["tests:read", "tests:write", "events:read", "events:write"]
assert set(get_args(ScopeName)) == set(SCOPES)  # noqa: S101 - kept in step with core.scopes
ClientName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=64)]
MAX_BULK_ROWS = 1000
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_SCOPE_SPLIT = re.compile(r"[\s;]+")


class ClientCreate(BaseModel):
    model_config = {"extra": "forbid"}
    name: ClientName
    scopes: list[ScopeName] = Field(min_length=1, max_length=len(SCOPES))


class ClientBulk(BaseModel):
    model_config = {"extra": "forbid"}
    clients: list[ClientCreate] = Field(min_length=1, max_length=MAX_BULK_ROWS)


class ClientOut(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    created_at: str
    created_by: str
    rotated_at: str | None
    revoked_at: str | None
    active: bool


class ClientSecretOut(ClientOut):
    client_secret: str = Field(description="shown once: store it on the rig now")


class ClientList(BaseModel):
    clients: list[ClientOut]


class BulkRow(BaseModel):
    row: int = Field(description="1-based: the item's position, or the CSV data row")
    name: str | None
    status: Literal["created", "error"]
    client_id: str | None = None
    client_secret: str | None = None
    scopes: list[str] | None = None
    error: str | None = None
    message: str | None = None


class BulkOut(BaseModel):
    created: int
    failed: int
    results: list[BulkRow]


def _inlined(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema with its ``$defs`` inlined (a hand-built request body)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:  # noqa: ANN401 - JSON Schema
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    result: dict[str, Any] = resolve(schema)
    return result


_BULK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined(ClientBulk)},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "a `name,scopes` header row, then one client per row",
                }
            },
        },
    }
}


def _with_secret(public: dict[str, Any], secret: str) -> dict[str, Any]:
    return {**public, "client_secret": secret}


@router.post(
    "/clients",
    status_code=201,
    response_model=ClientSecretOut,
    responses=error_responses(400, 401, 403, 409, 503),
)
async def create_client(
    body: ClientCreate, svc: Service, authorization: Authorization
) -> JSONResponse:
    """Create a rig's client (admin): its id and secret, shown this once."""
    caller = await svc.admin(_bearer(authorization))
    client, secret = await svc.create_client(caller, body.name, tuple(dict.fromkeys(body.scopes)))
    return JSONResponse(_with_secret(client.public(), secret), status_code=201, headers=NO_STORE)


@router.get("/clients", response_model=ClientList, responses=error_responses(401, 403, 503))
async def list_clients(svc: Service, authorization: Authorization) -> dict[str, Any]:
    """Every client, revoked ones included (never a secret)."""
    await svc.admin(_bearer(authorization))
    return {"clients": [c.public() for c in await svc.clients.list_all()]}


@router.post(
    "/clients/{client_id}/rotate",
    response_model=ClientSecretOut,
    responses=error_responses(401, 403, 404, 409, 503),
)
async def rotate_client(
    client_id: uuid.UUID, svc: Service, authorization: Authorization
) -> JSONResponse:
    """A new secret (shown once); the old one is refused from now on (409 if revoked)."""
    caller = await svc.admin(_bearer(authorization))
    client, secret = await svc.rotate_client(caller, str(client_id))
    return JSONResponse(_with_secret(client.public(), secret), headers=NO_STORE)


@router.post(
    "/clients/{client_id}/revoke",
    response_model=ClientOut,
    responses=error_responses(401, 403, 404, 503),
)
async def revoke_client(
    client_id: uuid.UUID, svc: Service, authorization: Authorization
) -> dict[str, Any]:
    """Refuse the client's secret, and its tokens at ``/verify`` (idempotent)."""
    caller = await svc.admin(_bearer(authorization))
    return (await svc.revoke_client(caller, str(client_id))).public()


@router.post(
    "/clients/bulk",
    response_model=BulkOut,
    openapi_extra=_BULK_BODY,
    responses=error_responses(400, 401, 403, 503),
)
async def bulk_create_clients(
    request: Request, svc: Service, authorization: Authorization
) -> JSONResponse:
    """Create many rigs' clients from JSON or CSV: per row, its id and secret or its error."""
    caller = await svc.admin(_bearer(authorization))
    rows = _bulk_rows(
        await request.body(), request.headers.get("content-type", "").split(";")[0].strip()
    )
    results: list[dict[str, Any]] = []
    for number, name, scopes, problem in rows:
        if problem is not None:
            results.append(_error_row(number, name, "validation_error", problem))
            continue
        try:
            client, secret = await svc.create_client(caller, name or "", scopes)
        except ServiceError as exc:
            results.append(_error_row(number, name, exc.code, exc.message))
            continue
        results.append(
            {
                "row": number,
                "name": name,
                "status": "created",
                "client_id": client.client_id,
                "client_secret": secret,
                "scopes": list(client.scopes),
            }
        )
    created = sum(r["status"] == "created" for r in results)
    doc = {"created": created, "failed": len(results) - created, "results": results}
    return JSONResponse(doc, headers=NO_STORE)


def _error_row(number: int, name: str | None, code: str, message: str) -> dict[str, Any]:
    return {"row": number, "name": name, "status": "error", "error": code, "message": message}


Row = tuple[int, str | None, tuple[str, ...], str | None]  # number, name, scopes, problem


def _bulk_rows(raw: bytes, content_type: str) -> list[Row]:
    if content_type.lower() == "text/csv":
        return _csv_rows(raw)
    if content_type.lower() != "application/json":
        raise BadRequest("send the clients as application/json or text/csv")
    try:
        bulk = ClientBulk.model_validate(json.loads(raw))
    except ValidationError as exc:
        raise _validation_error(exc) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    return [
        (i, c.name, tuple(dict.fromkeys(c.scopes)), None)
        for i, c in enumerate(bulk.clients, start=1)
    ]


def _csv_rows(raw: bytes) -> list[Row]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest("CSV must be UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "name" not in header or "scopes" not in header:
        raise UnprocessableError(
            [{"field": "header", "message": "the CSV header must name 'name' and 'scopes'"}]
        )
    reader.fieldnames = header
    rows: list[Row] = []
    try:
        for number, record in enumerate(reader, start=1):
            if number > MAX_BULK_ROWS:
                raise UnprocessableError(
                    [{"field": "rows", "message": f"at most {MAX_BULK_ROWS} clients per upload"}]
                )
            rows.append(_csv_row(number, record))
    except csv.Error as exc:
        raise BadRequest(f"CSV unreadable near data row {len(rows) + 1}") from exc
    if not rows:
        raise UnprocessableError([{"field": "rows", "message": "no clients in the upload"}])
    return rows


def _csv_row(number: int, record: dict[str, Any]) -> Row:
    name = (record.get("name") or "").strip()
    scopes = tuple(dict.fromkeys(s for s in _SCOPE_SPLIT.split(record.get("scopes") or "") if s))
    if None in record:
        return number, name or None, scopes, "more columns than the header names"
    if not re.fullmatch(NAME_PATTERN, name):
        return number, name or None, scopes, "name: letters, digits, '.', '_', '-' (1 to 64)"
    if not scopes:
        return number, name, scopes, "scopes: at least one of " + ", ".join(SCOPES)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        return number, name, scopes, f"scopes: unknown scope {unknown[0]!r}"
    return number, name, scopes, None

"""The OpenAPI document every service publishes, made to tell the truth.

- `error_responses` is the one way a route documents the errors it can answer, all with
  the shared `ErrorBody` schema (core.errors renders every error in that shape).
- `install_openapi` adds what every operation can answer whatever the route (the edge's
  400 for a malformed Content-Length, 413 for a body over the limit, 422 from the input
  guard), replaces FastAPI's ``HTTPValidationError`` (our 422 body is not FastAPI's), and
  merges path templates that differ only in their parameter names (OpenAPI 3.1 §4.8.8:
  such paths "MUST NOT exist"; ``POST /test/{sensor_type}`` and ``GET /test/{test_id}``
  are one resource to a client, whose ``Allow`` lists both methods);
- says what the input guard refuses (`core.safe_text_schema`), so a schema-valid request
  is one the service accepts.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from sensor_backend.core.safe_text_schema import restrict_requests

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

ERROR_SCHEMA = "ErrorBody"
ERROR_REF = f"#/components/schemas/{ERROR_SCHEMA}"
EDGE_STATUSES = (400, 413, 422)
DESCRIPTIONS = {
    400: "Malformed request: body not JSON or form data, malformed header",
    401: "Missing, malformed, expired or revoked bearer token",
    403: "The token lacks the role or the scope (`required_scope`) this operation needs",
    404: "No such resource",
    409: "Conflicts with an existing resource",
    413: "Request body over the service's size limit",
    422: "Invalid input; `fields` names each offending field",
    429: "Too many attempts; retry after `Retry-After` seconds",
    503: "A dependency is unavailable; retry after `Retry-After` seconds",
}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_TEMPLATE = re.compile(r"\{([^}]+)\}")


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error this API answers: a code, a message, and facts that depend on the code."""

    model_config = ConfigDict(extra="allow", title=ERROR_SCHEMA)
    error: str
    message: str
    fields: list[FieldError] | None = None
    retry_after: int | None = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the shared error body schema."""
    return {s: {"model": ErrorBody, "description": DESCRIPTIONS[s]} for s in statuses}


def error_response_object(status: int) -> dict[str, Any]:
    """The OpenAPI response object of one error status (for hand-built operations)."""
    return {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        op
        for item in schema.get("paths", {}).values()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def document_edge_errors(schema: dict[str, Any]) -> None:
    """Every operation lists the edge's errors, and 422 is ours, not FastAPI's shape."""
    for op in _operations(schema):
        responses = op.setdefault("responses", {})
        for status in EDGE_STATUSES:
            responses[str(status)] = error_response_object(status)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    defs = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(defs.pop("$defs", {}))
    components[ERROR_SCHEMA] = defs
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def merge_equivalent_paths(schema: dict[str, Any]) -> None:
    """One path item per template shape, its parameter named after all the names it had."""
    paths: dict[str, Any] = schema.get("paths", {})
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(_TEMPLATE.sub("{}", path), []).append(path)
    merged: dict[str, Any] = {}
    for members in groups.values():
        if len(members) == 1:
            merged[members[0]] = paths[members[0]]
            continue
        names_per_slot = list(zip(*(_TEMPLATE.findall(p) for p in members), strict=True))
        joint = ["_or_".join(dict.fromkeys(names)) for names in names_per_slot]
        target = members[0]
        for name, new in zip(_TEMPLATE.findall(target), joint, strict=True):
            target = target.replace(f"{{{name}}}", f"{{{new}}}", 1)
        item: dict[str, Any] = {}
        for path in members:
            renames = dict(zip(_TEMPLATE.findall(path), joint, strict=True))
            for method, op in paths[path].items():
                if method in HTTP_METHODS and method not in item:
                    item[method] = _renamed(op, renames)
        merged[target] = item
    schema["paths"] = merged


def _renamed(op: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    op = copy.deepcopy(op)
    for param in op.get("parameters", []):
        if param.get("in") == "path" and param["name"] in renames:
            old = param["name"]
            param["name"] = renames[old]
            if renames[old] != old:
                param.setdefault("description", f"the {old.replace('_', ' ')}")
    return op


def install_openapi(app: FastAPI, extend: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve the finished document; ``extend`` adds hand-built parts first (the gateway's)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            if extend is not None:
                extend(schema)
            merge_equivalent_paths(schema)
            document_edge_errors(schema)
            restrict_requests(schema, skip=frozenset({ERROR_SCHEMA, "FieldError"}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

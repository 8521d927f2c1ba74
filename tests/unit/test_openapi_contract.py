"""Every service's OpenAPI document tells the truth, and the gateway's snapshot is current.

The apps are built in-process (nothing starts: no database, no broker); schemathesis then
checks the documents against running services in tests/integration/test_api_fuzz.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from sensor_backend.auth.app import build_app as build_auth
from sensor_backend.core.openapi import EDGE_STATUSES, ERROR_REF, HTTP_METHODS
from sensor_backend.core.safe_text_schema import SAFE_TEXT_PATTERN
from sensor_backend.events.app import build_app as build_events
from sensor_backend.gateway import service_openapi
from sensor_backend.gateway.app import build_app as build_gateway
from sensor_backend.gateway.routes import EVENT_PATHS, RULES
from sensor_backend.sensor.app import build_app as build_sensor

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

BUILDERS: dict[str, Callable[[], FastAPI]] = {
    "auth": build_auth,
    "sensor": build_sensor,
    "events": build_events,
    "gateway": build_gateway,
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {name: build().openapi() for name, build in BUILDERS.items()}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def test_the_gateway_snapshot_is_current() -> None:
    """service_openapi.json is what the service apps generate now, nothing hand-edited."""
    assert service_openapi.main(["--check"]) == 0, (
        "src/sensor_backend/gateway/service_openapi.json is out of date: run "
        "`.venv/bin/python -m sensor_backend.gateway.service_openapi`"
    )


@pytest.mark.parametrize("service", list(BUILDERS))
def test_every_operation_documents_the_edge_errors(documents, service) -> None:
    """400, 413 and 422 can come from the edge on any route: all documented, our body."""
    for path, method, op in operations(documents[service]):
        for status in EDGE_STATUSES:
            response = op["responses"].get(str(status))
            assert response is not None, f"{method} {path} lacks {status}"
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, f"{method} {path} {status}"


@pytest.mark.parametrize("service", list(BUILDERS))
def test_protected_operations_document_401(documents, service) -> None:
    """An operation that declares bearer security documents the 401 it answers without it."""
    protected = [(p, m, op) for p, m, op in operations(documents[service]) if op.get("security")]
    assert protected
    for path, method, op in protected:
        assert "401" in op["responses"], f"{method} {path}"


@pytest.mark.parametrize("service", list(BUILDERS))
def test_no_two_paths_are_the_same_template(documents, service) -> None:
    """OpenAPI forbids templates equal up to parameter names (one resource, one Allow)."""
    shapes = [re.sub(r"\{[^}]+\}", "{}", path) for path in documents[service]["paths"]]
    assert len(shapes) == len(set(shapes))


@pytest.mark.parametrize("service", list(BUILDERS))
def test_free_text_request_parameters_say_no_nul(documents, service) -> None:
    """What the input guard refuses is in the schema: free-text parameters exclude NUL."""
    for path, method, op in operations(documents[service]):
        for param in op.get("parameters", []):
            schema = param["schema"]
            for alternative in schema.get("anyOf", [schema]):
                if alternative.get("type") == "string":
                    assert (
                        "pattern" in alternative
                        or "format" in alternative
                        or ("enum" in alternative)
                    ), f"{method} {path} {param['name']}"


def test_the_gateway_documents_the_services_schemas(documents) -> None:
    """Each proxied route carries the service's own request body and response schemas."""
    gateway = documents["gateway"]
    token = gateway["paths"]["/auth/token"]["post"]
    assert set(token["requestBody"]["content"]) == {
        "application/x-www-form-urlencoded",
        "application/json",
    }
    assert token["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/auth.TokenOut"
    }
    assert "auth.TokenOut" in gateway["components"]["schemas"]
    tests = gateway["paths"]["/tests"]["get"]
    names = {p["name"] for p in tests["parameters"]}
    assert {"sensor_type", "device_id", "since", "before", "limit"} <= names
    assert tests["security"]
    events = gateway["paths"]["/events"]["post"]
    assert "oneOf" in events["requestBody"]["content"]["application/json"]["schema"]
    assert {"201", "202", "401", "413", "422", "503"} <= events["responses"].keys()


def test_every_proxy_rule_is_documented(documents) -> None:
    """Nothing the gateway routes is missing from its document."""
    gateway = documents["gateway"]["paths"]
    shapes = {re.sub(r"\{[^}]+\}", "{}", p): item for p, item in gateway.items()}
    for rule in RULES:
        item = shapes[re.sub(r"\{[^}]+\}", "{}", rule.path)]
        assert rule.method.lower() in item, f"{rule.method} {rule.path}"
    for path in EVENT_PATHS:
        assert "post" in gateway[path]


def test_any_json_in_a_request_is_nul_free(documents) -> None:
    """An event's opaque ``data`` is any JSON whose strings hold no NUL."""
    doc = documents["events"]
    body = doc["paths"]["/send-event"]["post"]["requestBody"]["content"]["application/json"]
    event = body["schema"]["oneOf"][0]
    assert event["properties"]["data"]["$ref"].endswith("/SafeJson")
    text = doc["components"]["schemas"]["SafeJson"]["anyOf"][0]
    assert text == {"type": "string", "pattern": SAFE_TEXT_PATTERN}

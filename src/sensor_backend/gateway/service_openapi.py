"""The services' own OpenAPI documents, as a snapshot the gateway ships and proxies by.

The gateway's proxied routes document the services' real request and response schemas, so
a fuzzer through the gateway checks the same contract as against each service. They come
from ``service_openapi.json`` next to this module, generated from the service apps
(``python -m sensor_backend.gateway.service_openapi``), never copied by hand; a unit test
rebuilds it and fails when it is out of date.

Why a snapshot, not a build at startup: the gateway stays decoupled from the services. It
does not import their code (their settings, database and broker modules) at run time, so
it can be deployed and started on its own, and it does not fetch documents from services
that may be down when it starts (its document would then depend on who answered first).
The snapshot is versioned with the code that made it, which is what a contract is.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

from sensor_backend.gateway.settings import public_name

SNAPSHOT = Path(__file__).with_name("service_openapi.json")
# The service's public name (the snapshot's keys and the schema prefixes; the event service
# is kafka there, gateway/settings.public_name) -> the module whose build_app() it is.
SERVICE_APPS = {
    "auth": "sensor_backend.auth.app",
    "sensor": "sensor_backend.sensor.app",
    "kafka": "sensor_backend.events.app",
}
# Models defined once in core and identical in every document: not renamed per service.
SHARED_SCHEMAS = frozenset({"ErrorBody", "FieldError", "SafeJson"})
_TEMPLATE = re.compile(r"\{([^}]+)\}")
_REF = "#/components/schemas/"


def build_snapshot() -> dict[str, Any]:
    """Each service's paths and component schemas, from its app built in-process."""
    docs: dict[str, Any] = {}
    for name, module in SERVICE_APPS.items():
        doc = importlib.import_module(module).build_app().openapi()
        docs[name] = {
            "paths": doc["paths"],
            "schemas": doc.get("components", {}).get("schemas", {}),
        }
    return docs


def render(docs: dict[str, Any]) -> str:
    return json.dumps(docs, indent=1, sort_keys=True) + "\n"


@cache
def snapshot() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SNAPSHOT.read_text())
    return loaded


def _shape(path: str) -> str:
    return _TEMPLATE.sub("{}", path)


def _schema_name(service: str, name: str) -> str:
    return name if name in SHARED_SCHEMAS else f"{service}.{name}"


def _renamed_refs(node: Any, service: str) -> Any:  # noqa: ANN401 - any JSON node
    if isinstance(node, dict):
        out = {k: _renamed_refs(v, service) for k, v in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            out["$ref"] = _REF + _schema_name(service, ref.removeprefix(_REF))
        return out
    if isinstance(node, list):
        return [_renamed_refs(v, service) for v in node]
    return node


def service_operation(service: str, method: str, target: str, path: str) -> dict[str, Any]:
    """The service's operation for ``method target``, as the gateway serves it at ``path``.

    Path parameters take the gateway's names (by position); schema references point at
    the gateway's copies of the service's schemas (see `service_schemas`).
    """
    service = public_name(service)
    paths: dict[str, Any] = snapshot()[service]["paths"]
    found = next((p for p in paths if _shape(p) == _shape(target)), None)
    if found is None or method.lower() not in paths[found]:
        raise KeyError(f"{service} documents no {method} {target}: regenerate {SNAPSHOT.name}")
    op: dict[str, Any] = _renamed_refs(copy.deepcopy(paths[found][method.lower()]), service)
    names = dict(zip(_TEMPLATE.findall(found), _TEMPLATE.findall(path), strict=True))
    for param in op.get("parameters", []):
        if param.get("in") == "path":
            param["name"] = names.get(param["name"], param["name"])
    op.pop("operationId", None)  # the service's ids would collide between gateway paths
    return op


def service_schemas() -> dict[str, Any]:
    """Every service's component schemas under the gateway's names for them."""
    schemas: dict[str, Any] = {}
    for service, doc in snapshot().items():
        for name, schema in doc["schemas"].items():
            schemas[_schema_name(service, name)] = _renamed_refs(schema, service)
    return schemas


def main(argv: list[str]) -> int:
    """Write the snapshot; with ``--check``, exit 1 when the file is out of date."""
    text = render(build_snapshot())
    if "--check" in argv:
        return 0 if SNAPSHOT.exists() and SNAPSHOT.read_text() == text else 1
    SNAPSHOT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

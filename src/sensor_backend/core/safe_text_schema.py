r"""Request schemas that say what the input guard refuses (see core.input_guard).

The guard refuses NUL in any string a request carries: query and path values, headers,
JSON strings and object keys, at any depth. For the OpenAPI document to say so (a
schema-valid request must be one the service accepts), every request schema is narrowed:

- a free-text string gets ``pattern: ^[^\u0000]*$``;
- an object that admits extra properties gets the same rule for their names;
- a schema that admits any JSON value (``data`` of an event, say) becomes a reference to
  `SafeJson`: any JSON value whose strings and keys hold no NUL.

Lone surrogates are refused too, but they are not Unicode scalar values, so no JSON Schema
string can hold one (RFC 8259 §8.2) and Rust-regex validators cannot express them.
"""

from __future__ import annotations

from typing import Any

# Regex source, ECMA 262 and Python alike.
SAFE_TEXT_PATTERN = r"^[^\u0000]*$"
SAFE_JSON = "SafeJson"
SAFE_JSON_REF = f"#/components/schemas/{SAFE_JSON}"
# Already narrower than free text, or not text at all.
_CONSTRAINED = frozenset({"pattern", "enum", "const", "format"})
# Any of these keys makes a schema something narrower than "any JSON value".
_SHAPED = frozenset(
    {"type", "$ref", "anyOf", "oneOf", "allOf", "not", "enum", "const", "properties", "items"}
)
_SUBSCHEMA = ("items", "additionalProperties", "not", "propertyNames")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def safe_json_schema() -> dict[str, Any]:
    """Any JSON value without NUL in a string or a key (recursive)."""
    text = {"type": "string", "pattern": SAFE_TEXT_PATTERN}
    return {
        "description": "Any JSON value; no string or key holds NUL",
        "anyOf": [
            text,
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": {"$ref": SAFE_JSON_REF}},
            {
                "type": "object",
                "propertyNames": text,
                "additionalProperties": {"$ref": SAFE_JSON_REF},
            },
        ],
    }


def restrict(schema: Any) -> Any:  # noqa: ANN401 - a JSON schema node
    """``schema`` narrowed as the module docstring says (in place where it can be)."""
    if not isinstance(schema, dict):
        return schema
    if not _SHAPED & schema.keys():
        return {**schema, "$ref": SAFE_JSON_REF}
    if schema.get("type") == "string" and not _CONSTRAINED & schema.keys():
        schema["pattern"] = SAFE_TEXT_PATTERN
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object and schema.get("additionalProperties") is not False:
        schema.setdefault("propertyNames", {"pattern": SAFE_TEXT_PATTERN})
    _restrict_subschemas(schema)
    return schema


def _restrict_subschemas(schema: dict[str, Any]) -> None:
    for key in _SUBSCHEMA:
        if isinstance(schema.get(key), dict):
            schema[key] = restrict(schema[key])
    for key in _SUBSCHEMA_MAPS:
        for name, sub in schema.get(key, {}).items():
            schema[key][name] = restrict(sub)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            schema[key] = [restrict(sub) for sub in schema[key]]


def restrict_requests(doc: dict[str, Any], *, skip: frozenset[str]) -> None:
    """Narrow every parameter, request body and component schema (except ``skip``)."""
    for item in doc.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for param in op.get("parameters", []):
                if "schema" in param:
                    param["schema"] = restrict(param["schema"])
            for media in op.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = restrict(media["schema"])
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, component in schemas.items():
        if name not in skip:
            schemas[name] = restrict(component)
    schemas[SAFE_JSON] = safe_json_schema()

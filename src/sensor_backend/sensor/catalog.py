"""Sensor types: the built-ins of :mod:`sensor_backend.sensor.specs` plus user-defined ones.

User-defined types are rows of ``sensor.sensor_types`` (``POST /sensor-types``, admin only).
Their names share one namespace with the built-ins and their aliases, so a name means the
same spec everywhere; a built-in can never be shadowed. Names are lowercase path-safe
identifiers (``models.TYPE_NAME_PATTERN``) because they appear in URLs.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import ValidationError

from sensor_backend.core.errors import Conflict, NotFound
from sensor_backend.sensor.models import (
    TYPE_NAME_PATTERN,
    InvalidRequestError,
    validation_failed,
)
from sensor_backend.sensor.specs import ALIASES, BUILTIN_SPECS, SensorSpec

if TYPE_CHECKING:
    from sensor_backend.core.db import Connection, Database


def describe(spec: SensorSpec, *, builtin: bool) -> dict[str, Any]:
    """A type as the API shows it: the spec plus the derived QC thresholds."""
    spike_suspect, spike_fail = spec.spike_thresholds
    roc_suspect, roc_fail = spec.roc_thresholds
    return {
        **spec.model_dump(mode="json"),
        "builtin": builtin,
        "aliases": sorted(a for a, target in ALIASES.items() if target == spec.name),
        "derived": {
            "spike_suspect": spike_suspect,
            "spike_fail": spike_fail,
            "roc_suspect": roc_suspect,
            "roc_fail": roc_fail,
            "flat_line_tolerance": spec.flat_tolerance,
        },
    }


def apply_overrides(spec: SensorSpec, overrides: dict[str, Any]) -> SensorSpec:
    """The spec with some fields replaced, validated as a whole (422 naming the field)."""
    if not overrides:
        return spec
    try:
        return SensorSpec.model_validate({**spec.model_dump(), **overrides})
    except ValidationError as exc:
        raise validation_failed(exc, prefix="spec_overrides") from exc


def parse_new_type(raw: bytes) -> SensorSpec:
    """Body of ``POST /sensor-types``: a complete spec with a new, path-safe name."""
    try:
        spec = SensorSpec.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise validation_failed(exc) from exc
    if not re.fullmatch(TYPE_NAME_PATTERN, spec.name):
        raise InvalidRequestError(
            "invalid name: lowercase letters, digits, '_', '.', '-' (at most 64)",
            fields=[{"field": "name", "message": f"must match {TYPE_NAME_PATTERN}"}],
        )
    return spec


class SensorCatalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def resolve(self, name: str) -> tuple[SensorSpec, bool]:
        """(spec, builtin) for a type name or alias; 404 listing the known names."""
        key = ALIASES.get(name, name)
        builtin = BUILTIN_SPECS.get(key)
        if builtin is not None:
            return builtin, True

        async def read(conn: Connection) -> Any:  # noqa: ANN401 - an asyncpg value
            return await conn.fetchval("SELECT spec FROM sensor_types WHERE name = $1", key)

        raw = await self.db.run(read)
        if raw is None:
            known = await self.names()
            raise NotFound(f"unknown sensor type {name!r}", known=known)
        return SensorSpec.model_validate_json(raw), False

    async def user_types(self) -> list[SensorSpec]:
        async def read(conn: Connection) -> list[Any]:
            return list(await conn.fetch("SELECT spec FROM sensor_types ORDER BY name"))

        return [SensorSpec.model_validate_json(row["spec"]) for row in await self.db.run(read)]

    async def names(self) -> list[str]:
        """Every name a test may use: built-ins, aliases, then user-defined types."""
        user = [spec.name for spec in await self.user_types()]
        return [*BUILTIN_SPECS, *ALIASES, *user]

    async def create(self, spec: SensorSpec, *, created_by: str) -> None:
        """Store a user-defined type; 409 when the name is taken (built-in, alias or user)."""
        if spec.name in BUILTIN_SPECS or spec.name in ALIASES:
            raise Conflict(f"{spec.name!r} is a built-in sensor type or alias", name=spec.name)

        async def write(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO sensor_types (name, spec, created_by) VALUES ($1, $2::jsonb, $3)",
                spec.name,
                json.dumps(spec.model_dump(mode="json")),
                created_by,
            )

        try:
            await self.db.run(write)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"sensor type {spec.name!r} exists already", name=spec.name) from exc

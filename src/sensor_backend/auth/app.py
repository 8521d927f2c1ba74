"""Auth service composition root (:8001)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensor_backend.auth.settings import AuthSettings
from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.service import attach_database

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    ctx = ServiceContext(settings)
    db = attach_database(ctx, settings, schema="auth", package="sensor_backend.auth")
    app = create_app(ctx, title="sensor-backend auth service")
    app.state.db = db
    return app

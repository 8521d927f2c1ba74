"""Entry point: `sensor-auth` or `python services/.../main.py`."""

from __future__ import annotations

from sensor_backend.auth.app import build_app
from sensor_backend.auth.settings import AuthSettings
from sensor_backend.core.log import configure_logging
from sensor_backend.core.server import serve


def main() -> None:
    settings = AuthSettings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()

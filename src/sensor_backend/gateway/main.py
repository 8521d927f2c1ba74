"""Entry point: `sensor-gateway` or `python services/.../main.py`."""

from __future__ import annotations

from sensor_backend.core.log import configure_logging
from sensor_backend.core.server import serve
from sensor_backend.gateway.app import build_app
from sensor_backend.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()

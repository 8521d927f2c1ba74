"""Entry point: `sensor-sensor` or `python services/.../main.py`."""

from __future__ import annotations

from sensor_backend.core.log import configure_logging
from sensor_backend.core.server import serve
from sensor_backend.sensor.app import build_app
from sensor_backend.sensor.settings import SensorSettings


def main() -> None:
    settings = SensorSettings()
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()

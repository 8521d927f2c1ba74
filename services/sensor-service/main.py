"""Run the sensor service alone, as in the original notes.

    `cd services/sensor-service && python main.py`

A thin entry point over the package; it also works from a checkout that was not installed,
as long as the dependencies are (`make install` does both).
"""

import sys
from pathlib import Path

try:
    from sensor_backend.sensor.main import main
except ModuleNotFoundError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from sensor_backend.sensor.main import main

if __name__ == "__main__":
    main()

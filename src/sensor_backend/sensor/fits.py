"""Small least-squares and noise helpers shared by the sensor analysis modules."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from sensor_backend.sensor.qc import Floats

MIN_READINGS = 3


def centre(t: Floats) -> tuple[Floats, float]:
    tc = t - t.mean()
    return tc, float(tc @ tc)


def noise_sigma(d: Floats, mask: NDArray[np.bool_] | None) -> float | None:
    """Noise rms from first differences (white noise: var(d) = 2 sigma^2)."""
    if mask is not None:
        d = d[mask[1:] & mask[:-1]]
    if d.size < MIN_READINGS - 1:
        return None
    return math.sqrt(float(d @ d) / d.size / 2.0)

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


def linfit(
    tc: Floats, sxx: float, y: Floats, sigma_floor: float = 0.0
) -> tuple[float, float, float] | None:
    """(slope per second, residual rms, slope standard error) of y on centred times ``tc``."""
    n = y.size
    if n < 3 or sxx <= 0.0:  # noqa: PLR2004
        return None
    yc = y - y.mean()
    sxy = float(tc @ yc)
    slope = sxy / sxx
    sse = max(float(yc @ yc) - slope * sxy, 0.0)
    stderr = math.sqrt(max(sse / (n - 2), sigma_floor**2) / sxx)
    return slope, math.sqrt(sse / n), stderr


def noise_sigma(d: Floats, mask: NDArray[np.bool_] | None) -> float | None:
    """Noise rms from first differences (white noise: var(d) = 2 sigma^2)."""
    if mask is not None:
        d = d[mask[1:] & mask[:-1]]
    if d.size < MIN_READINGS - 1:
        return None
    return math.sqrt(float(d @ d) / d.size / 2.0)

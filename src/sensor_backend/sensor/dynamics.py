"""Reference-aware dynamics: spike, rate of change, flat line and attenuated signal on e.

With a reference, the measurand is moved on purpose (chamber ramps, pressure steps, sweeps),
so QARTOD's dynamic tests belong on the error e = value - reference (SENSOR_SPECS.md,
"Judging against a reference"); ``e`` here is the error left after the datasheet response
time is allowed for (:func:`sensor_backend.sensor.response.lag_band`).

Flag levels follow issue 13's rule that ``fail`` means the datasheet is violated:

* a spike or a step of e over the spec's spike / rate-of-change thresholds (multiples of the
  noise limit: a rig choice) is SUSPECT; it is FAIL where that reading's |e| is also beyond the
  datasheet tolerance;
* a flat output run is SUSPECT once it lasts the spec's flat-line count (rig choice), if a
  healthy sensor could not have produced it: its noise (measured) is above the resolution,
  or the reference moved by more than two resolution steps since the run began (a DS18B20
  in a stable bath repeats its 1/16 °C reading for minutes: that is no fault); it is FAIL
  where, during the run, the reference moved by more than the tolerance and the error left it
  (a stuck output: the datasheet's reading no longer follows the measurand);
* attenuated signal (QARTOD): over windows of readings, the reading's span falls short of the
  (lagged) reference's span by more than the tolerance: SUSPECT; by more than twice the
  tolerance, some reading must be outside it: FAIL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor import qc
from sensor_backend.sensor.results import FAIL, NOT_EVALUATED, PASS, SUSPECT

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sensor_backend.sensor.qc import Flags, Floats

MIN_WINDOW = 10


def beyond_gain(de: Floats, dref: Floats, allowance: float) -> tuple[Floats, Floats]:
    """Error steps less what a gain error of ``allowance`` explains: (signed, magnitude)."""
    if not dref.size or float(np.abs(dref).max()) * allowance == 0.0:
        return de, np.abs(de)
    magnitude = np.maximum(np.abs(de) - allowance * np.abs(dref), 0.0)
    return np.copysign(magnitude, de), magnitude


def _promote(flags: Flags, outside: NDArray[np.bool_]) -> Flags:
    """Flagged readings whose error is beyond the tolerance become FAIL."""
    hit = (flags == SUSPECT) & outside
    if hit.any():
        flags[hit] = FAIL
    return flags


def spike(e: Floats, de: Floats, outside: NDArray[np.bool_], suspect: float) -> Flags:
    flags = qc.spike(e.size, de, np.abs(de), suspect, np.inf)
    return _promote(flags, outside)


def rate_of_change(
    n: int, abs_de: Floats, dt: Floats | float, outside: NDArray[np.bool_], suspect: float
) -> Flags:
    flags = qc.rate_of_change(n, abs_de, dt, suspect, np.inf)
    return _promote(flags, outside)


def flat_line(
    x_abs_steps: Floats,
    ref: Floats,
    tol: Floats | float,
    outside: NDArray[np.bool_],
    *,
    tolerance: float,
    suspect_count: int,
    exclude: NDArray[np.bool_],
    resolution: float,
    noisy: bool,
) -> Flags:
    """Runs of flat output: SUSPECT from ``suspect_count``; FAIL where the reference left."""
    n = ref.size
    if n < 3:  # noqa: PLR2004
        return np.full(n, NOT_EVALUATED, dtype=np.uint8)
    flags = np.ones(n, dtype=np.uint8)
    same = x_abs_steps <= tolerance
    same &= ~(exclude[1:] | exclude[:-1])
    if not same.any():
        return flags
    starts, ends = qc._run_bounds(same)  # noqa: SLF001 - shared run helper
    ends = ends + 1
    long_run = qc._mark_tails(n, starts, ends, suspect_count)  # noqa: SLF001
    in_run = qc._mark_tails(n, starts, ends, 3)  # noqa: SLF001 - QARTOD: 3 readings minimum
    first = np.zeros(n, dtype=np.intp)
    first[starts] = starts
    first = np.maximum.accumulate(first)
    shift = np.abs(ref - ref[first])
    flags[long_run if noisy else long_run & (shift > 2 * resolution)] = SUSPECT
    flags[in_run & (shift > tol) & outside] = FAIL
    return flags


def attenuated(
    x: Floats, ref_lo: Floats, ref_hi: Floats, tol: tuple[float, float], window: int
) -> tuple[Flags, int]:
    """Per-window span deficit of the readings against the (lagged) reference.

    ``tol`` is (smallest, largest) tolerance over the series: the smallest sets the suspect
    threshold, the largest the fail one (so a FAIL is a proven tolerance violation).
    """
    n = x.size
    window = max(window, MIN_WINDOW)
    if n < window:
        return np.full(n, NOT_EVALUATED, dtype=np.uint8), window
    starts = np.arange(0, n, window)
    span_x = np.maximum.reduceat(x, starts) - np.minimum.reduceat(x, starts)
    # The span any sensor within its response time must show: that of the slower copy.
    span_ref = np.minimum(
        np.maximum.reduceat(ref_hi, starts) - np.minimum.reduceat(ref_hi, starts),
        np.maximum.reduceat(ref_lo, starts) - np.minimum.reduceat(ref_lo, starts),
    )
    deficit = span_ref - span_x
    per_window = np.where(deficit > 2 * tol[1], FAIL, np.where(deficit > tol[0], SUSPECT, PASS))
    counts = np.diff(np.append(starts, n))
    return np.repeat(per_window.astype(np.uint8), counts), window

"""Time response: the lag a datasheet allows, and t63 / t90 measured at reference steps.

Datasheets give a first-order time constant tau63 (SHT3x 8 s, SHT4x 4 s, SCD4x 60 s: see
``specs.py``). A sensor with that response reads the reference passed through a first-order
low-pass filter; anything between the reference and that lagged reference is an expected lag,
not an accuracy error (SENSOR_SPECS.md, "Response time"). For a first-order system
t90 = ln(10) tau63 = 2.303 tau63.

The filter ``y[n] = a[n] y[n-1] + (1 - a[n]) x[n]`` with ``a[n] = exp(-dt[n] / tau)`` is
computed exactly and vectorised: with ``A[n] = exp(-(t[n] - t0) / tau)``,
``y[n] = A[n] (y[b] / A[b] + sum((1 - a[k]) x[k] / A[k]))`` inside blocks short enough
(``BLOCK_TAUS`` time constants) that ``1 / A`` cannot overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sensor_backend.sensor.qc import Floats, Indices

BLOCK_TAUS = 500.0  # exp(500) ~ 1e217: below float64 overflow even times 1e80 readings
T90_OVER_T63 = math.log(10.0)  # first-order system
MAX_STEPS = 50  # steps measured one by one (a Python loop): beyond this only the first ones
JUDGED_DWELL_TAUS = 3.0  # a step is judged after a dwell of this many tau63 (t90 = 2.3 tau)
SLOW_FACTOR = 1.5  # measured t63 above this x the datasheet tau63 (+ one period): suspect


def first_order(x: Floats, t: Floats, tau: float) -> Floats:
    """``x`` through a first-order low-pass with time constant ``tau`` (seconds), y[0] = x[0]."""
    n = x.size
    y = np.empty(n)
    if n == 0:
        return y
    block = max(2, int(BLOCK_TAUS * tau / max(float(t[-1] - t[0]) / max(n - 1, 1), 1e-12)))
    prev = float(x[0])
    for start in range(0, n, block):
        stop = min(n, start + block)
        tb = t[start:stop]
        t0 = float(t[start - 1]) if start else float(tb[0])
        rel = (tb - t0) / tau
        gain = -np.expm1(-np.diff(rel, prepend=0.0))  # 1 - a[k]
        growth = np.exp(rel)  # 1 / A[k]
        acc = np.cumsum(gain * x[start:stop] * growth)
        y[start:stop] = (prev + acc) / growth
        prev = float(y[stop - 1])
    return y


def lag_band(ref: Floats, t: Floats, tau: float | None) -> tuple[Floats, Floats, Floats] | None:
    """(low, high, lagged): the expected reading lies between the reference and its copy.

    The copy is the reference lagged by ``tau``: the slowest sensor the datasheet allows.
    """
    if tau is None or ref.size < 2:  # noqa: PLR2004
        return None
    lagged = first_order(ref, t, tau)
    return np.minimum(ref, lagged), np.maximum(ref, lagged), lagged


@dataclass(frozen=True, slots=True)
class StepResponse:
    index: int  # reading at which the reference stepped
    size: float  # reference change, in the spec's unit
    t63_s: float | None  # None: never reached within the dwell that followed
    t90_s: float | None
    dwell_s: float  # how long the reference stayed at the new level (what could be seen)


def step_responses(
    x: Floats, ref: Floats, t: Floats, steps: Indices, settle: int
) -> list[StepResponse]:
    """t63 and t90 of each step: time until the reading has covered 63 / 90 % of the step.

    The levels before and after a step are means of up to ``settle`` readings of the sensor
    and of the reference; a step is measured while the reference stays within 20 % of the
    step of its new level (until the next step, or the end). Steps closer than 3 readings
    are skipped.
    """
    out: list[StepResponse] = []
    bounds = [*steps.tolist(), x.size]
    for k, i in enumerate(bounds[:-1][:MAX_STEPS]):
        end = bounds[k + 1]
        if i < 1 or end - i < 3:  # noqa: PLR2004
            continue
        ref_before = float(ref[max(0, i - settle) : i].mean())
        size = float(ref[i]) - ref_before
        left = np.flatnonzero(np.abs(ref[i:end] - ref[i]) > 0.2 * abs(size))
        if left.size:
            end = i + int(left[0])
        if end - i < 3:  # noqa: PLR2004
            continue
        before = float(x[max(0, i - settle) : i].mean())
        covered = (x[i:end] - before) / size
        times = []
        for level in (0.63, 0.90):
            hit = np.flatnonzero(covered >= level)
            times.append(float(t[i + hit[0]] - t[i - 1]) if hit.size else None)
        dwell = float(t[end - 1] - t[i - 1])
        out.append(StepResponse(int(i), size, times[0], times[1], dwell))
    return out

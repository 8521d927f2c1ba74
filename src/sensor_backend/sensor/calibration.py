"""Calibration figures from readings against a reference (what a calibration lab reports).

* offset and gain: least-squares line ``reading = offset + gain * reference`` over the readings
  where the reference is steady, with standard errors (type A) and, for the offset, the
  reference's own uncertainty (GUM 5.1.2); expanded at k = 2. The correction a user loads
  into the device is ``corrected = (reading - offset) / gain``.
* linearity: largest deviation of the point errors from that line over the span covered.
* hysteresis: largest difference of the mean error at the same reference level between
  rising and falling approaches.
* repeatability: pooled standard deviation of the mean error over repeated visits (dwells) of
  the same set point from the same direction (so hysteresis is not counted twice).
* Allan deviation of the error (overlapping ADEV, IEEE Std 1139 / SENSOR_SPECS.md): its
  minimum is the best averaging time; its slope separates white noise (-1/2) from drift (+1).

Figures come from point means (``accuracy.Points``: blocks of consecutive readings) where the
reference is steady, so a long series costs little; the Allan deviation uses the readings.
A figure the data cannot support is ``None`` with the reason in ``why``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor.accuracy import block_sums

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    from sensor_backend.sensor.accuracy import Points
    from sensor_backend.sensor.qc import Floats

MIN_SPAN_TOLERANCES = 2.0  # a gain needs the reference to span this many tolerances
MIN_VISIT = 2  # points (of POINT_READINGS readings) in a dwell to count as a visit
ADEV_MIN_READINGS = 16
ADEV_MAX_POINTS = 1 << 16  # longer series are block-averaged first (see allan_deviation)
MAX_POINTS = 1 << 14  # offset, gain, linearity, hysteresis, repeatability: at most this many


@dataclass(frozen=True, slots=True)
class Figure:
    value: float | None
    uncertainty: float | None = None  # expanded, k = 2
    at: float | None = None  # where the figure applies (reference level or tau in s)
    why: str | None = None  # why not evaluated


def _not(why: str) -> Figure:
    return Figure(None, why=f"not evaluated: {why}")


@dataclass(frozen=True, slots=True)
class AllanPoint:
    tau_s: float
    adev: float


@dataclass(frozen=True, slots=True)
class Calibration:
    offset: Figure
    gain: Figure
    linearity: Figure
    hysteresis: Figure
    repeatability: Figure
    allan_minimum: Figure  # value: ADEV minimum; at: its averaging time (s)
    allan: tuple[AllanPoint, ...]
    # Log-log slope of the ADEV up to its minimum: about -1/2 for white noise, 0 flicker,
    # +1/2 random walk, +1 drift (IEEE Std 1139); at: the averaging time it reaches.
    allan_slope: Figure = Figure(None, why="not evaluated")


def _fit(
    ref: Floats, x: Floats, u_ref: float, span_needed: float
) -> tuple[Figure, Figure, float, float]:
    n = ref.size
    span = float(ref.max() - ref.min()) if n else 0.0
    if n < 3 or span < span_needed:  # noqa: PLR2004
        why = f"the steady reference spans {span:.4g}, a gain needs {span_needed:.4g}"
        return _not(why), _not(why), 0.0, 1.0
    rc = ref - ref.mean()
    sxx = float(rc @ rc)
    xc = x - x.mean()
    gain = float(rc @ xc) / sxx
    resid = xc - gain * rc
    s2 = float(resid @ resid) / (n - 2)
    offset = float(x.mean()) - gain * float(ref.mean())
    u_gain = math.sqrt(s2 / sxx)
    u_offset = math.sqrt(s2 * (1.0 / n + float(ref.mean()) ** 2 / sxx) + u_ref**2)
    return Figure(offset, 2.0 * u_offset), Figure(gain, 2.0 * u_gain), offset, gain


def _levels(ref: Floats, width: float) -> NDArray[np.int64]:
    return np.floor(ref / width).astype(np.int64)


def _hysteresis(
    ref: Floats, err: Floats, direction: NDArray[np.int8], width: float, nbins_base: int
) -> Figure:
    level = _levels(ref, width) - nbins_base
    use = direction != 0
    if not (direction > 0).any() or not (direction < 0).any():
        return _not("the reference does not go both ways")
    key = level[use] * 2 + (direction[use] > 0)
    size = int(key.max()) + 1
    counts = np.bincount(key, minlength=size)
    sums = np.bincount(key, weights=err[use], minlength=size)
    counts = counts[: size - size % 2].reshape(-1, 2)
    sums = sums[: size - size % 2].reshape(-1, 2)
    both = (counts >= MIN_VISIT).all(axis=1)
    if not both.any():
        return _not("no reference level was approached from both sides")
    means = sums[both] / counts[both]
    diff = np.abs(means[:, 1] - means[:, 0])
    k = int(np.argmax(diff))
    at = (float(np.flatnonzero(both)[k]) + nbins_base + 0.5) * width
    return Figure(float(diff[k]), at=at)


def _repeatability(
    ref: Floats, err: Floats, steady: NDArray[np.bool_], direction: NDArray[np.int8], width: float
) -> Figure:
    """Pooled spread of visit means at the same set point, approached the same way."""
    level = _levels(ref, width) * 3 + direction  # same level and approach (hysteresis apart)
    new_visit = np.ones(ref.size, dtype=bool)
    new_visit[1:] = (level[1:] != level[:-1]) | ~steady[1:] | ~steady[:-1]
    visit = np.cumsum(new_visit) - 1
    counts = np.bincount(visit)
    means = np.bincount(visit, weights=err) / counts
    first = np.flatnonzero(new_visit)
    long = (counts >= MIN_VISIT) & steady[first]
    if not long.any():
        return _not(f"no dwell of {MIN_VISIT}+ points at a steady reference")
    lv, mv = level[first][long], means[long]
    order = np.argsort(lv, kind="stable")
    lv, mv = lv[order], mv[order]
    uniq, start, count = np.unique(lv, return_index=True, return_counts=True)
    rep = count >= 2  # noqa: PLR2004
    if not rep.any():
        return _not("no set point was visited twice")
    sums = np.add.reduceat(mv, start)
    level_mean = np.repeat(sums / count, count)
    ss = np.add.reduceat((mv - level_mean) ** 2, start)[rep]
    dof = (count[rep] - 1).sum()
    at = float(np.floor_divide(uniq[rep][0] + 1, 3) * width)
    return Figure(math.sqrt(float(ss.sum()) / float(dof)), at=at)


def allan_deviation(
    err: Floats | Callable[[], Floats],
    period: float,
    tau1_adev: float | None = None,
    pts: Points | None = None,
) -> tuple[AllanPoint, ...]:
    """Overlapping Allan deviation of ``err`` at octave averaging times (n >= 16).

    Long series are first averaged over blocks of ``k`` readings (the accuracy test's points
    when given, else a power of two so that at most ``ADEV_MAX_POINTS`` remain): averaging
    times from ``k`` periods on are exact, the shorter ones but the first are skipped; the
    first (one period) is ``tau1_adev`` when given (sqrt(1/2 mean(d^2)) of the first
    differences d, which the noise estimate already has). ``err`` may be a function forming
    the errors (with ``pts``: called only if the points do not suffice).
    """
    if callable(err):
        n = int(pts.starts[-1] + pts.counts[-1]) if pts is not None and pts.starts.size else 0
        if pts is None or n <= ADEV_MAX_POINTS or pts.m == 1:
            err = err()
            n = err.size
    else:
        n = err.size
    if n < ADEV_MIN_READINGS:
        return ()
    k = 1
    if pts is not None and n > ADEV_MAX_POINTS and pts.m > 1:
        k, y = pts.m, pts.err[: n // pts.m]  # whole blocks only: the accuracy test's points
    else:
        assert not callable(err)  # noqa: S101 - formed above for this case
        while n // k > ADEV_MAX_POINTS:
            k *= 2
        y = err[: n - n % k].reshape(-1, k).mean(axis=1) if k > 1 else err
    # Sums of the centred series over windows of m, taken every s-th start (s = m / 8):
    # neighbours that share 7/8 of their readings add almost nothing to the estimate, and
    # cost as much. Each octave's sums are two of the last octave's added (no cumulative sum:
    # the same figures, fewer passes, no cancellation of a long running total); the
    # difference of sums over neighbouring windows is divided by m once, in the mean square.
    sums = y - y.mean()
    out = [AllanPoint(period, tau1_adev)] if k > 1 and tau1_adev is not None else []
    m, s = 1, 1
    while 3 * m <= y.size:
        lag = m // s  # the next window starts lag sampled sums on
        d = sums[lag:] - sums[: sums.size - lag]
        out.append(AllanPoint(m * k * period, math.sqrt(0.5 * float(d @ d) / d.size) / m))
        if m < 8:  # noqa: PLR2004 - s = max(1, m / 8) stays 1: windows at every start
            sums = sums[: sums.size - m] + sums[m:]
        else:  # s doubles: every other start, the sum of the windows at p and p + m
            size = (y.size - 2 * m) // (2 * s) + 1
            sums = sums[0 : 2 * size : 2] + sums[lag : lag + 2 * size : 2]
            s *= 2
        m *= 2
    return tuple(out)


def _direction(ref: Floats, threshold: float) -> NDArray[np.int8]:
    """+1 / -1: the reference last moved up / down (by more than ``threshold``); 0: never."""
    d = np.diff(ref)
    moving = np.abs(d) > threshold
    if not moving.any():
        return np.zeros(ref.size, dtype=np.int8)
    last = np.maximum.accumulate(np.where(np.r_[False, moving], np.arange(ref.size), -1))
    sign = np.zeros(ref.size, dtype=np.int8)
    idx = np.flatnonzero(moving)
    sign[idx + 1] = np.sign(d[idx]).astype(np.int8)
    return np.where(last >= 0, sign[np.maximum(last, 0)], 0).astype(np.int8)


def _coarse(pts: Points) -> Points:
    """Long series: merge points (k at a time) so at most ``MAX_POINTS`` remain.

    Every point but the last holds ``pts.m`` readings, so a merged mean is the plain mean of
    its k point means (no weighting pass), except for the merged point holding the short
    last one: that one is weighted by the readings.
    """
    size = pts.err.size
    k = -(-size // MAX_POINTS)
    if k <= 1:
        return pts
    starts = np.arange(0, size, k)
    last = int(starts[-1])
    points = np.full(starts.size, float(k))  # points per merged point
    points[-1] = size - last
    readings = points * pts.m
    readings[-1] = float(pts.counts[last:].sum())

    def mean(y: Floats) -> Floats:
        out = block_sums(y, k, starts.size)
        out /= points
        out[-1] = float(y[last:] @ pts.counts[last:]) / float(readings[-1])
        return out

    steady = np.logical_and.reduceat(pts.steady, starts)
    err, ref = mean(pts.err), mean(pts.ref)
    return type(pts)(
        pts.m * k,
        pts.starts[starts],
        readings,
        err,
        ref,
        ref + err if pts.x is None else mean(pts.x),  # x = ref + err: its means theirs summed
        steady,
        mean(pts.t),
    )


def calibrate(
    pts: Points,
    err: Floats | Callable[[], Floats],
    *,
    tolerance: float,
    u_ref: float,
    period: float,
    tau1_adev: float | None,
) -> Calibration:
    """Every figure from point means ``pts`` (Allan deviation: from the readings' ``err``).

    ``err``: the errors, or a function forming them (called only if the Allan deviation
    needs more than the points).
    """
    adev_points = pts
    pts = _coarse(pts)
    steady = pts.steady
    rs, xs, es = pts.ref[steady], pts.values()[steady], pts.err[steady]
    offset, gain, a, g = _fit(rs, xs, u_ref, MIN_SPAN_TOLERANCES * tolerance)
    width = tolerance / 2.0
    if offset.value is None or es.size < 3:  # noqa: PLR2004
        linearity = _not("needs a fitted offset and gain")
    else:
        dev = np.abs(xs - (a + g * rs))
        k = int(np.argmax(dev))
        linearity = Figure(float(dev[k]), at=float(rs[k]))
    approach = _direction(pts.ref, tolerance / 10.0)
    direction = approach[steady]
    base = int(np.floor(float(rs.min()) / width)) if rs.size else 0
    hysteresis = _hysteresis(rs, es, direction, width, base) if rs.size else _not("no data")
    repeatability = _repeatability(pts.ref, pts.err, steady, approach, width)
    adev = allan_deviation(err, period, tau1_adev, adev_points)
    if adev:
        best = min(adev, key=lambda p: p.adev)
        allan_min = Figure(best.adev, at=best.tau_s)
    else:
        allan_min = _not(f"needs {ADEV_MIN_READINGS} readings")
    return Calibration(
        offset, gain, linearity, hysteresis, repeatability, allan_min, adev, _slope(adev)
    )


def _slope(adev: tuple[AllanPoint, ...]) -> Figure:
    """Least-squares log-log slope of the first octaves (up to four, and not past the end)."""
    pts = [p for p in adev[:4] if p.adev > 0]
    if len(pts) < 3:  # noqa: PLR2004
        return _not("needs three averaging times")
    lx = np.log([p.tau_s for p in pts])
    ly = np.log([p.adev for p in pts])
    lxc = lx - lx.mean()
    return Figure(float(lxc @ (ly - ly.mean()) / (lxc @ lxc)), at=pts[-1].tau_s)

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
    from collections.abc import Callable

    from numpy.typing import NDArray

    from sensor_backend.sensor.qc import Flags, Floats, Indices

MIN_WINDOW = 10
DENSE_FRACTION = 32  # over 1/32 of the readings beyond tolerance: whole-series arrays


def error_steps(
    d: Floats | Callable[[], Floats],
    dref: Callable[[Indices], Floats],
    allowance: float,
    *,
    threshold: float,
    dt: Floats | float | Callable[[Indices], Floats],
    dt_min: float,
    rate: float,
    extremes: tuple[float, float] | None = None,
) -> tuple[Indices, Floats, Floats]:
    """Steps of the error that may be flagged: (step index, signed size, rate per second).

    Only steps over ``min(threshold, rate * dt)`` are examined (a healthy series has few), and
    each loses what a gain error of ``allowance`` explains: the error may move by that fraction
    of the reference's own step (``dref`` gives it at step indices). ``dt``: seconds per
    step (one for all, per step, or a function giving them at step indices); ``dt_min``:
    the smallest; ``extremes``: d's (min, max), when the caller has them (``d`` may then be
    a function forming the steps, called only if one may be over the limit).
    """
    limit = min(threshold, rate * dt_min)
    if extremes is None:
        d = d() if callable(d) else d
        extremes = (float(d.min()), float(d.max())) if d.size else None
    if extremes is None or (extremes[1] <= limit and extremes[0] >= -limit):
        return np.empty(0, dtype=np.intp), np.empty(0), np.empty(0)  # two reductions: none
    d = d() if callable(d) else d
    big = np.flatnonzero(np.abs(d) > limit)
    if not big.size:
        return big, np.empty(0), np.empty(0)
    size = np.maximum(np.abs(d[big]) - allowance * np.abs(dref(big)), 0.0)
    signed = np.copysign(size, d[big])
    per_s = size / (
        dt if isinstance(dt, float) else dt[big] if isinstance(dt, np.ndarray) else dt(big)
    )
    return big, signed, per_s


def spike(n: int, big: Indices, signed: Floats, outside: Indices, suspect: float) -> Flags:
    """QARTOD spike (differential) on the error's steps: both neighbours jump, opposite ways."""
    if n < 3:  # noqa: PLR2004 - needs both neighbours
        return np.full(n, NOT_EVALUATED, dtype=np.uint8)
    flags = np.ones(n, dtype=np.uint8)
    flags[0] = flags[-1] = NOT_EVALUATED
    over = np.abs(signed) > suspect
    steps, sizes = big[over], signed[over]
    pair = np.flatnonzero(np.diff(steps) == 1)  # steps k and k+1 both big: reading k+1
    opposite = sizes[pair] * sizes[pair + 1] < 0
    flags[steps[pair[opposite]] + 1] = SUSPECT
    return _promote(flags, outside)


def rate_of_change(n: int, big: Indices, per_s: Floats, outside: Indices, suspect: float) -> Flags:
    """Error changing faster than ``suspect`` per second: the reading after the step."""
    if n < 2:  # noqa: PLR2004
        return np.full(n, NOT_EVALUATED, dtype=np.uint8)
    flags = np.ones(n, dtype=np.uint8)
    flags[big[per_s > suspect] + 1] = SUSPECT
    return _promote(flags, outside)


def _promote(flags: Flags, outside: Indices) -> Flags:
    """Flagged readings whose error is beyond the tolerance (``outside``) become FAIL."""
    if outside.size:
        hit = outside[flags[outside] == SUSPECT]
        flags[hit] = FAIL
    return flags


def flat_line(
    same: NDArray[np.bool_],
    ref: Floats,
    tol_at: Callable[[Indices], Floats],
    outside: Indices,
    *,
    suspect_count: int,
    exclude: NDArray[np.bool_] | None,
    resolution: float,
    noisy: bool,
) -> Flags:
    """Runs of flat output: SUSPECT from ``suspect_count``; FAIL where the reference left.

    ``same``: which steps of the output are within the flat tolerance (modified in place).
    ``outside`` lists the readings beyond the tolerance (``tol_at`` gives it at indices):
    the work beyond finding the runs is proportional to them and to the long runs.
    """
    n = ref.size
    if n < 3:  # noqa: PLR2004
        return np.full(n, NOT_EVALUATED, dtype=np.uint8)
    flags = np.ones(n, dtype=np.uint8)
    if exclude is not None:
        same &= ~(exclude[1:] | exclude[:-1])
    if not outside.size and not _has_run(same, suspect_count - 1):
        return flags  # no run long enough to flag, no reading beyond the tolerance
    starts, ends = qc.run_bounds(same)
    if starts.size == 0:
        return flags
    ends = ends + 1  # a run of k "same" steps from step s covers readings s .. s+k
    long = np.flatnonzero(ends - starts >= suspect_count)
    if long.size:
        lengths = ends[long] - starts[long] - (suspect_count - 1)
        first = np.repeat(starts[long], lengths)
        idx = first + _ramp(lengths) + (suspect_count - 1)
        if not noisy:
            idx = idx[np.abs(ref[idx] - ref[first]) > 2 * resolution]
        flags[idx] = SUSPECT
    if outside.size:
        # From the third reading of a run of 3+ (QARTOD's minimum), and still inside it.
        if outside.size * DENSE_FRACTION > n:  # many: mark runs over the whole series
            in_run = qc._mark_tails(n, starts, ends, 3)  # noqa: SLF001
            first = np.zeros(n, dtype=np.intp)
            first[starts] = starts
            first = np.maximum.accumulate(first)
            o = outside[in_run[outside]]
            run_start = first[o]
        else:  # few: find each one's run
            run = np.searchsorted(starts, outside, side="right") - 1
            ok = run >= 0
            o, run = outside[ok], run[ok]
            inside = (o < ends[run]) & (o - starts[run] >= 2)  # noqa: PLR2004
            o, run_start = o[inside], starts[run[inside]]
        moved = np.abs(ref[o] - ref[run_start]) > tol_at(o)
        flags[o[moved]] = FAIL
    return flags


def _has_run(mask: NDArray[np.bool_], length: int) -> bool:
    """Whether ``mask`` holds ``length`` consecutive True entries.

    By doubling, on bytes (no index arrays): ``run[i]`` says ``mask[i : i + have]`` is all
    True, and ``run[:-s] & run[s:]`` (s <= have) extends that to ``have + s``; usually the
    runs die out after a few cheap steps. Long runs are first looked for in aligned groups
    of 8 entries (one 8-byte word each): a run of ``length`` covers at least
    (length - 7) // 8 consecutive whole groups, so without as many all-True words in a row
    there is none (one pass over an eighth as many words, instead of several over bytes).
    """
    groups = (length - 7) // 8
    words = mask.size // 8
    if groups > 0 and words and mask.flags.c_contiguous:
        full = mask[: words * 8].view(np.uint64) == _ALL_TRUE
        if not _has_run(full, groups):
            return False
    run, have = mask, 1
    while have < length:
        if not run.any():
            return False
        step = min(have, length - have)
        run = run[:-step] & run[step:]
        have += step
    return bool(run.any())


_ALL_TRUE = np.frombuffer(np.ones(8, dtype=bool).tobytes(), dtype=np.uint64)[0]  # 8 True bytes


def _ramp(lengths: Indices) -> Indices:
    """0, 1, .., l-1 for each length l, concatenated."""
    total = int(lengths.sum())
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - offsets


def attenuated(  # noqa: PLR0917 - the series, then the test's parameters
    x: Floats,
    ref_lo: Floats,
    ref_hi: Floats,
    tol: tuple[float, float],
    window: int,
    min_window: int = MIN_WINDOW,
    skip: NDArray[np.bool_] | None = None,
    max_deficit: float | None = None,
) -> tuple[Flags, int]:
    """Per-window span deficit of the readings against the (lagged) reference.

    ``tol`` is (smallest, largest) tolerance over the series: the smallest sets the suspect
    threshold, the largest the fail one (so a FAIL is a proven tolerance violation). Windows
    holding a reading in ``skip`` are not judged. ``max_deficit``: an upper bound of every
    window's deficit, when known; within the suspect threshold no span is computed.
    """
    n = x.size
    window = max(window, min_window)
    if n < window:
        return np.full(n, NOT_EVALUATED, dtype=np.uint8), window
    if max_deficit is not None and max_deficit <= tol[0]:
        return np.ones(n, dtype=np.uint8), window
    starts = np.arange(0, n, window)

    def span(y: Floats) -> Floats:
        out: Floats = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
        return out

    # The span any sensor within its response time must show: that of the slower copy.
    span_ref = span(ref_hi) if ref_lo is ref_hi else np.minimum(span(ref_hi), span(ref_lo))
    deficit = span_ref - span(x)
    if skip is not None:  # windows in a response transition: a lagging span proves nothing
        deficit[np.logical_or.reduceat(skip, starts)] = 0.0
    if float(deficit.max()) <= tol[0]:
        return np.ones(n, dtype=np.uint8), window
    per_window = np.where(deficit > 2 * tol[1], FAIL, np.where(deficit > tol[0], SUSPECT, PASS))
    counts = np.diff(np.append(starts, n))
    return np.repeat(per_window.astype(np.uint8), counts), window

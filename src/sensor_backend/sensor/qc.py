"""Vectorised QARTOD-style point checks: one ``uint8`` flag per reading, no Python loops.

Flags follow QARTOD: 1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing. The semantics
follow the IOOS QARTOD manuals as implemented by ``ioos_qc.qartod`` 3.x (gross range, spike
with the "differential" method, rate of change, flat line, time gap), with two deliberate
differences: flat-line thresholds are counts of readings (so the test works without
timestamps and at sub-second rates), and the gap test has a SUSPECT level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import numpy as np
from numpy.typing import NDArray

# Flags and CheckResult live in results.py (what a test produces); qc re-exports them.
from sensor_backend.sensor.results import (
    FAIL,
    FLAG_VALUES,
    MISSING,
    NOT_EVALUATED,
    PASS,
    RIG,
    SUSPECT,
    CheckResult,
)

if TYPE_CHECKING:
    from sensor_backend.sensor.specs import SensorSpec

# Verdict thresholds of the engine (the sensor-specific ones live in the SensorSpec).
# Noise fails only when it alone makes the tolerance impossible to meet: k sigma > tolerance
# with k = 2 (GUM 6.2: ~95 % of readings) - the datasheet tolerance, not the noise limit.
NOISE_COVERAGE_K = 2.0
DRIFT_SIGNIFICANCE = 4.0  # drift needs |slope| > this many standard errors (t-corrected)
GAP_SUSPECT_FACTOR = 1.5  # interval / nominal period
GAP_FAIL_FACTOR = 3.0

Flags: TypeAlias = NDArray[np.uint8]
Floats: TypeAlias = NDArray[np.float64]
Indices: TypeAlias = NDArray[np.intp]

_EMPTY_INDICES: Indices = np.empty(0, dtype=np.intp)
_EMPTY_INDICES.flags.writeable = False  # shared by every result without flagged readings


def summary_flag(counts: NDArray[np.intp]) -> int:
    """Worst flag from per-flag counts: 4 over 3 over 1 over 2; 9 when there are no readings."""
    for flag in (FAIL, SUSPECT, PASS, NOT_EVALUATED):
        if counts[flag]:
            return flag
    return MISSING


def _flag_counts(flags: Flags) -> NDArray[np.intp]:
    """Readings per flag value (index = flag); all-pass series take one cheap pass."""
    counts = np.zeros(10, dtype=np.intp)
    worst = int(flags.max()) if flags.size else 0
    for flag in (NOT_EVALUATED, SUSPECT, FAIL):
        if worst >= flag:  # uint8 comparisons: cheaper than bincount's cast to intp
            counts[flag] = np.count_nonzero(flags == flag)
    counts[PASS] = flags.size - counts.sum()
    return counts


def point_result(
    name: str, flags: Flags, spec: SensorSpec, source: str = "", key: str | None = None
) -> CheckResult:
    """Summarise per-reading flags: worst flag, counts, indices of suspect and failed readings."""
    counts = _flag_counts(flags)
    n_suspect, n_fail = int(counts[SUSPECT]), int(counts[FAIL])
    what = _looks_for(spec, key or name)
    if flags.size == 0:
        message = f"no readings; looks for {what}"
    elif counts[NOT_EVALUATED] == flags.size:
        message = f"not evaluated: too few readings; looks for {what}"
    elif n_suspect + n_fail == 0:
        message = f"pass: none {what}"
    else:
        message = f"{n_fail} fail, {n_suspect} suspect of {flags.size} readings: {what}"
    return CheckResult(
        name=name,
        flag=summary_flag(counts),
        message=message,
        counts={f: int(counts[f]) for f in FLAG_VALUES if counts[f]},
        suspect_indices=np.flatnonzero(flags == SUSPECT) if n_suspect else _EMPTY_INDICES,
        fail_indices=np.flatnonzero(flags == FAIL) if n_fail else _EMPTY_INDICES,
        source=source,
    )


def not_evaluated(name: str, n: int, why: str, source: str = "") -> CheckResult:
    flag = MISSING if n == 0 else NOT_EVALUATED
    message = f"no readings; {why}" if n == 0 else f"not evaluated: {why}"
    counts = {flag: n} if n else {}
    return CheckResult(name, flag, message, counts, _EMPTY_INDICES, _EMPTY_INDICES, source=source)


def _grade(metric: Floats, suspect: float, fail: float) -> Flags:
    flags = np.ones(metric.size, dtype=np.uint8)
    if metric.size and metric.max() > suspect:  # one cheap pass when everything passes
        flags[metric > suspect] = SUSPECT
        flags[metric > fail] = FAIL
    return flags


def gross_range(values: Floats, spec: SensorSpec, vmin: float, vmax: float) -> Flags:
    """FAIL outside the sensor range, SUSPECT outside the operating (climatological) span.

    ``vmin``/``vmax`` are the series' extremes: inside the span, nothing is compared.
    """
    lo, hi = spec.suspect_range
    flags = np.ones(values.size, dtype=np.uint8)
    if values.size and (vmin < lo or vmax > hi):
        flags[(values < lo) | (values > hi)] = SUSPECT
        flags[(values < spec.range_min) | (values > spec.range_max)] = FAIL
    return flags


def spike(n: int, steps: Floats, abs_steps: Floats, suspect: float, fail: float) -> Flags:
    """QARTOD spike, differential method: both neighbours jump, in opposite directions.

    The metric at reading n is ``min(|x[n]-x[n-1]|, |x[n+1]-x[n]|)`` when the two steps have
    opposite signs, else 0; end points are not evaluated (2). Only readings whose two steps
    both exceed ``suspect`` can be flagged, so only those are examined.
    """
    if n < 3:  # noqa: PLR2004 - needs both neighbours
        return np.full(n, NOT_EVALUATED, dtype=np.uint8)
    flags = np.ones(n, dtype=np.uint8)
    flags[0] = flags[-1] = NOT_EVALUATED
    big = abs_steps > suspect
    candidates = np.flatnonzero(big[:-1] & big[1:])
    if candidates.size:
        before, after = steps[candidates], steps[candidates + 1]
        metric = np.minimum(np.abs(before), np.abs(after))
        metric[before * after >= 0] = 0.0
        flags[candidates + 1] = _grade(metric, suspect, fail)
    return flags


def rate_of_change(
    n: int, abs_steps: Floats, intervals: Floats | float, suspect: float, fail: float
) -> Flags:
    """|x[n] - x[n-1]| / dt against units-per-second limits; the first reading passes."""
    if n < 2:  # noqa: PLR2004
        return np.full(n, NOT_EVALUATED, dtype=np.uint8)
    flags = np.ones(n, dtype=np.uint8)
    flags[1:] = _grade(abs_steps / intervals, suspect, fail)
    return flags


def run_bounds(mask: NDArray[np.bool_]) -> tuple[Indices, Indices]:
    """Start (inclusive) and end (exclusive) of every run of True in ``mask``."""
    if not mask.size:
        return _EMPTY_INDICES, _EMPTY_INDICES
    change = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    first = bool(mask[0])
    bounds = np.concatenate(([0], change, [mask.size])) if first else np.append(change, mask.size)
    # bounds alternate start, end, start, end ... (a trailing lone start ends at the size)
    if bounds.size % 2:
        bounds = bounds[:-1]
    return bounds[0::2], bounds[1::2]


def _mark_tails(
    size: int, starts: Indices, ends: Indices, min_len: int, *, whole: bool = False
) -> NDArray[np.bool_]:
    """Readings from position ``min_len - 1`` on (or all, if ``whole``) of runs >= ``min_len``."""
    long_runs = (ends - starts) >= min_len
    if not long_runs.any():
        return np.zeros(size, dtype=bool)
    first = starts[long_runs] + (0 if whole else min_len - 1)
    delta = np.zeros(size + 1, dtype=np.int32)
    np.add.at(delta, first, 1)
    np.add.at(delta, ends[long_runs], -1)
    return np.cumsum(delta[:-1]) > 0


def flat_line(
    n: int,
    abs_steps: Floats,
    *,
    tolerance: float,
    suspect_count: int,
    fail_count: int,
    exclude: NDArray[np.bool_],
) -> Flags:
    """Stuck-at: runs of consecutive readings each within ``tolerance`` of the previous.

    As in QARTOD, a reading is flagged once its run has lasted ``suspect_count`` (3) or
    ``fail_count`` (4) readings. Readings in ``exclude`` (pinned at a range limit: that is
    saturation, reported separately) break runs.
    """
    if n < 3:  # noqa: PLR2004 - QARTOD: fewer than 3 points cannot be judged
        return np.full(n, NOT_EVALUATED, dtype=np.uint8)
    flags = np.ones(n, dtype=np.uint8)
    same = abs_steps <= tolerance
    if np.count_nonzero(same) < suspect_count - 1:  # no run can be long enough
        return flags
    same &= ~(exclude[1:] | exclude[:-1])
    # A run of k "same" steps starting at step s covers readings s .. s+k.
    starts, ends = run_bounds(same)
    ends = ends + 1
    flags[_mark_tails(n, starts, ends, suspect_count)] = SUSPECT
    flags[_mark_tails(n, starts, ends, fail_count)] = FAIL
    return flags


def at_limit(values: Floats, spec: SensorSpec, vmin: float, vmax: float) -> NDArray[np.bool_]:
    """Readings within half a resolution step of a range limit (or beyond it)."""
    half = spec.resolution / 2.0
    top, bottom = spec.range_max - half, spec.range_min + half
    if not values.size or (vmin > bottom and vmax < top):
        return np.zeros(values.size, dtype=bool)
    return (values >= top) | (values <= bottom)


def saturation(pinned: NDArray[np.bool_], run_count: int) -> Flags:
    """SUSPECT for a reading at a range limit, FAIL within a run of ``run_count`` or more."""
    flags = np.ones(pinned.size, dtype=np.uint8)
    if not pinned.any():
        return flags
    flags[pinned] = SUSPECT
    starts, ends = run_bounds(pinned)
    flags[_mark_tails(pinned.size, starts, ends, run_count, whole=True)] = FAIL
    return flags


def time_gap(
    intervals: Floats,
    period: float,
    suspect_factor: float,
    fail_factor: float,
    extremes: tuple[float, float] | None = None,
) -> Flags:
    """Flag the reading after an interval longer than the factors x the nominal period.

    A non-increasing timestamp is a FAIL too. The first reading passes (nothing precedes it).
    ``extremes``: the intervals' (min, max), when the caller has them.
    """
    flags = np.ones(intervals.size + 1, dtype=np.uint8)
    if not intervals.size:
        return flags
    lo, hi = extremes or (float(intervals.min()), float(intervals.max()))
    if lo > 0 and hi <= suspect_factor * period:
        return flags  # every interval fine
    flags[1:] = _grade(intervals / period, suspect_factor, fail_factor)
    if lo <= 0:
        flags[1:][intervals <= 0] = FAIL
    return flags


def _looks_for(spec: SensorSpec, name: str) -> str:
    """What a point check looks for, with its thresholds."""
    lo, hi = spec.suspect_range
    ss, sf = spec.spike_thresholds
    rs, rf = spec.roc_thresholds
    u = spec.unit
    return {
        "gross_range": f"outside {spec.range_min:g}..{spec.range_max:g} {u} (fail) "
        f"or {lo:g}..{hi:g} {u} (suspect)",
        "spike": f"spikes over {ss:g} {u} (suspect) / {sf:g} {u} (fail)",
        "rate_of_change": f"changes faster than {rs:g} / {rf:g} {u}/s",
        "flat_line": f"stuck within {spec.flat_tolerance:g} {u} for "
        f"{spec.flat_line_suspect_count} / {spec.flat_line_fail_count} readings",
        "gap": f"intervals over {GAP_SUSPECT_FACTOR:g}x / {GAP_FAIL_FACTOR:g}x the nominal "
        f"{spec.nominal_period_s:g} s, or timestamps not increasing",
        "saturation": f"pinned at {spec.range_min:g} or {spec.range_max:g} {u} "
        f"({spec.saturation_count}+ in a row fail)",
        "spike_error": f"spikes of the error over {ss:g} {u} (suspect; fail where the reading "
        "is also beyond the tolerance)",
        "rate_of_change_error": f"error changing faster than {rs:g} {u}/s (suspect; fail where "
        "the reading is also beyond the tolerance)",
        "flat_line_error": f"output stuck within {spec.flat_tolerance:g} {u} for "
        f"{spec.flat_line_suspect_count} readings (suspect), or while the reference moved out "
        "of the tolerance (fail)",
        "attenuated_signal": "a span of readings short of the reference's by over the "
        "tolerance (suspect) or twice it (fail)",
    }[name]


def noise(spec: SensorSpec, rms: float, method: str, smallest_tol: float) -> CheckResult:
    """SUSPECT above the noise limit; FAIL only when 2 sigma exceeds the accuracy tolerance.

    The noise limit is a datasheet figure (repeatability, typical rms) or a rig choice, as the
    spec says; typical figures are not guarantees, so exceeding one is only suspect.
    """
    limit = spec.noise_limit
    impossible = NOISE_COVERAGE_K * rms > smallest_tol
    flag = FAIL if impossible else SUSPECT if rms > limit else PASS
    limit_source = "datasheet noise figure" if spec.noise_limit_source == "datasheet" else RIG
    source = "datasheet tolerance" if impossible else limit_source
    message = (
        f"rms {rms:.4g} {spec.unit} ({method}) against limit {limit:g} ({limit_source}); "
        f"fail when {NOISE_COVERAGE_K:g} x rms > the tolerance {smallest_tol:.4g}"
    )
    return CheckResult(
        "noise", flag, message, {}, _EMPTY_INDICES, _EMPTY_INDICES, rms, limit, source
    )


def t_critical(z: float, dof: int) -> float:
    """Student-t quantile matching the normal quantile ``z`` (Cornish-Fisher expansion).

    Short series have few degrees of freedom and heavy-tailed slope estimates; this keeps the
    false-alarm rate of the drift check near the normal one without SciPy.
    """
    z3, z5 = z**3, z**5
    return z + (z3 + z) / (4 * dof) + (5 * z5 + 16 * z3 + 3 * z) / (96 * dof**2)


def drift(spec: SensorSpec, slope_h: float, stderr_h: float, dof: int) -> CheckResult:
    """SUSPECT when the error's slope per hour is above the limit and clearly not noise.

    The drift limit is a bench rule (``specs.py``), so drift alone never fails a test; an error
    that drifts out of the tolerance fails the accuracy test.
    """
    limit = spec.drift_limit
    significant = abs(slope_h) > t_critical(DRIFT_SIGNIFICANCE, dof) * stderr_h
    flag = SUSPECT if abs(slope_h) > limit and significant else PASS
    message = (
        f"error slope {slope_h:+.4g} ± {stderr_h:.2g} {spec.unit}/h against limit {limit:g}"
        + ("" if significant else " (not significant)")
    )
    return CheckResult(
        "drift", flag, message, {}, _EMPTY_INDICES, _EMPTY_INDICES, slope_h, limit, RIG
    )

"""Sensor test analysis: judge one series of readings against a :class:`SensorSpec`.

Pure NumPy, vectorised: ``analyse(spec, values, timestamps, reference)`` returns an
:class:`AnalysisResult` (issue 13, SENSOR_SPECS.md "Judging against a reference").

Two modes, named in the result:

* ``reference`` (:mod:`.error_checks`): the quantity under test is the error
  e = value - reference, after the datasheet response time is allowed for (:mod:`.response`:
  anything between the reference and the reference lagged by tau63 is an expected lag).
  Spike, rate of change, flat line and attenuated signal run on e (:mod:`.dynamics`); accuracy
  is judged per point with its GUM uncertainty and an ILAC-G8 decision rule
  (:mod:`.accuracy`); noise, drift, the response time of each reference step and the
  calibration figures (:mod:`.calibration`) come from e.
* ``values`` (no reference): the QARTOD tests on the values, with thresholds from the spec's
  noise limit and sample rate (:mod:`.qc`); accuracy, drift, response and calibration are not
  evaluated.

``fail`` means the datasheet (or a standard) is violated: the sensor range, the accuracy
tolerance, a stuck or saturated output, missing data beyond the spec's stated fraction.
Figures that are rig choices (noise limit without a datasheet figure, drift limit,
flat-line counts) can only make a test ``suspect``. Every check names its ``source`` and
every reason carries it.

Why not ``ioos-qc``: 3.0.0 pulls pandas, xarray, scipy, shapely and more, walks readings in
Python loops, and ships no thresholds; the tests are a few lines of NumPy each here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor import error_checks, qc
from sensor_backend.sensor.accuracy import POINT_READINGS
from sensor_backend.sensor.error_checks import ErrorSeries
from sensor_backend.sensor.fits import MIN_READINGS, centre, noise_sigma
from sensor_backend.sensor.qc import GAP_FAIL_FACTOR, GAP_SUSPECT_FACTOR
from sensor_backend.sensor.results import (
    DATASHEET,
    FAIL,
    NOT_EVALUATED,
    PASS,
    RIG,
    STANDARD,
    SUSPECT,
    AnalysisResult,
    CheckResult,
    Gaps,
    Stats,
    Verdict,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from numpy.typing import ArrayLike, NDArray

    from sensor_backend.sensor.qc import Flags, Floats, Indices
    from sensor_backend.sensor.specs import DecisionRule, SensorSpec

SPIKE_EXCLUSION_FRACTION = 0.01  # spike-flagged readings leave the noise estimate up to this
_BLOCK = 1 << 15  # steps per cache-sized block (256 KiB of float64)
POINT_CHECKS = (
    *("gross_range", "spike", "rate_of_change", "flat_line", "gap", "saturation"),
    "attenuated_signal",
)
CHECK_ORDER = (*POINT_CHECKS, "accuracy", "noise", "drift", "response_time")
_QARTOD_VALUES = f"{STANDARD} (QARTOD on values; thresholds from the spec: {RIG})"


def _as_series(name: str, data: ArrayLike, n: int | None) -> Floats:
    """A float64 view (or copy) of ``data``, checked for shape.

    Finiteness is checked by :func:`_require_finite` on extremes the analysis needs anyway.
    """
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} has {arr.size} entries for {n} values")
    return arr


def _inputs(
    values: ArrayLike, timestamps: ArrayLike | None, reference: ArrayLike | None
) -> tuple[
    Floats,
    tuple[float, float],
    Floats | None,
    Floats | None,
    tuple[float, float],
    Floats | None,
    tuple[float, float],
]:
    """The series as float64, checked, with the extremes of values, intervals and reference."""
    x = _as_series("values", values, None)
    n = x.size
    vext = (float(x.min()), float(x.max())) if n else (0.0, 0.0)
    _require_finite("values", x, *vext)
    ts = None if timestamps is None else _as_series("timestamps", timestamps, n)
    intervals = None if ts is None else np.diff(ts)
    iext = (0.0, 0.0)
    if ts is not None and intervals is not None and n:
        if intervals.size:
            iext = (float(intervals.min()), float(intervals.max()))
        _require_finite("timestamps", ts, float(ts[0]), *iext)
    ref = None if reference is None else _as_series("reference", reference, n)
    rext = (float(ref.min()), float(ref.max())) if ref is not None and n else (0.0, 0.0)
    if ref is not None:
        _require_finite("reference", ref, *rext)
    return x, vext, ts, intervals, iext, ref, rext


@dataclass(frozen=True, slots=True)
class _Series:
    """The checked input: values, timestamps, times, reference, and their first figures."""

    x: Floats
    ts: Floats | None
    t: Floats  # the timestamps, or the nominal sample times
    ref: Floats | None
    vext: tuple[float, float]  # extremes of the values
    iext: tuple[float, float]  # of the intervals ((0, 0) without)
    rext: tuple[float, float]  # of the reference
    intervals: Floats | None  # None: no timestamps, or not formed (after a scan)
    pass_: error_checks.Scan | None


def _prepare(
    spec: SensorSpec,
    values: ArrayLike,
    timestamps: ArrayLike | None,
    reference: ArrayLike | None,
) -> _Series:
    """The reference mode without a lag band scans the series once (:func:`_scanned`)."""
    if reference is not None and spec.response_tau_s is None:
        x, ts, t, ref, pass_ = _scanned(spec, values, timestamps, reference)
        iext = pass_.interval_extremes or (0.0, 0.0)
        return _Series(x, ts, t, ref, pass_.x_extremes, iext, pass_.ref_extremes, None, pass_)
    x, vext, ts, intervals, iext, ref2, rext = _inputs(values, timestamps, reference)
    t = ts if ts is not None else np.arange(x.size, dtype=np.float64) * spec.nominal_period_s
    return _Series(x, ts, t, ref2, vext, iext, rext, intervals, None)


def _scanned(
    spec: SensorSpec, values: ArrayLike, timestamps: ArrayLike | None, reference: ArrayLike
) -> tuple[Floats, Floats | None, Floats, Floats, error_checks.Scan]:
    """(values, timestamps, times, reference) as float64, checked, and their scan.

    Times are the timestamps or, without them, the nominal sample times; the scan is
    :func:`error_checks.scan` (the reference mode without a lag band).

    Finiteness is judged from the scan's extremes (the pass runs first: NaN and infinities
    only propagate into its figures, which are then not used).
    """
    x = _as_series("values", values, None)
    n = x.size
    ts = None if timestamps is None else _as_series("timestamps", timestamps, n)
    ref = _as_series("reference", reference, n)
    t = ts if ts is not None else np.arange(n, dtype=np.float64) * spec.nominal_period_s
    m = max(1, min(POINT_READINGS, n))
    with np.errstate(invalid="ignore", over="ignore"):
        pass_ = error_checks.scan(
            x, ref, t, m=m, flat_tolerance=spec.flat_tolerance, intervals=ts is not None
        )
    if n:
        _require_finite("values", x, *pass_.x_extremes)
        if ts is not None:
            _require_finite("timestamps", ts, float(ts[0]), *(pass_.interval_extremes or ()))
        _require_finite("reference", ref, *pass_.ref_extremes)
    return x, ts, t, ref, pass_


def _time_steps(
    period: float, intervals: Floats | None, imin: float
) -> tuple[Floats | float, float]:
    """Seconds per step between readings (``period`` where not increasing), and the least."""
    if intervals is None or not intervals.size:
        return period, period
    if imin > 0:
        return intervals, imin
    dt = np.where(intervals > 0, intervals, period)
    return dt, float(dt.min())


def _error_time_steps(
    period: float, ts: Floats | None, intervals: Floats | None, imin: float
) -> tuple[Floats | float | Callable[[Indices], Floats], float]:
    """As :func:`_time_steps`, the intervals formed only where needed.

    Timestamps that always increase give them as a function of step indices (the dynamic
    checks examine few steps).
    """
    if intervals is None and ts is not None and ts.size > 1:
        if imin > 0:
            return (lambda idx: ts[idx + 1] - ts[idx]), imin
        intervals = np.diff(ts)
    return _time_steps(period, intervals, imin)


def _require_finite(name: str, arr: Floats, *extremes: float) -> None:
    """Raise unless every entry of ``arr`` is finite, judged from extremes already computed.

    NaN propagates through min / max and an infinity is an extreme, so finite extremes of an
    array (or of its first entry and its differences) prove every entry finite; otherwise
    (an overflowing difference of huge finite entries) the entries are checked one by one.
    """
    if all(math.isfinite(e) for e in extremes) or np.isfinite(arr).all():
        return
    raise ValueError(f"{name} must be finite (drop or reject NaN / inf before analysis)")


def _stats(
    n: int,
    extremes: tuple[float, float],
    smallest: float | None,
    moments: tuple[float, float, float, float],
) -> Stats:
    """The series' statistics from its mean and centred moments (as :func:`_moments`)."""
    if n == 0:
        return Stats(0, None, None, None, None, None, None)
    mean, m2, sxx, sxy = moments
    return Stats(
        count=n,
        min=extremes[0],
        max=extremes[1],
        mean=mean,
        std=math.sqrt(m2 / (n - 1)) if n > 1 else None,
        trend_per_hour=sxy / sxx * 3600.0 if sxx > 0 else None,
        smallest_step=smallest,
    )


def _moments(x: Floats, t: Floats) -> tuple[float, float, float, float]:
    """mean(x), sum((x - mean)^2), sum((t - mean t)^2) and sum((t - mean t) x).

    The centred times' buffer takes the deviations from the mean once the trend sum is
    formed (no new array).
    """
    if not x.size:
        return 0.0, 0.0, 0.0, 0.0
    tc, sxx = centre(t)
    sxy = float(tc @ x)
    mean = float(x.mean())
    dev = np.subtract(x, mean, out=tc)
    return mean, float(dev @ dev), sxx, sxy


def _smallest_nonzero(abs_steps: Floats) -> float | None:
    """The smallest non-zero value of non-negative floats, in one pass and a minimum.

    Non-negative IEEE 754 doubles order like their bit patterns as unsigned integers, and
    0.0 is the pattern 0: subtracting one wraps it to the largest pattern, out of the way.
    The subtraction is done in place (no 8 bytes per reading allocated): ``abs_steps`` is
    consumed, its contents are garbage afterwards.
    """
    if not abs_steps.size:
        return None
    patterns = abs_steps.view(np.uint64)
    np.subtract(patterns, np.uint64(1), out=patterns)
    return _from_pattern(int(patterns.min()) + 1)


def _from_pattern(bits: int) -> float | None:
    if bits >= 1 << 63:  # only zeros (or the wrapped 0 - 1): no non-zero step
        return None
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _flat_steps(x: Floats, tolerance: float) -> tuple[NDArray[np.bool_], float | None]:
    """(|step| <= ``tolerance`` per step, the smallest non-zero |step|), cache-blocked.

    The reference mode needs no step array of the values, only these two: each block of
    steps is formed, made absolute, compared and searched while it sits in the CPU cache
    (the same operations as on whole arrays, so the same results; one read of ``x``
    instead of five passes over 8 bytes per reading).
    """
    n = x.size - 1
    same = np.empty(max(n, 0), dtype=bool)
    if n <= 0:
        return same, None
    buf = np.empty(min(n, _BLOCK))
    least = (1 << 64) - 1
    for i in range(0, n, _BLOCK):
        j = min(n, i + _BLOCK)
        s = buf[: j - i]
        np.subtract(x[i + 1 : j + 1], x[i:j], out=s)
        np.abs(s, out=s)
        np.less_equal(s, tolerance, out=same[i:j])
        patterns = s.view(np.uint64)
        np.subtract(patterns, np.uint64(1), out=patterns)
        least = min(least, int(patterns.min()))
    return same, _from_pattern(least + 1)


def _gap(
    spec: SensorSpec,
    n: int,
    ts: Floats | None,
    intervals: Floats | None,
    extremes: tuple[float, float],
) -> tuple[CheckResult, Gaps | None, Flags]:
    """QARTOD time gap per reading; FAIL overall only beyond the spec's missing fraction.

    ``intervals``: the timestamps' differences, or None to form them only if some interval
    is out of bounds (``extremes``, their min and max, say whether one is).
    """
    if ts is None or n < 2:  # noqa: PLR2004
        why = "no timestamps" if ts is None else "needs two readings"
        return qc.not_evaluated("gap", n, why), None, np.full(n, NOT_EVALUATED, np.uint8)
    period = spec.nominal_period_s
    lo, hi = extremes
    if intervals is None and lo > 0 and hi <= GAP_SUSPECT_FACTOR * period:
        flags = np.ones(n, dtype=np.uint8)  # every interval fine (as qc.time_gap finds)
        ratio: Floats = np.empty(0)
    else:
        intervals = np.diff(ts) if intervals is None else intervals
        flags = qc.time_gap(intervals, period, GAP_SUSPECT_FACTOR, GAP_FAIL_FACTOR, extremes)
        # uint8, usually all pass: the maximum (one cheap pass) decides whether to search.
        late = np.flatnonzero(flags[1:] > PASS) if int(flags.max()) > PASS else np.empty(0, np.intp)
        ratio = intervals[late] / period
    missing = int(np.maximum(np.rint(ratio) - 1, 0).sum())
    fraction = missing / (n + missing)
    disordered = lo <= 0
    if ratio.size and fraction <= spec.missing_fail_fraction and not disordered:
        flags[flags == FAIL] = SUSPECT  # gaps within the stated fraction: suspect only
    source = f"test plan: missing_fail_fraction {spec.missing_fail_fraction:g}"
    check = qc.point_result("gap", flags, spec, f"{STANDARD} (QARTOD time gap), {source}")
    message = f"{check.message}; ~{missing} missing ({fraction:.2%})"
    gaps = Gaps(
        duration_s=float(ts[-1] - ts[0]),
        mean_interval_s=float(ts[-1] - ts[0]) / (n - 1),
        max_interval_s=extremes[1],
        gap_count=int(ratio.size),
        missing_estimate=missing,
    )
    return replace(check, message=message), gaps, flags


def _values_dynamics(
    spec: SensorSpec,
    steps: Floats,
    abs_steps: Floats,
    *,
    dt: Floats | float,
    pinned: NDArray[np.bool_],
) -> dict[str, Flags]:
    """Values mode: QARTOD spike, rate of change and flat line as is."""
    n = pinned.size
    return {
        "spike": qc.spike(n, steps, abs_steps, *spec.spike_thresholds),
        "rate_of_change": qc.rate_of_change(n, abs_steps, dt, *spec.roc_thresholds),
        "flat_line": qc.flat_line(
            n,
            abs_steps,
            tolerance=spec.flat_tolerance,
            suspect_count=spec.flat_line_suspect_count,
            fail_count=spec.flat_line_fail_count,
            exclude=pinned,
        ),
    }


def _point_checks(
    spec: SensorSpec, flags: Mapping[str, Flags], r: ErrorSeries | None
) -> dict[str, CheckResult]:
    out = {
        "gross_range": qc.point_result("gross_range", flags["gross_range"], spec, DATASHEET),
        "saturation": qc.point_result("saturation", flags["saturation"], spec, DATASHEET),
    }
    for name in ("spike", "rate_of_change", "flat_line"):
        if r is None:
            out[name] = qc.point_result(name, flags[name], spec, _QARTOD_VALUES)
        else:
            check = qc.point_result(name, flags[name], spec, RIG, f"{name}_error")
            if check.fail_indices.size:  # a FAIL here is a tolerance violation
                check = replace(check, source=f"{DATASHEET} tolerance")
            out[name] = check
    return out


def _attenuated(
    spec: SensorSpec, x: Floats, r: ErrorSeries | None, n: int
) -> tuple[CheckResult, Flags]:
    if r is None:
        why = "needs a reference (QARTOD attenuated-signal thresholds are deployment-specific)"
        return qc.not_evaluated("attenuated_signal", n, why), np.full(n, NOT_EVALUATED, np.uint8)
    return error_checks.attenuated_check(spec, x, r)


def _without_reference(n: int) -> dict[str, CheckResult]:
    names = ("accuracy", "drift", "response_time")
    return {name: qc.not_evaluated(name, n, "no reference values") for name in names}


def _aggregate(checks: list[CheckResult], n: int) -> Flags:
    """Worst flag per reading (QARTOD aggregate), from the checks' flagged indices.

    Gross range judges every reading (pass, suspect or fail), so a reading's aggregate is at
    least pass; not-evaluated entries of other tests never decide it, and only the suspect
    and failed readings need writing. No readings: nothing to flag.
    """
    worst = np.full(n, PASS, dtype=np.uint8)
    for check in checks:
        worst[check.suspect_indices] = np.maximum(worst[check.suspect_indices], SUSPECT)
    for check in checks:
        worst[check.fail_indices] = FAIL
    return worst


def analyse(
    spec: SensorSpec,
    values: ArrayLike,
    timestamps: ArrayLike | None = None,
    reference: ArrayLike | None = None,
    *,
    decision_rule: DecisionRule | None = None,
    reference_uncertainty: float | None = None,
) -> AnalysisResult:
    """Judge ``values`` (1-D, finite) against ``spec``.

    ``timestamps`` are seconds (any epoch); without them the nominal sample rate is assumed
    and the gap check is not evaluated. ``reference`` holds the true values. The keyword
    arguments override the spec's decision rule and reference uncertainty (U, k = 2).
    Raises ``ValueError`` for malformed input.
    """
    update: dict[str, object] = {}
    if decision_rule is not None:
        update["decision_rule"] = decision_rule
    if reference_uncertainty is not None:
        update["reference_uncertainty"] = reference_uncertainty
    if update:
        spec = spec.model_copy(update=update)
    src = _prepare(spec, values, timestamps, reference)
    x, ts, t, ref, n, pass_ = src.x, src.ts, src.t, src.ref, src.x.size, src.pass_
    (vmin, vmax), (imin, imax) = src.vext, src.iext
    pinned = qc.at_limit(x, spec, vmin, vmax)
    r = ErrorSeries(spec, x, ref, t, src.rext, pass_) if ref is not None and n else None
    flags = {
        "gross_range": qc.gross_range(x, spec, vmin, vmax),
        "saturation": qc.saturation(pinned, spec.saturation_count),
    }
    if r is None:
        steps = np.diff(x)
        abs_steps = np.abs(steps)
        dt, _ = _time_steps(spec.nominal_period_s, src.intervals, imin)
        flags.update(_values_dynamics(spec, steps, abs_steps, dt=dt, pinned=pinned))
        smallest = _smallest_nonzero(abs_steps)  # consumes abs_steps
    else:
        # With a reference only two things are owed to the values' steps: which are flat,
        # and the smallest one (the error's own steps are r.d).
        if pass_ is None:
            same, smallest = _flat_steps(x, spec.flat_tolerance)
        else:
            same, smallest = pass_.flat, pass_.smallest_step
        dt_e, dt_min = _error_time_steps(spec.nominal_period_s, ts, src.intervals, imin)
        dynamics = error_checks.dynamic_flags(
            spec, same, dt=dt_e, dt_min=dt_min, pinned=pinned, r=r
        )
        flags.update(dynamics)
    checks = _point_checks(spec, flags, r)
    checks["gap"], gaps, flags["gap"] = _gap(spec, n, ts, src.intervals, (imin, imax))
    checks["attenuated_signal"], flags["attenuated_signal"] = _attenuated(spec, x, r, n)

    # Readings a point check explains are left out of noise and drift, so each fault shows in
    # its own check. Spikes are rare by definition: when more readings than that look like
    # spikes, it is noise, and they stay in.
    spike_check = checks["spike"]
    n_spikes = spike_check.suspect_indices.size + spike_check.fail_indices.size
    keep = [flags[k] < SUSPECT for k in ("flat_line", "saturation") if checks[k].flag > PASS]
    if 0 < n_spikes <= SPIKE_EXCLUSION_FRACTION * n:
        keep.append(flags["spike"] < SUSPECT)
    mask = np.logical_and.reduce(keep) if keep else None
    if r is not None:
        sigma = r.sigma_all if mask is None else noise_sigma(r.d, mask)
    else:
        sigma = noise_sigma(steps, mask)
    smallest_tol = spec.tol_abs if r is None else r.tol_min
    if sigma is None:
        checks["noise"] = qc.not_evaluated("noise", n, f"needs {MIN_READINGS} clean readings")
    else:
        checks["noise"] = qc.noise(spec, sigma, "first_difference", smallest_tol)

    ref_part = (
        error_checks.ReferenceFigures()
        if r is None
        else error_checks.judge(spec, x, r, t, mask=mask, sigma=sigma)
    )
    checks.update(ref_part.checks or _without_reference(n))
    checks = {name: checks[name] for name in CHECK_ORDER}
    verdict, reasons, notes = _verdict(n, checks)
    return AnalysisResult(
        spec_name=spec.name,
        verdict=verdict,
        reasons=reasons,
        notes=notes,
        stats=_stats(n, (vmin, vmax), smallest, _moments(x, t) if pass_ is None else pass_.moments),
        accuracy=ref_part.accuracy,
        noise_rms=sigma,
        noise_method=None if sigma is None else "first_difference",
        drift_per_hour=ref_part.drift_h,
        drift_stderr_per_hour=ref_part.drift_se,
        saturation_count=int(np.count_nonzero(pinned)),
        gaps=gaps,
        checks=checks,
        mode="values" if r is None else "reference",
        uncertainty=ref_part.budget,
        decision=ref_part.decision,
        decision_rule_text=None
        if ref_part.decision is None
        else ref_part.decision.describe(spec.unit),
        response=ref_part.response,
        calibration=ref_part.calibration,
        aggregate_flags=_aggregate([checks[k] for k in POINT_CHECKS], n),
    )


def _verdict(
    n: int, checks: Mapping[str, CheckResult]
) -> tuple[Verdict, tuple[str, ...], tuple[str, ...]]:
    reasons = [c.reason for c in checks.values() if c.flag in (SUSPECT, FAIL)]
    notes = [f"{c.name}: {c.message}" for c in checks.values() if c.flag == NOT_EVALUATED]
    worst = max((c.flag for c in checks.values() if c.flag in (SUSPECT, FAIL)), default=PASS)
    if n == 0:
        return "fail", ("no readings", *reasons), tuple(notes)
    if n < MIN_READINGS:
        worst = max(worst, SUSPECT)
        reasons.insert(0, f"only {n} reading(s): spike, flat-line, noise and drift need 3")
    verdict: Verdict = "fail" if worst == FAIL else "suspect" if worst == SUSPECT else "pass"
    return verdict, tuple(reasons), tuple(notes)

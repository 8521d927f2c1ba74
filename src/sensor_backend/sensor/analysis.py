"""Sensor test analysis: judge one series of readings against a :class:`SensorSpec`.

Pure NumPy, vectorised: ``analyse(spec, values, timestamps, reference)`` returns an
:class:`AnalysisResult` (issue 13, SENSOR_SPECS.md "Judging against a reference").

Two modes, named in the result:

* ``reference``: the quantity under test is the error e = value - reference, after the
  datasheet response time is allowed for (:mod:`.response`: anything between the reference
  and the reference lagged by tau63 is an expected lag). Spike, rate of change, flat line and
  attenuated signal run on e (:mod:`.dynamics`); accuracy is judged per point with its GUM
  uncertainty and an ILAC-G8 decision rule (:mod:`.accuracy`); noise, drift, the response time
  of each reference step (:mod:`.response`) and the calibration figures (:mod:`.calibration`)
  come from e.
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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor import accuracy as acc
from sensor_backend.sensor import dynamics, qc, response
from sensor_backend.sensor.calibration import calibrate
from sensor_backend.sensor.qc import GAP_FAIL_FACTOR, GAP_SUSPECT_FACTOR
from sensor_backend.sensor.results import (
    DATASHEET,
    FAIL,
    NOT_EVALUATED,
    PASS,
    RIG,
    STANDARD,
    SUSPECT,
    Accuracy,
    AnalysisResult,
    CheckResult,
    Gaps,
    ResponseTime,
    Stats,
    Verdict,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import ArrayLike, NDArray

    from sensor_backend.sensor.calibration import Calibration
    from sensor_backend.sensor.decision import Decision
    from sensor_backend.sensor.qc import Flags, Floats, Indices
    from sensor_backend.sensor.specs import DecisionRule, SensorSpec
    from sensor_backend.sensor.uncertainty import Budget

MIN_READINGS = 3
DRIFT_MIN_READINGS = 10  # a slope from fewer readings says nothing about drift
SPIKE_EXCLUSION_FRACTION = 0.01  # spike-flagged readings leave the noise estimate up to this
STEADY_BAND = 0.1  # lag band under this fraction of the tolerance: the reference is steady
# Rig choice: where the reference moves by dr in one reading, the error may move by this
# fraction of dr (a gain error, judged by the accuracy test) without being a spike or a step.
GAIN_ALLOWANCE = 0.02
STEP_TOLERANCES = 2.0  # a reference step is a jump over this many tolerances in one reading
DRIFT_POINTS_FROM = 1000  # readings from which drift is fitted on point means
COLLINEAR = 0.01  # 1 - corr(t, ref)^2 below this: time and reference cannot be separated
POINT_CHECKS = (
    *("gross_range", "spike", "rate_of_change", "flat_line", "gap", "saturation"),
    "attenuated_signal",
)
CHECK_ORDER = (*POINT_CHECKS, "accuracy", "noise", "drift", "response_time")
_QARTOD_VALUES = f"{STANDARD} (QARTOD on values; thresholds from the spec: {RIG})"


def _as_series(name: str, data: ArrayLike, n: int | None) -> Floats:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} has {arr.size} entries for {n} values")
    with np.errstate(all="ignore"):  # a finite sum proves every entry finite, in one pass
        finite_sum = math.isfinite(float(arr.sum()))
    if not finite_sum and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (drop or reject NaN / inf before analysis)")
    return arr


def _centre(t: Floats) -> tuple[Floats, float]:
    tc = t - t.mean()
    return tc, float(tc @ tc)


def _linfit(
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


def _stats(
    x: Floats, extremes: tuple[float, float], abs_steps: Floats, centred: tuple[Floats, float]
) -> Stats:
    n = x.size
    if n == 0:
        return Stats(0, None, None, None, None, None, None)
    smallest = float(np.where(abs_steps > 0, abs_steps, math.inf).min()) if n > 1 else math.inf
    tc, sxx = centred
    return Stats(
        count=n,
        min=extremes[0],
        max=extremes[1],
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if n > 1 else None,
        trend_per_hour=float(tc @ x) / sxx * 3600.0 if sxx > 0 else None,
        smallest_step=smallest if math.isfinite(smallest) else None,
    )


def _gap(
    spec: SensorSpec, n: int, ts: Floats | None, intervals: Floats | None
) -> tuple[CheckResult, Gaps | None, Flags]:
    """QARTOD time gap per reading; FAIL overall only beyond the spec's missing fraction."""
    if ts is None or intervals is None or n < 2:  # noqa: PLR2004
        why = "no timestamps" if ts is None else "needs two readings"
        return qc.not_evaluated("gap", n, why), None, np.full(n, NOT_EVALUATED, np.uint8)
    period = spec.nominal_period_s
    flags = qc.time_gap(intervals, period, GAP_SUSPECT_FACTOR, GAP_FAIL_FACTOR)
    late = np.flatnonzero(flags[1:] > PASS)  # uint8: cheap, and usually empty
    ratio = intervals[late] / period
    missing = int(np.maximum(np.rint(ratio) - 1, 0).sum())
    fraction = missing / (n + missing)
    disordered = bool(intervals.size and intervals.min() <= 0)
    if fraction <= spec.missing_fail_fraction and not disordered:
        flags[flags == FAIL] = SUSPECT  # gaps within the stated fraction: suspect only
    source = f"test plan: missing_fail_fraction {spec.missing_fail_fraction:g}"
    check = qc.point_result("gap", flags, spec, f"{STANDARD} (QARTOD time gap), {source}")
    message = f"{check.message}; ~{missing} missing ({fraction:.2%})"
    gaps = Gaps(
        duration_s=float(ts[-1] - ts[0]),
        mean_interval_s=float(ts[-1] - ts[0]) / (n - 1),
        max_interval_s=float(intervals.max()),
        gap_count=int(ratio.size),
        missing_estimate=missing,
    )
    return replace(check, message=message), gaps, flags


def _noise_sigma(d: Floats, mask: NDArray[np.bool_] | None) -> float | None:
    """Noise rms from first differences (white noise: var(d) = 2 sigma^2)."""
    if mask is not None:
        d = d[mask[1:] & mask[:-1]]
    if d.size < MIN_READINGS - 1:
        return None
    return math.sqrt(float(d @ d) / d.size / 2.0)


class _Reference:
    """Everything computed from the error against the reference (the ``reference`` mode)."""

    def __init__(self, spec: SensorSpec, x: Floats, ref: Floats, t: Floats) -> None:
        self.ref = ref
        self.band = response.lag_band(ref, t, spec.response_tau_s)
        if self.band is None:
            self.err = x - ref
        else:
            lo, hi = self.band
            self.err = x - np.clip(x, lo, hi)
        self.spec = spec
        rmin, rmax = float(ref.min()), float(ref.max())
        self.ref_span = rmax - rmin
        self.tol_min = spec.tol_abs + spec.tol_rel * max(0.0, rmin, -rmax)
        self.tol_max = spec.tol_abs + spec.tol_rel * max(abs(rmin), abs(rmax))
        self.abs_err = np.abs(self.err)
        self.max_abs_err = float(self.abs_err.max())
        if self.max_abs_err <= self.tol_min:  # every reading within: nothing to compare
            self.outside: Indices = np.empty(0, dtype=np.intp)
        elif spec.tol_rel == 0:
            self.outside = np.flatnonzero(self.abs_err > spec.tol_abs)
        else:
            self.outside = np.flatnonzero(self.abs_err > spec.tolerance(ref))
        self.d = np.diff(self.err)
        self.sigma_all = _noise_sigma(self.d, None)
        moving = None
        if self.band is not None:
            moving = (self.band[1] - self.band[0]) > STEADY_BAND * self.tol_min
        self.moving = moving  # readings inside a response transition (None: never)
        # Without a lag band the error is x - ref, so x's point means are ref's plus e's.
        self.points = acc.points(
            self.err, ref, x if self.band is not None else None, moving, acc.POINT_READINGS, t
        )

    def d_ref(self, idx: Indices) -> Floats:
        """The reference's step at step indices ``idx`` (step k: reading k to k + 1)."""
        out: Floats = self.ref[idx + 1] - self.ref[idx]
        return out

    def steps(self, threshold: float) -> Indices:
        """Readings where the reference jumped by more than ``threshold`` from the previous.

        Candidates come from the point means (a jump of S moves two neighbouring points by
        S in total, so some point moves by S / 2 or more); only their readings are examined.
        """
        pts = self.points
        moved = np.flatnonzero(np.abs(np.diff(pts.ref)) > threshold / 2.0)
        if not moved.size:
            return np.empty(0, dtype=np.intp)
        m = pts.m
        blocks = np.unique(np.concatenate((moved, moved + 1)))
        idx = (blocks[:, None] * m + np.arange(-1, m)).ravel()
        idx = idx[(idx >= 0) & (idx < self.ref.size - 1)]
        idx = np.unique(idx)
        out: Indices = idx[np.abs(self.d_ref(idx)) > threshold] + 1
        return out

    def tol_at(self, idx: Indices) -> Floats:
        """The datasheet tolerance at readings ``idx``."""
        return self.spec.tol_abs + self.spec.tol_rel * np.abs(self.ref[idx])


def _dynamic_checks(
    spec: SensorSpec,
    steps: Floats,
    *,
    dt: Floats | float,
    pinned: NDArray[np.bool_],
    r: _Reference | None,
) -> dict[str, Flags]:
    n = pinned.size
    abs_steps = np.abs(steps)
    ss = spec.spike_thresholds[0]
    rs = spec.roc_thresholds[0]
    if r is None:  # values mode: QARTOD as is
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
    big, signed, per_s = dynamics.error_steps(
        r.d, r.d_ref, max(GAIN_ALLOWANCE, spec.tol_rel), threshold=ss, dt=dt, rate=rs
    )
    return {
        "spike": dynamics.spike(n, big, signed, r.outside, ss),
        "rate_of_change": dynamics.rate_of_change(n, big, per_s, r.outside, rs),
        "flat_line": dynamics.flat_line(
            abs_steps,
            r.ref,
            r.tol_at,
            r.outside,
            tolerance=spec.flat_tolerance,
            suspect_count=spec.flat_line_suspect_count,
            exclude=pinned if pinned.any() else None,
            resolution=spec.resolution,
            noisy=(r.sigma_all or 0.0) > spec.resolution,
        ),
    }


def _point_checks(
    spec: SensorSpec, flags: Mapping[str, Flags], r: _Reference | None
) -> dict[str, CheckResult]:
    out = {
        "gross_range": qc.point_result("gross_range", flags["gross_range"], spec, DATASHEET),
        "saturation": qc.point_result("saturation", flags["saturation"], spec, DATASHEET),
    }
    for name in ("spike", "rate_of_change", "flat_line"):
        if r is None:
            out[name] = qc.point_result(name, flags[name], spec, _QARTOD_VALUES)
        else:
            failed = bool((flags[name] == FAIL).any())
            source = f"{DATASHEET} tolerance" if failed else RIG
            out[name] = qc.point_result(name, flags[name], spec, source, f"{name}_error")
    return out


def _attenuated(
    spec: SensorSpec, x: Floats, r: _Reference | None, n: int
) -> tuple[CheckResult, Flags]:
    if r is None:
        why = "needs a reference (QARTOD attenuated-signal thresholds are deployment-specific)"
        return qc.not_evaluated("attenuated_signal", n, why), np.full(n, NOT_EVALUATED, np.uint8)
    if r.ref_span <= r.tol_min:  # the reference never moves a tolerance: nothing to attenuate
        return qc.point_result("attenuated_signal", np.ones(n, np.uint8), spec, RIG), np.ones(
            n, np.uint8
        )
    window = max(spec.flat_line_suspect_count, dynamics.MIN_WINDOW)
    pts = r.points
    tols = (r.tol_min, r.tol_max)
    if r.band is None and pts.m > 1 and window // pts.m >= 2:  # noqa: PLR2004
        # Long series: the same spans over point means (noise averaged out, signal kept).
        per_point, _ = dynamics.attenuated(pts.x, pts.ref, pts.ref, tols, window // pts.m, 2)
        flags = np.repeat(per_point, pts.counts.astype(np.intp))
    else:
        lo, hi = r.band if r.band is not None else (r.ref, r.ref)
        flags, _ = dynamics.attenuated(x, lo, hi, tols, window)
    failed = bool((flags == FAIL).any())
    source = f"{DATASHEET} tolerance" if failed else RIG
    return qc.point_result("attenuated_signal", flags, spec, source), flags


def _response(
    spec: SensorSpec, x: Floats, r: _Reference, t: Floats
) -> tuple[CheckResult, ResponseTime]:
    tau = spec.response_tau_s
    t90 = None if tau is None else tau * response.T90_OVER_T63
    steps = r.steps(STEP_TOLERANCES * r.tol_min)
    n = x.size
    if steps.size == 0:
        why = f"no reference step over {STEP_TOLERANCES:g}x the tolerance"
        return qc.not_evaluated("response_time", n, why), ResponseTime(tau, t90, (), why)
    settle = max(3, round((tau or spec.nominal_period_s) / spec.nominal_period_s))
    measured = tuple(response.step_responses(x, r.ref, t, steps, settle))
    got = [s.t63_s for s in measured]
    shown = ", ".join("never" if v is None else f"{v:.3g}" for v in got[:10])
    if tau is None:
        why = "the datasheet gives no response time"
        check = qc.not_evaluated("response_time", n, f"{why}; measured t63 (s): {shown}")
        return check, ResponseTime(None, None, measured, why)
    limit = response.SLOW_FACTOR * tau + spec.nominal_period_s
    # A step is judged only if the reference dwelt long enough to see the datasheet's t90.
    judged = [s.t63_s for s in measured if s.dwell_s >= response.JUDGED_DWELL_TAUS * tau]
    slow = [v for v in judged if v is None or v > limit]
    flag = SUSPECT if slow else PASS
    message = (
        f"t63 of {len(got)} step(s) (s): {shown} against datasheet tau63 {tau:g} s "
        f"(suspect above {limit:.3g} s; {len(judged)} step(s) with a dwell of "
        f"{response.JUDGED_DWELL_TAUS:g} tau63 or more judged)"
    )
    check = CheckResult(
        "response_time",
        flag,
        message,
        {},
        np.empty(0, np.intp),
        np.empty(0, np.intp),
        max((v for v in got if v is not None), default=None),
        limit,
        f"{DATASHEET} tau63 (typical: suspect only)",
    )
    return check, ResponseTime(tau, t90, measured)


def _drift_fit(
    spec: SensorSpec,
    r: _Reference,
    t: Floats,
    centred: tuple[Floats, float],
    mask: NDArray[np.bool_] | None,
) -> tuple[float, float, int] | str:
    """(slope per hour, its standard error, dof) of the error over time, or why not.

    Readings inside a response transition (the lag band wider than a tenth of the tolerance)
    are left out. Where the reference moves, the error is fitted on time *and* level, so a gain
    error (error growing with the level) is not taken for drift; if the reference moves in
    step with time (a ramp), the two cannot be told apart and drift is not judged. Long
    series are fitted on point means (blocks of readings), short ones reading by reading.
    """
    q_floor = spec.resolution / math.sqrt(12.0)
    # Readings in a response transition carry the lag allowance, not the error: left out.
    if r.moving is not None:
        mask = ~r.moving if mask is None else mask & ~r.moving
        if np.count_nonzero(mask) < DRIFT_MIN_READINGS:
            return "too few readings outside response transitions"
    if r.err.size >= DRIFT_POINTS_FROM:
        pts = r.points
        keep = None if mask is None else ~np.logical_or.reduceat(~mask, pts.starts)
        tt, yy, rr = pts.t, pts.err, pts.ref
        if keep is not None:
            if np.count_nonzero(keep) < MIN_READINGS:
                return "too few points outside response transitions"
            tt, yy, rr = tt[keep], yy[keep], rr[keep]
        tc, sxx = _centre(tt)
        q_floor /= math.sqrt(pts.m)
    else:
        tc, sxx = centred if mask is None else _centre(t[mask])
        yy = r.err if mask is None else r.err[mask]
        rr = r.ref if mask is None else r.ref[mask]
    n = yy.size
    if float(rr.max() - rr.min()) <= r.tol_min:  # a steady reference: time alone
        fit = _linfit(tc, sxx, yy, q_floor)
        if fit is None:
            return "too few readings"
        return fit[0] * 3600.0, fit[2] * 3600.0, max(n - 2, 1)
    rc = rr - rr.mean()
    yc = yy - yy.mean()
    srr, str_ = float(rc @ rc), float(tc @ rc)
    det = sxx * srr - str_ * str_
    if n < 4 or det <= COLLINEAR * sxx * srr:  # noqa: PLR2004
        return "the reference moves in step with time: drift cannot be told from a gain error"
    sty, sry = float(tc @ yc), float(rc @ yc)
    slope = (srr * sty - str_ * sry) / det
    gain = (sxx * sry - str_ * sty) / det
    sse = max(float(yc @ yc) - slope * sty - gain * sry, 0.0)
    stderr = math.sqrt(max(sse / (n - 3), q_floor**2) * srr / det)
    return slope * 3600.0, stderr * 3600.0, n - 3


@dataclass(slots=True)
class _ReferenceFigures:
    checks: dict[str, CheckResult] = field(default_factory=dict)
    accuracy: Accuracy | None = None
    budget: Budget | None = None
    decision: Decision | None = None
    calibration: Calibration | None = None
    response: ResponseTime | None = None
    drift_h: float | None = None
    drift_se: float | None = None


def _without_reference(n: int) -> dict[str, CheckResult]:
    names = ("accuracy", "drift", "response_time")
    return {name: qc.not_evaluated(name, n, "no reference values") for name in names}


def _judge(
    spec: SensorSpec,
    x: Floats,
    r: _Reference,
    t: Floats,
    *,
    centred: tuple[Floats, float],
    mask: NDArray[np.bool_] | None,
    sigma: float | None,
) -> _ReferenceFigures:
    """Accuracy, drift, response time and calibration figures from the error."""
    out = _ReferenceFigures()
    n = x.size
    out.checks["accuracy"], out.accuracy, out.budget, out.decision = acc.assess(
        spec, r.err, r.points, (r.abs_err, r.max_abs_err, r.outside), sigma
    )
    kept = n if mask is None else int(np.count_nonzero(mask))
    if kept < DRIFT_MIN_READINGS:
        why = f"needs {DRIFT_MIN_READINGS} readings"
        out.checks["drift"] = qc.not_evaluated("drift", n, why)
    else:
        fit = _drift_fit(spec, r, t, centred, mask)
        if isinstance(fit, str):
            out.checks["drift"] = qc.not_evaluated("drift", n, fit)
        else:
            out.drift_h, out.drift_se, dof = fit
            out.checks["drift"] = qc.drift(spec, out.drift_h, out.drift_se, dof)
    out.checks["response_time"], out.response = _response(spec, x, r, t)
    out.calibration = calibrate(
        r.points,
        r.err,
        tolerance=r.tol_min,
        u_ref=spec.reference_expanded_uncertainty[0] / 2.0,
        period=float(t[-1] - t[0]) / (n - 1) if n > 1 else spec.nominal_period_s,
        tau1_adev=r.sigma_all,
    )
    return out


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
    x = _as_series("values", values, None)
    n = x.size
    ts = None if timestamps is None else _as_series("timestamps", timestamps, n)
    ref = None if reference is None else _as_series("reference", reference, n)
    period = spec.nominal_period_s
    t = ts if ts is not None else np.arange(n, dtype=np.float64) * period
    steps = np.diff(x)
    abs_steps = np.abs(steps)
    intervals = None if ts is None else np.diff(ts)
    dt: Floats | float = period
    if intervals is not None and intervals.size:
        dt = intervals if intervals.min() > 0 else np.where(intervals > 0, intervals, period)
    vmin, vmax = (float(x.min()), float(x.max())) if n else (0.0, 0.0)
    pinned = qc.at_limit(x, spec, vmin, vmax)
    r = _Reference(spec, x, ref, t) if ref is not None and n else None

    flags = {
        "gross_range": qc.gross_range(x, spec, vmin, vmax),
        "saturation": qc.saturation(pinned, spec.saturation_count),
        **_dynamic_checks(spec, steps, dt=dt, pinned=pinned, r=r),
    }
    checks = _point_checks(spec, flags, r)
    checks["gap"], gaps, flags["gap"] = _gap(spec, n, ts, intervals)
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
    if r is not None and mask is None:
        sigma = r.sigma_all
    else:
        sigma = _noise_sigma(steps if r is None else r.d, mask)
    tc, sxx = _centre(t) if n else (t, 0.0)
    smallest_tol = spec.tol_abs if r is None else r.tol_min
    if sigma is None:
        checks["noise"] = qc.not_evaluated("noise", n, f"needs {MIN_READINGS} clean readings")
    else:
        checks["noise"] = qc.noise(spec, sigma, "first_difference", smallest_tol)

    ref_part = (
        _ReferenceFigures()
        if r is None
        else _judge(spec, x, r, t, centred=(tc, sxx), mask=mask, sigma=sigma)
    )
    checks.update(ref_part.checks or _without_reference(n))
    checks = {name: checks[name] for name in CHECK_ORDER}
    verdict, reasons, notes = _verdict(n, checks)
    return AnalysisResult(
        spec_name=spec.name,
        verdict=verdict,
        reasons=reasons,
        notes=notes,
        stats=_stats(x, (vmin, vmax), abs_steps, (tc, sxx)),
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

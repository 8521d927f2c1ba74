"""Sensor test analysis: judge one series of readings against a :class:`SensorSpec`.

Pure NumPy, vectorised, no framework: ``analyse(spec, values, timestamps, reference)`` returns
an :class:`AnalysisResult` with basic statistics, accuracy against the reference, noise, drift,
the QARTOD-style point checks of :mod:`sensor_backend.sensor.qc` and a verdict.

Why not ``ioos-qc``: version 3.0.0 (the current release, sdist only) installs pandas, xarray,
scipy, shapely, h5netcdf, geojson, jsonschema, ruamel.yaml, pyparsing and geographiclib, none of
which this service otherwise needs. It also does not fit a bench test: ``spike_test`` walks every
reading in a Python loop, ``flat_line_test`` rounds the median sampling interval to whole
seconds (sub-second rates divide by zero) and ``time_gap_test`` works in hours. The tests used
here are a few lines of NumPy each, so they are implemented in ``qc.py`` with the same flags.

Noise and drift are measured on the error against the reference (rms of the residual after a
least-squares line, and that line's slope per hour); without a reference, noise is the rms of
first differences / sqrt(2), which ignores a slowly varying stimulus, and drift is not
evaluated. Readings a point check already explains (stuck-at runs, saturation, and spikes
while they are under 1 % of the series) are left out of both.

Verdict: ``fail`` if any check is 4, else ``suspect`` if any is 3, else ``pass``; no readings
is a fail, fewer than 3 (too few for spike, flat-line, noise, drift) at best suspect. Checks
that cannot run (no reference: accuracy and drift; no timestamps: gap) are 2 and do not
change the verdict; they are listed in ``notes``. ``reasons`` names every check at 3 or 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor import qc
from sensor_backend.sensor.qc import GAP_FAIL_FACTOR, GAP_SUSPECT_FACTOR
from sensor_backend.sensor.results import (
    FAIL,
    NOT_EVALUATED,
    PASS,
    SUSPECT,
    Accuracy,
    AnalysisResult,
    CheckResult,
    Gaps,
    Stats,
    Verdict,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import ArrayLike, NDArray

    from sensor_backend.sensor.qc import Floats
    from sensor_backend.sensor.specs import SensorSpec

MIN_READINGS = 3
DRIFT_MIN_READINGS = 10  # a slope from fewer readings says nothing about drift
SPIKE_EXCLUSION_FRACTION = 0.01  # spike-flagged readings leave the noise estimate up to this
CHECK_ORDER = (
    *("gross_range", "spike", "rate_of_change", "flat_line", "gap", "saturation"),
    *("accuracy", "noise", "drift"),
)


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
    """(slope per second, residual rms, slope standard error) of y on centred times ``tc``.

    The residual sigma behind the standard error is at least ``sigma_floor`` (quantisation
    noise, which a few nearly collinear readings can otherwise hide). None if undefined.
    """
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
    smallest = float(np.min(abs_steps, where=abs_steps > 0, initial=math.inf))
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


@dataclass(frozen=True, slots=True)
class _ErrorModel:
    noise: CheckResult
    drift: CheckResult
    noise_rms: float | None = None
    noise_method: str | None = None
    drift_per_hour: float | None = None
    drift_stderr_per_hour: float | None = None


def _noise_and_drift(
    spec: SensorSpec,
    *,
    t: Floats,
    steps: Floats,
    err: Floats | None,
    mask: NDArray[np.bool_] | None,
    centred: tuple[Floats, float],
) -> _ErrorModel:
    """Noise (detrended error, or first differences without a reference) and drift.

    Only readings in ``mask`` (None: all) count: those a point check already explains
    (spikes, stuck-at runs, saturation) would otherwise show up twice, as noise and drift.
    """
    n = t.size
    kept = n if mask is None else int(np.count_nonzero(mask))
    fit = None
    if err is not None and kept >= MIN_READINGS:
        tc, sxx = centred if mask is None else _centre(t[mask])
        y = err if mask is None else err[mask]
        fit = _linfit(tc, sxx, y, spec.resolution / math.sqrt(12.0))  # quantisation floor
    rms = method = None
    if fit is not None:
        rms, method = fit[1], "detrended_error"
    elif kept >= MIN_READINGS:  # first differences remove a slowly varying stimulus
        d = steps if mask is None else steps[mask[1:] & mask[:-1]]
        if d.size >= MIN_READINGS - 1:
            rms, method = float(d.std()) / math.sqrt(2.0), "first_difference"
    if rms is None or method is None:
        noise = qc.not_evaluated("noise", n, f"needs {MIN_READINGS} clean readings")
    else:
        noise = qc.noise(spec, rms, method)
    if fit is None or kept < DRIFT_MIN_READINGS:
        why = "no reference values" if err is None else f"needs {DRIFT_MIN_READINGS} readings"
        return _ErrorModel(noise, qc.not_evaluated("drift", n, why), rms, method)
    slope_h, stderr_h = fit[0] * 3600.0, fit[2] * 3600.0
    drift = qc.drift(spec, slope_h, stderr_h, max(kept - 2, 1))
    return _ErrorModel(noise, drift, rms, method, slope_h, stderr_h)


def _gap(
    spec: SensorSpec, n: int, ts: Floats | None, intervals: Floats | None
) -> tuple[CheckResult, Gaps | None]:
    if ts is None or intervals is None or n < 2:  # noqa: PLR2004
        why = "no timestamps" if ts is None else "needs two readings"
        return qc.not_evaluated("gap", n, why), None
    period = spec.nominal_period_s
    flags = qc.time_gap(intervals, period, GAP_SUSPECT_FACTOR, GAP_FAIL_FACTOR)
    check = qc.point_result("gap", flags, spec)
    ratio = intervals[flags[1:] > PASS] / period
    gaps = Gaps(
        duration_s=float(ts[-1] - ts[0]),
        mean_interval_s=float(ts[-1] - ts[0]) / (n - 1),
        max_interval_s=float(intervals.max()),
        gap_count=int(ratio.size),
        missing_estimate=int(np.maximum(np.rint(ratio) - 1, 0).sum()),
    )
    return check, gaps


def _accuracy(
    spec: SensorSpec, err: Floats, ref: Floats, extremes: tuple[float, float]
) -> tuple[CheckResult, Accuracy]:
    n = err.size
    abs_err = np.abs(err)
    bias, max_abs, rmse = float(err.mean()), float(abs_err.max()), math.sqrt(err @ err / n)
    lo, hi = extremes  # of the reference: the smallest tolerance is at the smallest |ref|
    smallest_tol = spec.tol_abs + spec.tol_rel * max(0.0, lo, -hi)
    detail = f"; bias {bias:+.4g}, max |error| {max_abs:.4g}, RMSE {rmse:.4g} {spec.unit}"
    check = qc.accuracy(spec, abs_err, ref, detail=detail, all_within=max_abs <= smallest_tol)
    within = check.value if check.value is not None else 0.0
    return check, Accuracy(bias, max_abs, rmse, within, check.counts.get(FAIL, 0))


def analyse(
    spec: SensorSpec,
    values: ArrayLike,
    timestamps: ArrayLike | None = None,
    reference: ArrayLike | None = None,
) -> AnalysisResult:
    """Judge ``values`` (1-D, finite) against ``spec``.

    ``timestamps`` are seconds (any epoch); without them the nominal sample rate is assumed
    and the gap check is not evaluated. ``reference`` holds the true values for accuracy,
    noise of the error and drift. Raises ``ValueError`` for malformed input.
    """
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
    flags = {
        "gross_range": qc.gross_range(x, spec, vmin, vmax),
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
        "saturation": qc.saturation(pinned, spec.saturation_count),
    }
    checks = {name: qc.point_result(name, f, spec) for name, f in flags.items()}
    checks["gap"], gaps = _gap(spec, n, ts, intervals)
    accuracy = err = None
    if ref is None or n == 0:
        checks["accuracy"] = qc.not_evaluated("accuracy", n, "no reference values")
    else:
        err = x - ref
        ref_extremes = float(ref.min()), float(ref.max())
        checks["accuracy"], accuracy = _accuracy(spec, err, ref, ref_extremes)
    # Readings a point check explains are left out of noise and drift, so each fault shows in
    # its own check. Spikes are rare by definition: when more readings than that look like
    # spikes, it is noise, and they stay in.
    spike_check = checks["spike"]
    n_spikes = spike_check.suspect_indices.size + spike_check.fail_indices.size
    keep = [flags[k] < SUSPECT for k in ("flat_line", "saturation") if checks[k].flag > PASS]
    if 0 < n_spikes <= SPIKE_EXCLUSION_FRACTION * n:
        keep.append(flags["spike"] < SUSPECT)
    mask = np.logical_and.reduce(keep) if keep else None
    centred = _centre(t) if n else (t, 0.0)
    model = _noise_and_drift(spec, t=t, steps=steps, err=err, mask=mask, centred=centred)
    checks["noise"], checks["drift"] = model.noise, model.drift
    checks = {name: checks[name] for name in CHECK_ORDER}
    verdict, reasons, notes = _verdict(n, checks)
    return AnalysisResult(
        spec_name=spec.name,
        verdict=verdict,
        reasons=reasons,
        notes=notes,
        stats=_stats(x, (vmin, vmax), abs_steps, centred),
        accuracy=accuracy,
        noise_rms=model.noise_rms,
        noise_method=model.noise_method,
        drift_per_hour=model.drift_per_hour,
        drift_stderr_per_hour=model.drift_stderr_per_hour,
        saturation_count=int(np.count_nonzero(pinned)),
        gaps=gaps,
        checks=checks,
    )


def _verdict(
    n: int, checks: Mapping[str, CheckResult]
) -> tuple[Verdict, tuple[str, ...], tuple[str, ...]]:
    reasons = [f"{c.name}: {c.message}" for c in checks.values() if c.flag in (SUSPECT, FAIL)]
    notes = [f"{c.name}: {c.message}" for c in checks.values() if c.flag == NOT_EVALUATED]
    worst = max((c.flag for c in checks.values() if c.flag in (SUSPECT, FAIL)), default=PASS)
    if n == 0:
        return "fail", ("no readings", *reasons), tuple(notes)
    if n < MIN_READINGS:
        worst = max(worst, SUSPECT)
        reasons.insert(0, f"only {n} reading(s): spike, flat-line, noise and drift need 3")
    verdict: Verdict = "fail" if worst == FAIL else "suspect" if worst == SUSPECT else "pass"
    return verdict, tuple(reasons), tuple(notes)

"""Reference mode: the sensor's error against its reference, and what is judged on it.

:class:`ErrorSeries` holds the error e = value - reference after the datasheet response time
is allowed for (anything between the reference and the reference lagged by tau63 counts as
no error, :mod:`.response`), its point means (:mod:`.accuracy`) and what several checks share.
On it: the dynamic QARTOD tests (:mod:`.dynamics`), attenuated signal, the accuracy test
(GUM budget and ILAC-G8 decision), drift apart from gain, the response time of each reference
step and the calibration figures (:mod:`.calibration`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor import accuracy as acc
from sensor_backend.sensor import dynamics, qc, response
from sensor_backend.sensor.calibration import calibrate
from sensor_backend.sensor.fits import MIN_READINGS, noise_sigma
from sensor_backend.sensor.results import (
    DATASHEET,
    PASS,
    RIG,
    SUSPECT,
    Accuracy,
    CheckResult,
    ResponseTime,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    from sensor_backend.sensor.calibration import Calibration
    from sensor_backend.sensor.decision import Decision
    from sensor_backend.sensor.qc import Flags, Floats, Indices
    from sensor_backend.sensor.specs import SensorSpec
    from sensor_backend.sensor.uncertainty import Budget

DRIFT_MIN_READINGS = 10  # a slope from fewer readings says nothing about drift
# Rig choice: the drift limit is per hour; over less than 10 minutes it is extrapolated 6x+
# and any slow structure of the error (a residual lag) would read as drift.
DRIFT_MIN_DURATION_S = 600.0
STEADY_BAND = 0.1  # lag band under this fraction of the tolerance: the reference is steady
# Rig choice: where the reference moves by dr in one reading, the error may move by this
# fraction of dr (a gain error, judged by the accuracy test) without being a spike or a step.
GAIN_ALLOWANCE = 0.02
STEP_TOLERANCES = 2.0  # a reference step is a jump over this many tolerances in one reading
DRIFT_POINTS_FROM = 1000  # readings from which drift is fitted on point means
COLLINEAR = 0.01  # 1 - corr(t, ref)^2 below this: time and reference cannot be separated


class ErrorSeries:
    """Everything computed from the error against the reference (the ``reference`` mode).

    The error ``err`` and its steps ``d`` are whole-series arrays formed on first use: after
    a :func:`scan` a healthy series needs neither (their figures came from the scan).
    """

    def __init__(  # noqa: PLR0917 - the series, then what a scan already found
        self,
        spec: SensorSpec,
        x: Floats,
        ref: Floats,
        t: Floats,
        ref_extremes: tuple[float, float] | None = None,
        pass_: Scan | None = None,
    ) -> None:
        """``pass_``: the :func:`scan` of the series, when there is no lag band."""
        self.ref = ref
        self.x = x
        lagged = None if pass_ is not None else response.lag_band(ref, t, spec.response_tau_s)
        self.band = None if lagged is None else lagged[:2]
        self.lagged = None if lagged is None else lagged[2]
        self.d_extremes: tuple[float, float] | None = None
        sums: tuple[Floats, Floats, Floats] | None = None
        self._err: Floats | None = None
        self._d: Floats | None = None
        self._moments: tuple[float, float] | None = None
        if pass_ is not None:
            emin, emax = pass_.err_extremes
            self.d_extremes, sums = pass_.d_extremes, pass_.sums
            self._moments = (pass_.e_sum, pass_.ee)
        else:
            if self.band is None:
                self._err = x - ref
            else:
                lo, hi = self.band
                self._err = x - np.clip(x, lo, hi)
            emin, emax = float(self._err.min()), float(self._err.max())
        self.spec = spec
        rmin, rmax = ref_extremes or (float(ref.min()), float(ref.max()))
        self.ref_span = rmax - rmin
        self.tol_min = spec.tol_abs + spec.tol_rel * max(0.0, rmin, -rmax)
        self.tol_max = spec.tol_abs + spec.tol_rel * max(abs(rmin), abs(rmax))
        # The error's extremes give max |e| (two reductions, no |e| array) and bound the
        # attenuated-signal deficit; |e| is only formed when some reading may be outside.
        self.err_extremes = (emin, emax)
        self.ref_abs_max = max(abs(rmin), abs(rmax))
        self.max_abs_err = max(emax, -emin)
        if self.max_abs_err <= self.tol_min:  # every reading within: nothing to compare
            self.outside: Indices = np.empty(0, dtype=np.intp)
        elif spec.tol_rel == 0:
            self.outside = np.flatnonzero(np.abs(self.err) > spec.tol_abs)
        else:
            self.outside = np.flatnonzero(np.abs(self.err) > spec.tolerance(ref))
        if pass_ is None:
            self.sigma_all = noise_sigma(self.d, None)
        else:  # noise_sigma from d.d
            steps = max(x.size - 1, 0)
            few = steps < MIN_READINGS - 1
            self.sigma_all = None if few else math.sqrt(pass_.dd / steps / 2.0)
        moving = None
        if self.band is not None:
            moving = (self.band[1] - self.band[0]) > STEADY_BAND * self.tol_min
        self.moving = moving  # readings inside a response transition (None: never)
        # Without a lag band the error is x - ref, so x's point means are ref's plus e's.
        self.points = acc.points(
            self._err if sums is None else None,
            ref,
            x if self.band is not None else None,
            moving,
            acc.POINT_READINGS,
            t,
            sums,
        )

    @property
    def err(self) -> Floats:
        """The error e per reading (formed on first use)."""
        if self._err is None:
            self._err = self.x - self.ref  # as the scan formed it, block by block
        return self._err

    @property
    def d(self) -> Floats:
        """The error's steps d = diff(e) (formed on first use)."""
        if self._d is None:
            self._d = np.diff(self.err)
        return self._d

    @property
    def moments(self) -> tuple[float, float]:
        """(sum of e, e.e)."""
        if self._moments is None:
            self._moments = (float(self.err.sum()), float(self.err @ self.err))
        return self._moments

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
        moved_by = np.diff(pts.ref)
        half = threshold / 2.0
        if not moved_by.size or (moved_by.max() <= half and moved_by.min() >= -half):
            return np.empty(0, dtype=np.intp)  # two reductions: no point moved that far
        moved = np.flatnonzero(np.abs(moved_by) > half)
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


_BLOCK = 1 << 15  # readings per cache-sized block (256 KiB of float64)
_MIN = np.minimum.reduce  # the ufuncs' own reductions: no Python wrapper per block
_MAX = np.maximum.reduce


@dataclass(frozen=True, slots=True)
class Scan:
    """What one cache-blocked pass over (values, reference, times) yields (no lag band).

    ``moments``: the values' mean and, about the means, sum((x - mean)^2),
    sum((t - mean)^2) and sum((t - mean)(x - mean)).
    """

    flat: NDArray[np.bool_]  # |step of the values| <= the flat tolerance
    smallest_step: float | None  # smallest non-zero |step of the values|
    x_extremes: tuple[float, float]
    ref_extremes: tuple[float, float]
    interval_extremes: tuple[float, float] | None  # None: no timestamps, or one reading
    err_extremes: tuple[float, float]
    d_extremes: tuple[float, float] | None
    dd: float  # d . d
    ee: float  # e . e
    e_sum: float
    sums: tuple[Floats, Floats, Floats]  # e, ref and t summed over points of m readings
    moments: tuple[float, float, float, float]


def scan(  # noqa: PLR0915 - one loop doing every reduction on its block
    x: Floats, ref: Floats, t: Floats, *, m: int, flat_tolerance: float, intervals: bool
) -> Scan:
    """Every whole-series figure of the reference mode without a lag band, cache-blocked.

    Each block of readings (whole points of ``m``) is read from memory once; while it sits in
    the CPU cache it yields the extremes of x, ref, the error e = x - ref, its steps
    d = diff(e) and the time intervals (``intervals``: t holds timestamps), which steps of x
    are flat and the smallest non-zero one, the sums of e, ref and t over the points of
    ``m`` readings (as :func:`accuracy.block_sums`), d.d, e.e, and the block's centred
    moments of x and t, merged afterwards as in Chan, Golub and LeVeque (1979), so the
    standard deviation and trend need no second pass. e and d live in block-sized scratch
    buffers (:class:`ErrorSeries` forms the whole arrays only if a check needs them). The
    element operations are those of the whole-array forms (the same e, d, flags and
    extremes); only the order of additions in the sums differs.
    """
    n = x.size
    flat = np.empty(max(n - 1, 0), dtype=bool)
    if not n:
        none = (0.0, 0.0)
        empty = np.empty(0)
        return Scan(flat, None, none, none, None, none, None, 0.0, 0.0, 0.0, (empty,) * 3, none * 2)
    points = -(-n // m)
    e_sums, r_sums, t_sums = np.empty(points), np.empty(points), np.empty(points)
    block = max(m, _BLOCK // m * m)  # whole points per block
    blocks = -(-n // block)
    ext = np.full((10, blocks), np.nan)  # min / max of x, ref, e, d, intervals
    mom = np.zeros((8, blocks))  # readings, x mean, t mean, M2 x, M2 t, C tx, d.d, e.e
    least = np.full(blocks, np.iinfo(np.uint64).max, dtype=np.uint64)
    size = min(n, block)
    # e (with the reading before the block, for d), then x - mean; d, then t - mean; steps.
    ebuf, dbuf, buf = np.empty(size + 1), np.empty(size), np.empty(size)
    one = np.uint64(1)
    ones = np.ones(m)
    for b, i in enumerate(range(0, n, block)):
        j = min(n, i + block)
        w = j - i
        k = max(i - 1, 0)  # steps k .. j-2 join readings k .. j-1
        xb, rb, tb = x[i:j], ref[i:j], t[i:j]
        ext[0, b], ext[1, b] = _MIN(xb), _MAX(xb)
        ext[2, b], ext[3, b] = _MIN(rb), _MAX(rb)
        ek = ebuf[: j - k]
        np.subtract(x[k:j], ref[k:j], ek)
        e = ek[i - k :]
        ext[4, b], ext[5, b] = _MIN(e), _MAX(e)
        mom[7, b] = np.dot(e, e)
        p, rows = i // m, w // m
        for y, sums in ((e, e_sums), (rb, r_sums), (tb, t_sums)):
            if rows:
                np.matmul(y[: rows * m].reshape(rows, m), ones, sums[p : p + rows])
            if rows * m < w:
                sums[p + rows] = np.add.reduce(y[rows * m :])
        if j - 1 > k:
            step = dbuf[: j - 1 - k]
            np.subtract(ek[1:], ek[:-1], step)
            ext[6, b], ext[7, b] = _MIN(step), _MAX(step)
            mom[6, b] = np.dot(step, step)
            s = buf[: j - 1 - k]
            if intervals:
                np.subtract(t[k + 1 : j], t[k : j - 1], s)
                ext[8, b], ext[9, b] = _MIN(s), _MAX(s)
            np.subtract(x[k + 1 : j], x[k : j - 1], s)
            np.abs(s, s)
            np.less_equal(s, flat_tolerance, flat[k : j - 1])
            # Non-negative doubles order like their bit patterns; 0 - 1 wraps out of the way.
            patterns = s.view(np.uint64)
            np.subtract(patterns, one, patterns)
            least[b] = _MIN(patterns)
        q = p + rows + (rows * m < w)
        cx = (float(np.add.reduce(e_sums[p:q])) + float(np.add.reduce(r_sums[p:q]))) / w
        ct = float(np.add.reduce(t_sums[p:q])) / w
        xd, td = ebuf[:w], dbuf[:w]  # e and d are done with
        np.subtract(xb, cx, xd)
        np.subtract(tb, ct, td)
        mom[0:6, b] = w, cx, ct, np.dot(xd, xd), np.dot(td, td), np.dot(td, xd)
    counts, cxs, cts = mom[0], mom[1], mom[2]
    x_mean = float(counts @ cxs) / n
    t_mean = float(counts @ cts) / n
    dx, dt = cxs - x_mean, cts - t_mean
    moments = (
        x_mean,
        float(mom[3].sum() + counts @ (dx * dx)),
        float(mom[4].sum() + counts @ (dt * dt)),
        float(mom[5].sum() + counts @ (dx * dt)),
    )

    def pair(lo: int) -> tuple[float, float]:
        return float(ext[lo].min()), float(ext[lo + 1].max())

    has_steps = n > 1
    return Scan(
        flat=flat,
        smallest_step=_from_pattern(int(least.min()) + 1) if has_steps else None,
        x_extremes=pair(0),
        ref_extremes=pair(2),
        interval_extremes=pair(8) if intervals and has_steps else None,
        err_extremes=pair(4),
        d_extremes=pair(6) if has_steps else None,
        dd=float(mom[6].sum()),
        ee=float(mom[7].sum()),
        e_sum=float(e_sums.sum()),
        sums=(e_sums, r_sums, t_sums),
        moments=moments,
    )


def _from_pattern(bits: int) -> float | None:
    """The non-negative double with bit pattern ``bits``; None for the wrapped 0 - 1."""
    if bits >= 1 << 63:  # only zeros (or the wrapped 0 - 1): no non-zero step
        return None
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def dynamic_flags(
    spec: SensorSpec,
    flat: NDArray[np.bool_],
    *,
    dt: Floats | float | Callable[[Indices], Floats],
    dt_min: float,
    pinned: NDArray[np.bool_],
    r: ErrorSeries,
) -> dict[str, Flags]:
    """Spike, rate of change and flat line of the error.

    ``flat``: which steps of the values are within the flat tolerance (modified in place).
    """
    n = pinned.size
    ss = spec.spike_thresholds[0]
    rs = spec.roc_thresholds[0]
    big, signed, per_s = dynamics.error_steps(
        lambda: r.d,
        r.d_ref,
        max(GAIN_ALLOWANCE, spec.tol_rel),
        threshold=ss,
        dt=dt,
        dt_min=dt_min,
        rate=rs,
        extremes=r.d_extremes,
    )
    return {
        "spike": dynamics.spike(n, big, signed, r.outside, ss),
        "rate_of_change": dynamics.rate_of_change(n, big, per_s, r.outside, rs),
        "flat_line": dynamics.flat_line(
            flat,
            r.ref,
            r.tol_at,
            r.outside,
            suspect_count=spec.flat_line_suspect_count,
            exclude=pinned if pinned.any() else None,
            resolution=spec.resolution,
            noisy=(r.sigma_all or 0.0) > spec.resolution,
        ),
    }


def attenuated_check(spec: SensorSpec, x: Floats, r: ErrorSeries) -> tuple[CheckResult, Flags]:
    """QARTOD attenuated signal against the reference (see :func:`dynamics.attenuated`)."""
    n = x.size
    if r.ref_span <= r.tol_min:  # the reference never moves a tolerance: nothing to attenuate
        return qc.point_result("attenuated_signal", np.ones(n, np.uint8), spec, RIG), np.ones(
            n, np.uint8
        )
    # Windows long against the response time: a span over a short window depends on the
    # phase of a lagging sensor, not only on its amplitude.
    tau_readings = (spec.response_tau_s or 0.0) * spec.sample_rate_hz
    window = max(spec.flat_line_suspect_count, dynamics.MIN_WINDOW, math.ceil(10 * tau_readings))
    pts = r.points
    tols = (r.tol_min, r.tol_max)
    bound = None
    if r.band is None:
        # x = ref + e: over any window span(ref) <= span(x) + span(e), so no window's deficit
        # (nor a window of point means') exceeds the error's whole range (plus rounding).
        emin, emax = r.err_extremes
        bound = (emax - emin) + 1e-12 * (2.0 * r.ref_abs_max + r.max_abs_err)
    if r.band is None and pts.m > 1 and window // pts.m >= 2:  # noqa: PLR2004
        # Long series: the same spans over point means (noise averaged out, signal kept).
        if bound is not None and bound <= r.tol_min and pts.err.size >= window // pts.m:
            # What dynamics.attenuated finds without looking: every window is judged and
            # none can fall a tolerance short.
            flags = np.ones(n, dtype=np.uint8)
            return qc.point_result("attenuated_signal", flags, spec, RIG), flags
        per_point, _ = dynamics.attenuated(
            pts.values(), pts.ref, pts.ref, tols, window // pts.m, 2, max_deficit=bound
        )
        if (per_point == PASS).all():
            flags = np.ones(n, dtype=np.uint8)
        else:
            flags = np.repeat(per_point, pts.counts.astype(np.intp))
    else:
        # The span a sensor within its datasheet response must show: the smaller of the
        # reference's and the lagged reference's (the fastest and the slowest sensor allowed).
        # Within a response transition no span is owed (a sensor between the two may show
        # less than either): those windows are not judged.
        slow = r.lagged if r.lagged is not None else r.ref
        flags, _ = dynamics.attenuated(
            x, r.ref, slow, tols, window, skip=r.moving, max_deficit=bound
        )
    check = qc.point_result("attenuated_signal", flags, spec, RIG)
    if check.fail_indices.size:  # a FAIL here is a tolerance violation
        check = replace(check, source=f"{DATASHEET} tolerance")
    return check, flags


def response_check(
    spec: SensorSpec, x: Floats, r: ErrorSeries, t: Floats
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


def drift_fit(
    spec: SensorSpec,
    r: ErrorSeries,
    t: Floats,
    mask: NDArray[np.bool_] | None,
) -> tuple[float, float, int] | str:
    """(slope per hour, its standard error, dof) of the error over time, or why not.

    The error e = value - reference (not clipped to the lag band) is fitted by least squares
    on time and, where they vary, on the reference level (a gain error is not drift) and on
    the lag of a first-order sensor (the reference's rate of change, and the reference lagged
    by the datasheet tau63 minus itself: a sweep is not drift). Readings within 5 tau63
    after a reference step, where a first-order lag is no straight line in the rate, are
    left out. If time cannot be told from the other terms (a ramp: time and level move
    together), drift is not judged. Long series are fitted on point means (blocks of
    readings), short ones reading by reading.
    """
    q_floor = spec.resolution / math.sqrt(12.0)
    tau = spec.response_tau_s
    if tau is not None:
        settled = _after_steps(r, t, 5.0 * tau)
        mask = settled if mask is None else mask & settled
        if np.count_nonzero(mask) < DRIFT_MIN_READINGS:
            return "too few readings outside response transitions"
    if r.x.size >= DRIFT_POINTS_FROM:
        pts = r.points
        keep = None if mask is None else ~np.logical_or.reduceat(~mask, pts.starts)
        # Without a lag band the points' error is the mean of x - ref itself.
        tt, yy, rr = pts.t, pts.err if pts.x is None else pts.x - pts.ref, pts.ref
        if keep is not None:
            if np.count_nonzero(keep) < 2 * MIN_READINGS:
                return "too few points outside response transitions"
            tt, yy, rr = tt[keep], yy[keep], rr[keep]
        q_floor /= math.sqrt(pts.m)
    else:
        e = r.x - r.ref
        tt, yy, rr = (t, e, r.ref) if mask is None else (t[mask], e[mask], r.ref[mask])
    columns = [tt]
    if float(rr.max() - rr.min()) > r.tol_min:
        columns.append(rr)
        if tau is not None and tt.size > 2 and float(np.diff(tt).min()) > 0:  # noqa: PLR2004
            # The lag of a first-order sensor: tau x rate for slow changes, and exactly
            # lag(ref) - ref at the datasheet's tau; the two together span a sensor somewhat
            # faster or slower than the datasheet.
            rate = np.gradient(rr, tt)
            if float(np.ptp(rate)) * tau > spec.resolution:
                columns += [rate, response.first_order(rr, tt, tau) - rr]
    return _slope_of_time(columns, yy, q_floor)


def _slope_of_time(
    columns: list[Floats], y: Floats, q_floor: float
) -> tuple[float, float, int] | str:
    """Least-squares coefficient of the first column (time) with intercept, per hour."""
    k, n = len(columns), y.size
    if n < k + 2:
        return "too few readings"
    xc = np.empty((k, n))  # the centred columns, formed in place
    for row, col in zip(xc, columns, strict=True):
        np.subtract(col, col.mean(), out=row)
    yc = y - y.mean()
    gram = np.empty((k, k))  # k dot products each: BLAS dgemm is slow for so thin a product
    for i in range(k):
        for j in range(i + 1):
            gram[i, j] = gram[j, i] = np.dot(xc[i], xc[j])
    scale = np.sqrt(np.diagonal(gram))
    if not np.all(scale > 0):
        return "too few distinct times"
    # The regressors' correlation matrix (well conditioned unless collinear), without
    # forming the scaled columns z = xc / scale: z z' = (xc xc') / (scale scale').
    corr = gram / np.outer(scale, scale)
    with np.errstate(all="ignore"):
        try:
            inv = np.linalg.inv(corr)
        except np.linalg.LinAlgError:
            inv = np.full((k, k), np.inf)
    # Variance inflation of time: 1 / (1 - R^2 of time on the other terms).
    vif = float(inv[0, 0])
    if not math.isfinite(vif) or not 1.0 - 1e-9 <= vif <= 1.0 / COLLINEAR:
        return "the reference moves in step with time: drift cannot be told from a gain error"
    beta = inv @ ((xc @ yc) / scale)
    resid = yc - (beta / scale) @ xc
    dof = n - k - 1
    sigma2 = max(float(resid @ resid) / dof, q_floor**2)
    slope = float(beta[0]) / float(scale[0])
    stderr = math.sqrt(sigma2 * vif) / float(scale[0])
    return slope * 3600.0, stderr * 3600.0, dof


def _after_steps(r: ErrorSeries, t: Floats, window_s: float) -> NDArray[np.bool_]:
    """False for readings within ``window_s`` after a reference step, else True."""
    steps = r.steps(STEP_TOLERANCES * r.tol_min)
    out = np.ones(t.size, dtype=bool)
    if steps.size:
        ends = np.searchsorted(t, t[steps] + window_s, side="left")
        delta = np.zeros(t.size + 1, dtype=np.int32)
        np.add.at(delta, steps, 1)
        np.add.at(delta, ends, -1)
        out = np.cumsum(delta[:-1]) == 0
    return out


@dataclass(slots=True)
class ReferenceFigures:
    checks: dict[str, CheckResult] = field(default_factory=dict)
    accuracy: Accuracy | None = None
    budget: Budget | None = None
    decision: Decision | None = None
    calibration: Calibration | None = None
    response: ResponseTime | None = None
    drift_h: float | None = None
    drift_se: float | None = None


def judge(
    spec: SensorSpec,
    x: Floats,
    r: ErrorSeries,
    t: Floats,
    *,
    mask: NDArray[np.bool_] | None,
    sigma: float | None,
) -> ReferenceFigures:
    """Accuracy, drift, response time and calibration figures from the error."""
    out = ReferenceFigures()
    n = x.size
    out.checks["accuracy"], out.accuracy, out.budget, out.decision = acc.assess(
        spec, n, r.points, (r.max_abs_err, r.outside), sigma, r.moments
    )
    kept = n if mask is None else int(np.count_nonzero(mask))
    duration = float(t[-1] - t[0]) if n else 0.0
    if kept < DRIFT_MIN_READINGS or duration < DRIFT_MIN_DURATION_S:
        why = f"needs {DRIFT_MIN_READINGS} readings over {DRIFT_MIN_DURATION_S / 60:g} minutes"
        out.checks["drift"] = qc.not_evaluated("drift", n, why)
    else:
        fit = drift_fit(spec, r, t, mask)
        if isinstance(fit, str):
            out.checks["drift"] = qc.not_evaluated("drift", n, fit)
        else:
            out.drift_h, out.drift_se, dof = fit
            out.checks["drift"] = qc.drift(spec, out.drift_h, out.drift_se, dof)
    out.checks["response_time"], out.response = response_check(spec, x, r, t)
    out.calibration = calibrate(
        r.points,
        lambda: r.err,
        tolerance=r.tol_min,
        u_ref=spec.reference_expanded_uncertainty[0] / 2.0,
        period=float(t[-1] - t[0]) / (n - 1) if n > 1 else spec.nominal_period_s,
        tau1_adev=r.sigma_all,
    )
    return out

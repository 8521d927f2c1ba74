"""The accuracy test: point errors with their GUM uncertainty, judged by an ILAC-G8 rule.

A *point* is ``POINT_READINGS`` consecutive readings (fewer at the end): its error is their
mean error after the datasheet response time is allowed for, its uncertainty the GUM budget
of :mod:`sensor_backend.sensor.uncertainty` (type A noise / sqrt(m), reference, resolution),
and :mod:`sensor_backend.sensor.decision` judges it against the datasheet tolerance at its
reference level.

Single readings are judged too, as the datasheet states its accuracy for a reading: fewer than
95 % of readings within the tolerance (the tolerance read at ~95 % coverage, k = 2, GUM 6.2)
fails; fewer than 99 % is suspect (a rig choice: a few readings out, the rest in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor.decision import decide
from sensor_backend.sensor.results import (
    DATASHEET,
    FAIL,
    PASS,
    SUSPECT,
    Accuracy,
    CheckResult,
)
from sensor_backend.sensor.uncertainty import COVERAGE_K, error_budget

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sensor_backend.sensor.decision import Decision
    from sensor_backend.sensor.qc import Floats, Indices
    from sensor_backend.sensor.specs import SensorSpec
    from sensor_backend.sensor.uncertainty import Budget

POINT_READINGS = 10  # rig choice: readings averaged into one judged point
READINGS_FAIL_FRACTION = 0.95  # fewer readings within tolerance than this: fail (k = 2)
READINGS_SUSPECT_FRACTION = 0.99  # fewer than this: suspect (rig choice)


@dataclass(frozen=True, slots=True)
class Points:
    """Means over consecutive blocks of ``m`` readings (the last block may be shorter)."""

    m: int
    starts: Indices
    counts: Floats
    err: Floats
    ref: Floats
    x: Floats | None  # None: x = ref + err (no lag band), see values()
    steady: NDArray[np.bool_]  # the reference did not move beyond the lag allowance
    t: Floats  # mean time of each point

    def values(self) -> Floats:
        """The points' mean readings (ref + err when not kept: no lag band)."""
        return self.ref + self.err if self.x is None else self.x


def points(  # noqa: PLR0917 - the series, then how to cut it
    err: Floats | None,
    ref: Floats,
    x: Floats | None,
    moving: NDArray[np.bool_] | None,
    m: int,
    t: Floats,
    sums: tuple[Floats, Floats, Floats] | None = None,
) -> Points:
    """Point means; ``x`` None means x = ref + err (see :meth:`Points.values`).

    ``sums``: the block sums of ``err``, ``ref`` and ``t`` (as :func:`block_sums`), when the
    caller formed them while it had the readings in cache (``err`` is then not needed).
    """
    n = ref.size
    m = max(1, min(m, n))
    starts = np.arange(0, n, m)
    counts = np.full(starts.size, float(m))  # every point holds m readings but the last
    if starts.size:
        counts[-1] = n - starts[-1]
    steady = (
        np.ones(starts.size, dtype=bool)
        if moving is None
        else ~np.logical_or.reduceat(moving, starts)
    )
    if sums is None:
        if err is None:
            msg = "points() needs the errors or their sums"
            raise ValueError(msg)
        e_p = _block_means(err, m, counts)
        r_p = _block_means(ref, m, counts)
        t_p = _block_means(t, m, counts)
    else:
        e_p, r_p, t_p = (np.divide(y, counts) for y in sums)
    x_p = None if x is None else _block_means(x, m, counts)
    return Points(m, starts, counts, e_p, r_p, x_p, steady, t_p)


def _block_means(y: Floats, m: int, counts: Floats) -> Floats:
    """Means of consecutive blocks of ``m`` readings (the last may be shorter)."""
    out = block_sums(y, m, counts.size)
    out /= counts
    return out


def block_sums(y: Floats, m: int, blocks: int) -> Floats:
    """Sums of consecutive blocks of ``m`` entries of ``y`` (the last may be shorter).

    The whole blocks are the rows of a (n / m, m) view; their sums are one matrix-vector
    product with ones (BLAS dgemv streams the readings once, about twice as fast as
    ``np.add.reduceat``; only the order of the m additions differs).
    """
    whole = y.size // m
    out = np.empty(blocks)
    if m == 1:
        out[:] = y
    elif whole:
        np.matmul(y[: whole * m].reshape(whole, m), np.ones(m), out=out[:whole])
    if whole < blocks:
        out[whole] = y[whole * m :].sum()
    return out


def assess(  # noqa: PLR0917 - the series' figures, then the noise
    spec: SensorSpec,
    n: int,
    pts: Points,
    beyond: tuple[float, Indices],
    sigma: float | None,
    moments: tuple[float, float],
) -> tuple[CheckResult, Accuracy, Budget, Decision]:
    """Judge ``n`` readings' errors from their point means ``pts`` and whole-series figures.

    ``beyond``: the largest |error| and the readings beyond the tolerance; ``moments``: the
    sum of the errors and of their squares.
    """
    m, counts, e_point = pts.m, pts.counts, pts.err
    tol_point = np.abs(pts.ref)
    tol_point *= spec.tol_rel
    tol_point += spec.tol_abs  # tol_abs + tol_rel |ref|, without temporaries
    budget = error_budget(spec, sigma, m)
    fixed = sum(c.standard_uncertainty**2 for c in budget.components if c.kind == "type B")
    # Every point but perhaps the last holds m readings: one value, the same arithmetic.
    noise_var = 0.0 if sigma is None else sigma**2
    u_m = math.sqrt(fixed + noise_var / m)
    u_c, expanded = np.full(counts.size, u_m), np.full(counts.size, COVERAGE_K * u_m)
    if counts.size and counts[-1] != m:
        u_c[-1] = math.sqrt(fixed + noise_var / float(counts[-1]))
        expanded[-1] = COVERAGE_K * u_c[-1]
    decision = decide(e_point, tol_point, expanded, u_c, spec.decision_rule)

    max_abs, fails = beyond
    frac = 1.0 - fails.size / n
    reading_flag = (
        FAIL
        if frac < READINGS_FAIL_FRACTION
        else SUSPECT
        if frac < READINGS_SUSPECT_FRACTION
        else PASS
    )
    flag = max(decision.flag, reading_flag)
    e_sum, ee = moments
    bias, rmse = e_sum / n, math.sqrt(ee / n)  # e.e = |e|.|e|
    message = (
        f"{decision.describe(spec.unit)}; points of {m} readings: {decision.rejected_points} "
        f"beyond, {decision.conditional_points} conditional of {decision.points}; "
        f"{frac:.1%} of readings within ±({spec.tol_abs:g} + {spec.tol_rel:g}·|ref|) "
        f"{spec.unit} (fail < {READINGS_FAIL_FRACTION:.0%}, suspect < "
        f"{READINGS_SUSPECT_FRACTION:.0%}); bias {bias:+.4g}, max |error| {max_abs:.4g}, "
        f"RMSE {rmse:.4g}, U = {budget.expanded:.3g} {spec.unit} (k = {budget.k:g})"
    )
    source = f"{DATASHEET} tolerance, ILAC-G8 {spec.decision_rule} acceptance"
    if flag == SUSPECT and decision.flag < SUSPECT:
        source = "rig choice (99 % of readings within the datasheet tolerance)"
    check = CheckResult(
        "accuracy",
        flag,
        message,
        {k: v for k, v in ((PASS, n - fails.size), (FAIL, fails.size)) if v},
        np.empty(0, dtype=np.intp),
        fails,
        frac,
        READINGS_SUSPECT_FRACTION,
        source,
    )
    return check, Accuracy(bias, max_abs, rmse, frac, int(fails.size)), budget, decision

"""Decision rules for the accuracy test, after ILAC-G8:09/2019.

* ``simple`` acceptance (ILAC-G8 4.2.1, shared risk): pass when every measured |error| is
  within the tolerance. At the limit the probability of false accept reaches 50 %.
* ``guarded`` acceptance (ILAC-G8 4.2.2) with guard band w = U: pass only when
  |error| + U <= tolerance (false accept below 2.5 % for k = 2). A point between the guarded
  and the simple limit is in the "conditional" zone: ``suspect``. Beyond the tolerance: fail.

The probability of false accept at a point is the chance that the true error lies outside
the tolerance given the measured one and u_c (normal distribution, GUM G.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.sensor.results import FAIL, PASS, SUSPECT

if TYPE_CHECKING:
    from sensor_backend.sensor.qc import Floats
    from sensor_backend.sensor.specs import DecisionRule


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def false_accept_probability(abs_error: float, tolerance: float, u_c: float) -> float:
    """P(true |error| > tolerance | measured |error|, standard uncertainty u_c)."""
    if u_c <= 0:
        return 0.0 if abs_error <= tolerance else 1.0
    return _phi((abs_error - tolerance) / u_c) + _phi((-abs_error - tolerance) / u_c)


@dataclass(frozen=True, slots=True)
class Decision:
    rule: DecisionRule
    guard_band: float  # w: 0 for simple acceptance
    flag: int
    points: int
    conditional_points: int  # between the guarded and the simple limit
    rejected_points: int  # beyond the tolerance
    worst_index: int  # point with the least margin (|error| + w - tolerance largest)
    worst_error: float
    worst_tolerance: float
    false_accept_probability: float  # at the worst point

    def describe(self, unit: str) -> str:
        if self.rule == "simple":
            words = "simple acceptance (ILAC-G8 4.2.1): pass when |error| <= tolerance"
        else:
            words = (
                f"guarded acceptance (ILAC-G8 4.2.2), w = U = {self.guard_band:.3g} {unit}: "
                "pass when |error| + U <= tolerance; between that and the tolerance suspect"
            )
        pfa = self.false_accept_probability
        return (
            f"{words}; worst point error {self.worst_error:+.4g} {unit} against "
            f"±{self.worst_tolerance:.4g}, P(false accept) there {pfa:.1%}"
        )


def decide(
    errors: Floats, tolerance: Floats, expanded: Floats, u_c: Floats, rule: DecisionRule
) -> Decision:
    """Judge point errors against their tolerance with the expanded uncertainty ``expanded``."""
    abs_err = np.abs(errors)
    rejected = int(np.count_nonzero(abs_err > tolerance))
    # w >= 0, so |e| > tol implies |e| + w > tol: the conditional points are the ones with
    # |e| + w > tol (a positive margin: a - b > 0 exactly when a > b) less the rejected.
    conditional = 0
    if rule == "guarded":
        margin = abs_err + expanded
        margin -= tolerance
        conditional = int(np.count_nonzero(margin > 0)) - rejected
    else:
        margin = abs_err - tolerance
    worst = int(np.argmax(margin))
    flag = FAIL if rejected else SUSPECT if conditional else PASS
    return Decision(
        rule=rule,
        guard_band=float(expanded.max()) if rule == "guarded" and expanded.size else 0.0,
        flag=flag,
        points=int(abs_err.size),
        conditional_points=conditional,
        rejected_points=rejected,
        worst_index=worst,
        worst_error=float(errors[worst]),
        worst_tolerance=float(tolerance[worst]),
        false_accept_probability=false_accept_probability(
            float(abs_err[worst]), float(tolerance[worst]), float(u_c[worst])
        ),
    )

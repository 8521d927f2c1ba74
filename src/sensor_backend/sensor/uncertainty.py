"""Measurement uncertainty of the sensor's error, after the GUM (JCGM 100:2008).

The error at a point is the mean of ``m`` readings minus the reference. Its standard
uncertainty combines, in quadrature (GUM 5.1.2, uncorrelated inputs, sensitivity 1):

* the reference: its stated expanded uncertainty U_ref (k=2) gives U_ref / 2 (GUM 4.3.3);
  not stated, a test uncertainty ratio of 4:1 is assumed (``specs.DEFAULT_TUR``) and said so;
* the sensor's noise, type A (GUM 4.2.3): the standard deviation of the mean, sigma / sqrt(m),
  sigma estimated from the data;
* the sensor's resolution q, type B rectangular (GUM F.2.2.1): q / sqrt(12).

The expanded uncertainty is U = k u_c with k = 2 (about 95 % coverage, GUM 6.2). Plain
arithmetic: three terms do not need a GUM package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sensor_backend.sensor.specs import SensorSpec

COVERAGE_K = 2.0  # GUM 6.2.1, ~95 % for a normal distribution


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    kind: str  # "type A" | "type B"
    distribution: str  # "normal" | "rectangular"
    standard_uncertainty: float
    basis: str  # where the figure comes from


@dataclass(frozen=True, slots=True)
class Budget:
    components: tuple[Component, ...]
    combined: float  # u_c
    k: float
    expanded: float  # U = k u_c
    readings_per_point: int


def error_budget(spec: SensorSpec, sigma: float | None, m: int) -> Budget:
    """Budget of the error of a point averaged over ``m`` readings with noise ``sigma``."""
    u_ref_expanded, ref_basis = spec.reference_expanded_uncertainty
    parts = [
        Component(
            "reference",
            "type B",
            "normal",
            u_ref_expanded / COVERAGE_K,
            f"U_ref {u_ref_expanded:g} {spec.unit} at k=2 ({ref_basis})",
        ),
        Component(
            "resolution",
            "type B",
            "rectangular",
            spec.resolution / math.sqrt(12.0),
            f"q / sqrt(12), q = {spec.resolution:g} {spec.unit} (datasheet/spec resolution)",
        ),
    ]
    if sigma is not None:
        parts.insert(
            1,
            Component(
                "noise",
                "type A",
                "normal",
                sigma / math.sqrt(max(m, 1)),
                f"sigma {sigma:.3g} {spec.unit} from the data / sqrt({m}) readings per point",
            ),
        )
    combined = math.sqrt(sum(c.standard_uncertainty**2 for c in parts))
    return Budget(tuple(parts), combined, COVERAGE_K, COVERAGE_K * combined, m)

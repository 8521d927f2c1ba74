"""Sensor type specifications and the registry of built-in types (DESIGN.md §8).

A :class:`SensorSpec` is what a test judges readings against. It is a frozen pydantic model so
user-defined types can be validated straight from JSON. Units: temperature in °C, relative
humidity in %RH, pressure in **hPa** (never Pa), CO2 in ppm; rates are per second except the
drift limit, which is per hour.

Accuracy tolerance follows one formula for every type: ``tol_abs + tol_rel * |reference|``.
IEC 60751's ``a + b*|t|`` for Pt100 is ``tol_abs=a, tol_rel=b`` (t in °C is the reference);
"±(40 ppm + 5 % of reading)" for SCD41 is ``tol_abs=40, tol_rel=0.05``.

Where a number is not a datasheet figure, the comment says so:

* ``noise_limit`` is an rms ceiling. Sensirion states repeatability as 3 sigma, which is used as
  is; where a datasheet gives typical rms noise, the ceiling is 3x that figure.
* ``drift_limit`` is a bench rule, the same for every built-in: the error may not move by the
  whole absolute tolerance within one hour. Datasheet long-term drift (per year) is far below
  anything a bench test of minutes can resolve.
* ``sample_rate_hz`` of the analogue Pt100 depends on the rig, not the element.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Self, TypeAlias

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

FigureSource: TypeAlias = Literal["datasheet", "standard", "rig"]
DecisionRule: TypeAlias = Literal["guarded", "simple"]

# Test uncertainty ratio 4:1 (ANSI/NCSL Z540.3 and MIL-STD-45662A practice): a reference whose
# expanded uncertainty is not stated is taken as a quarter of the absolute tolerance.
DEFAULT_TUR = 4.0

# Derived QC thresholds when a spec does not set them (multiples of the noise limit).
SPIKE_SUSPECT_NOISE_FACTOR = 6.0
SPIKE_FAIL_OVER_SUSPECT = 2.0


class UnknownSensorTypeError(KeyError):
    """No built-in spec or alias has this name."""


class SensorSpec(BaseModel):
    """What one sensor type promises; every number in the unit of ``unit``.

    Numbers are strict: a JSON boolean or a numeric string is refused (422), not read as 1.0.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=100)
    quantity: str = Field(min_length=1, max_length=50)
    unit: str = Field(min_length=1, max_length=20)
    # Sensor range: a reading outside is a QARTOD gross-range FAIL.
    range_min: StrictFloat
    range_max: StrictFloat
    # Operating / climatological span (defaults to the range): outside it is SUSPECT.
    suspect_min: StrictFloat | None = None
    suspect_max: StrictFloat | None = None
    tol_abs: StrictFloat = Field(ge=0)
    tol_rel: StrictFloat = Field(default=0.0, ge=0)
    resolution: StrictFloat = Field(gt=0)
    noise_limit: StrictFloat = Field(gt=0, description="rms ceiling of the noise")
    drift_limit: StrictFloat = Field(
        gt=0, description="per hour, of the error against the reference"
    )
    sample_rate_hz: StrictFloat = Field(gt=0)
    # QARTOD spike test (differential method), in units; None = derived from noise_limit.
    spike_suspect: StrictFloat | None = Field(default=None, gt=0)
    spike_fail: StrictFloat | None = Field(default=None, gt=0)
    # QARTOD rate of change, units per second; None = spike thresholds per nominal period.
    roc_suspect: StrictFloat | None = Field(default=None, gt=0)
    roc_fail: StrictFloat | None = Field(default=None, gt=0)
    # Flat line (stuck-at): consecutive readings within the tolerance (None = resolution / 2).
    flat_line_tolerance: StrictFloat | None = Field(default=None, ge=0)
    flat_line_suspect_count: StrictInt = Field(default=30, ge=3)
    flat_line_fail_count: StrictInt = Field(default=60, ge=3)
    # Saturation: this many consecutive readings pinned at a range limit is a FAIL.
    saturation_count: StrictInt = Field(default=3, ge=1)
    # Where noise_limit comes from: a datasheet figure, or a bench-rig choice (can then only
    # make a test suspect, unless the noise makes the accuracy tolerance impossible to meet).
    noise_limit_source: FigureSource = "rig"
    # Datasheet response time tau63 in seconds (None: the datasheet gives none). A lag behind a
    # reference change within this time constant is expected, not an accuracy error.
    response_tau_s: StrictFloat | None = Field(default=None, gt=0)
    # Expanded uncertainty (k=2) of the reference in the spec's unit; None = tol_abs / 4.
    reference_uncertainty: StrictFloat | None = Field(default=None, ge=0)
    # ILAC-G8:09/2019 decision rule for the accuracy test: guarded (w = U) or simple acceptance.
    decision_rule: DecisionRule = "guarded"
    # Missing readings (estimated from timestamp gaps) above this fraction fail the gap check.
    missing_fail_fraction: StrictFloat = Field(default=0.05, ge=0, le=1)
    sources: tuple[str, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.range_min < self.range_max:
            raise ValueError("range_min must be below range_max")
        lo, hi = self.suspect_range
        if not self.range_min <= lo < hi <= self.range_max:
            raise ValueError("suspect range must lie inside the sensor range, min below max")
        if self.tol_abs == 0 and self.tol_rel == 0:
            raise ValueError("a tolerance is required: tol_abs or tol_rel must be positive")
        if self.resolution >= self.range_max - self.range_min:
            raise ValueError("resolution must be smaller than the range")
        pairs = [
            ("spike", self.spike_suspect, self.spike_fail),
            ("roc", self.roc_suspect, self.roc_fail),
        ]
        for label, suspect, fail in pairs:
            if suspect is not None and fail is not None and fail < suspect:
                raise ValueError(f"{label}_fail must not be below {label}_suspect")
        if self.flat_line_fail_count < self.flat_line_suspect_count:
            raise ValueError("flat_line_fail_count must not be below flat_line_suspect_count")
        return self

    @property
    def suspect_range(self) -> tuple[float, float]:
        lo = self.range_min if self.suspect_min is None else self.suspect_min
        hi = self.range_max if self.suspect_max is None else self.suspect_max
        return lo, hi

    @property
    def nominal_period_s(self) -> float:
        return 1.0 / self.sample_rate_hz

    @property
    def spike_thresholds(self) -> tuple[float, float]:
        """(suspect, fail) for the spike test, in units."""
        suspect = self.spike_suspect
        if suspect is None:
            suspect = max(SPIKE_SUSPECT_NOISE_FACTOR * self.noise_limit, 4.0 * self.resolution)
            if self.spike_fail is not None:
                suspect = min(suspect, self.spike_fail)
        fail = self.spike_fail if self.spike_fail is not None else SPIKE_FAIL_OVER_SUSPECT * suspect
        return suspect, fail

    @property
    def roc_thresholds(self) -> tuple[float, float]:
        """(suspect, fail) for the rate-of-change test, in units per second."""
        spike_suspect, spike_fail = self.spike_thresholds
        suspect = self.roc_suspect
        if suspect is None:
            suspect = spike_suspect * self.sample_rate_hz
            if self.roc_fail is not None:
                suspect = min(suspect, self.roc_fail)
        fail = self.roc_fail if self.roc_fail is not None else spike_fail * self.sample_rate_hz
        return suspect, max(fail, suspect)

    @property
    def flat_tolerance(self) -> float:
        if self.flat_line_tolerance is None:
            return self.resolution / 2.0
        return self.flat_line_tolerance

    @property
    def reference_expanded_uncertainty(self) -> tuple[float, str]:
        """(U_ref at k=2, where it comes from)."""
        if self.reference_uncertainty is not None:
            return self.reference_uncertainty, "stated"
        return self.tol_abs / DEFAULT_TUR, f"default: tol_abs / {DEFAULT_TUR:g} (TUR 4:1)"

    def tolerance(self, reference: NDArray[np.float64]) -> NDArray[np.float64]:
        """Allowed |error| at each reference value: ``tol_abs + tol_rel * |reference|``."""
        return self.tol_abs + self.tol_rel * np.abs(reference)


_IEC = "IEC 60751:2008 (industrial platinum resistance thermometers), tolerance classes"
_DS18B20 = "Maxim Integrated DS18B20 datasheet REV 042208: Features, electrical characteristics"
_SHT4X = "Sensirion SHT4x datasheet Version 6, February 2023, section 2.1 (relative humidity)"
_SHT3X = "Sensirion SHT3x-DIS datasheet Version 5, May 2018 (and SHT3x-ARP v0.9), Table 1"
_BME280 = "Bosch BME280 datasheet BST-BME280-DS001-18 Rev 1.9, Nov 2020, key parameters, 1.x"
_SCD4X = "Sensirion SCD4x datasheet Version 1.3, September 2022, 1.1 CO2 sensing performance"


def _pt100(name: str, tol_abs: float, tol_rel: float, span: tuple[float, float]) -> SensorSpec:
    return SensorSpec(
        name=name,
        quantity="temperature",
        unit="°C",
        range_min=-200.0,  # IEC 60751 scope: -200..+850 °C
        range_max=850.0,
        suspect_min=span[0],  # validity range of the class, wire-wound elements
        suspect_max=span[1],
        tol_abs=tol_abs,
        tol_rel=tol_rel,
        resolution=0.001,  # rig figure (24-bit RTD front end), not an element property
        noise_limit=0.01,  # rig figure: 10 mK rms for a 4-wire bench readout, not IEC
        drift_limit=tol_abs,  # bench rule (module docstring)
        sample_rate_hz=1.0,  # rig figure
        # tau63 depends on the probe's sheath and the medium; IEC 60751 gives a test method,
        # not a value, so no response time is assumed (set response_tau_s per probe).
        sources=(_IEC, "resolution, noise and sample rate are bench-rig choices, not IEC"),
    )


_BUILTINS: tuple[SensorSpec, ...] = (
    # IEC 60751 class A: ±(0.15 + 0.002|t|) °C, wire-wound validity -100..+450 °C.
    _pt100("pt100_class_a", 0.15, 0.002, (-100.0, 450.0)),
    # IEC 60751 class B: ±(0.30 + 0.005|t|) °C, wire-wound validity -196..+600 °C.
    _pt100("pt100_class_b", 0.30, 0.005, (-196.0, 600.0)),
    SensorSpec(
        name="ds18b20",
        quantity="temperature",
        unit="°C",
        range_min=-55.0,  # DS18B20: measures -55..+125 °C
        range_max=125.0,
        suspect_min=-10.0,  # ±0.5 °C accuracy holds over -10..+85 °C only
        suspect_max=85.0,
        tol_abs=0.5,  # ±0.5 °C (-10..+85 °C)
        resolution=0.0625,  # 12-bit resolution, 1/16 °C
        noise_limit=0.1,  # not in the datasheet: engineering ceiling (1.6 LSB rms)
        # The datasheet gives no thermal response time (package- and mounting-dependent).
        drift_limit=0.5,  # bench rule
        sample_rate_hz=1.0,  # 12-bit conversion takes up to 750 ms (datasheet), so <= 1.33 Hz
        # Quantised to 1/16 °C, a healthy DS18B20 in a stable bath repeats readings for
        # minutes; a stuck-at is only called after 2 / 5 minutes at 1 Hz (engineering choice).
        flat_line_suspect_count=120,
        flat_line_fail_count=300,
        sources=(_DS18B20,),
    ),
    SensorSpec(
        name="sht45_humidity",
        quantity="relative_humidity",
        unit="%RH",
        range_min=0.0,  # SHT4x operating / specified range 0..100 %RH
        range_max=100.0,
        tol_abs=1.0,  # SHT45 typical accuracy ±1.0 %RH
        resolution=0.01,  # SHT4x RH resolution 0.01 %RH (16-bit: 125/65535 = 0.0019)
        noise_limit=0.08,  # repeatability, high-repeatability mode, 3 sigma (verify: 0.08/0.1)
        noise_limit_source="datasheet",
        response_tau_s=6.0,  # SHT4x RH response time t63 6 s (datasheet key specs; verify)
        drift_limit=1.0,  # bench rule
        sample_rate_hz=1.0,  # host choice; a high-repeatability measurement takes < 10 ms
        sources=(_SHT4X,),
    ),
    SensorSpec(
        name="sht31_humidity",
        quantity="relative_humidity",
        unit="%RH",
        range_min=0.0,  # SHT3x specified range 0..100 %RH
        range_max=100.0,
        tol_abs=2.0,  # SHT31 typical accuracy ±2 %RH
        resolution=0.01,  # SHT3x-DIS RH resolution 0.01 %RH
        noise_limit=0.2,  # repeatability 0.2 %RH, 3 sigma (SHT3x-ARP v0.9; DIS per mode: verify)
        noise_limit_source="datasheet",
        response_tau_s=8.0,  # SHT3x RH response time tau63 8 s
        drift_limit=2.0,  # bench rule
        sample_rate_hz=1.0,  # host choice (periodic mode 0.5..10 mps)
        sources=(_SHT3X,),
    ),
    SensorSpec(
        name="bme280_pressure",
        quantity="pressure",
        unit="hPa",
        range_min=300.0,  # BME280 operating range 300..1100 hPa
        range_max=1100.0,
        tol_abs=1.0,  # absolute accuracy ±1.0 hPa, 300..1100 hPa at 0..65 °C (verify)
        resolution=0.0018,  # 0.18 Pa at highest oversampling (verify)
        noise_limit=0.006,  # 3x the 0.2 Pa rms noise (key parameters, highest oversampling)
        noise_limit_source="datasheet",
        # The 1 s response time of the datasheet is humidity's; pressure gives none.
        drift_limit=1.0,  # bench rule
        sample_rate_hz=1.0,  # host choice (forced mode at 1 Hz is the datasheet's example)
        sources=(_BME280,),
    ),
    SensorSpec(
        name="scd41_co2",
        quantity="co2",
        unit="ppm",
        range_min=0.0,  # SCD4x output range 0..40 000 ppm
        range_max=40000.0,
        suspect_min=400.0,  # SCD41 specified range 400..5000 ppm
        suspect_max=5000.0,
        tol_abs=40.0,  # SCD41 accuracy ±(40 ppm + 5 % of reading)
        tol_rel=0.05,
        resolution=1.0,  # integer ppm output
        noise_limit=10.0,  # repeatability typ. ±10 ppm (verify: sigma convention not stated)
        noise_limit_source="datasheet",
        response_tau_s=60.0,  # SCD4x response time tau63 60 s
        drift_limit=40.0,  # bench rule
        sample_rate_hz=0.2,  # periodic measurement mode: signal update every 5 s
        sources=(_SCD4X,),
    ),
)

BUILTIN_SPECS: Mapping[str, SensorSpec] = MappingProxyType({s.name: s for s in _BUILTINS})
# Friendly aliases. "temperature" is the IEC 60751 class A Pt100: a standard, not one vendor's
# part, and the usual reference-grade industrial thermometer.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "temperature": "pt100_class_a",
        "humidity": "sht45_humidity",
        "pressure": "bme280_pressure",
        "co2": "scd41_co2",
    }
)


def get_spec(name: str) -> SensorSpec:
    """The built-in spec called ``name`` (or an alias of one)."""
    key = ALIASES.get(name, name)
    try:
        return BUILTIN_SPECS[key]
    except KeyError:
        known = ", ".join(sorted([*BUILTIN_SPECS, *ALIASES]))
        raise UnknownSensorTypeError(f"unknown sensor type {name!r}; known: {known}") from None


def sensor_type_names() -> list[str]:
    """Every name :func:`get_spec` accepts: built-ins, then aliases."""
    return [*BUILTIN_SPECS, *ALIASES]

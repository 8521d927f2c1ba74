"""A corpus of realistic rig data for every built-in sensor type, healthy and faulty.

Independent of the service's simulator (``sensor/simulate.py`` is not imported): the sensor
model, stimuli and faults are written here from the datasheet figures of SENSOR_SPECS.md.

Sensor model (``_Sensor``): the reading is the measurand seen through a first-order response
(tau63 at most the datasheet's: healthy sensors are as fast as or faster than typical), plus a
calibration offset and gain error inside the tolerance, plus datasheet noise, quantised to the
resolution (DS18B20: 1/16 °C steps), sampled at the nominal rate with 2 % timestamp jitter. The
reference carries its own calibration error (drawn from its standard uncertainty: the spec's
stated one, or TUR 4:1) and half the sensor's noise.

Stimuli: ``still`` (constant), ``ramp`` (a chamber ramp over 60 % of the operating span, e.g.
5 °C/min for the Pt100), ``steps`` (set-point steps with dwells of at least 10 tau),
``dwell_and_step`` (a calibration sequence up and back down), ``sine`` (a slow sweep).

Faults, each at a ``severity``: the largest error it adds, in multiples of the datasheet
tolerance where it adds it (SCD41's ±(40 ppm + 5 %) grows with the level):
bias, gain (error at the span's ends), noise (2 sigma), drift (error at the end), spikes
(magnitude), stuck_at (the output freezes while the reference moves this far), slow_response
(extra lag error), and two whose size is not an error: dropouts (missing readings, in
multiples of the spec's missing_fail_fraction) and saturation (pinned readings, in multiples
of the spec's saturation_count).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sensor_backend.sensor.specs import SensorSpec

Floats: TypeAlias = "NDArray[np.float64]"
Scenario: TypeAlias = Literal["still", "ramp", "steps", "dwell_and_step", "sine"]
FaultKind: TypeAlias = Literal[
    "healthy",
    "bias",
    "gain",
    "noise",
    "drift",
    "spikes",
    "stuck_at",
    "dropouts",
    "saturation",
    "slow_response",
]
SCENARIOS: tuple[Scenario, ...] = ("still", "ramp", "steps", "dwell_and_step", "sine")
FAULTS: tuple[FaultKind, ...] = (
    *("bias", "gain", "noise", "drift", "spikes", "stuck_at"),
    *("dropouts", "saturation", "slow_response"),
)
SEVERITIES = (0.5, 1.0, 2.0, 4.0)
N = 1200
JITTER = 0.02


@dataclass(frozen=True, slots=True)
class Profile:
    """Datasheet behaviour and a rig's stimulus for one sensor type."""

    noise_sigma: float  # healthy white noise, rms
    level: tuple[float, float]  # stimulus span inside the operating range
    tau_s: float  # healthy response time constant (0: follows at once)


# Noise: SHT4x repeatability 0.08 %RH (3 sigma); SHT3x 0.2 %RH (3 sigma); BME280 0.2 Pa rms;
# SCD41 repeatability ±10 ppm (taken as 2 sigma); DS18B20 no figure (0.02 °C, below its 1/16
# LSB, as bench units show); Pt100 a 4-wire 24-bit front end (3 mK). Spans: inside the
# operating range and where the tolerance is stated (DS18B20 -10..85 °C, SCD41 400..5000).
PROFILES: dict[str, Profile] = {
    "pt100_class_a": Profile(0.003, (0.0, 100.0), 0.0),
    "pt100_class_b": Profile(0.003, (0.0, 100.0), 0.0),
    "ds18b20": Profile(0.02, (10.0, 50.0), 0.0),
    "sht45_humidity": Profile(0.08 / 3, (20.0, 80.0), 6.0),
    "sht31_humidity": Profile(0.2 / 3, (20.0, 80.0), 8.0),
    "bme280_pressure": Profile(0.002, (950.0, 1050.0), 0.0),
    "scd41_co2": Profile(5.0, (400.0, 2000.0), 60.0),
}


@dataclass(frozen=True, slots=True)
class Case:
    sensor: str
    scenario: Scenario
    fault: FaultKind
    severity: float
    seed: int
    values: Floats
    timestamps: Floats
    reference: Floats
    applicable: bool  # False: the fault cannot reach this severity in this scenario


def lag(x: Floats, t: Floats, tau: float) -> Floats:
    """First-order response (a plain loop: corpus series are short)."""
    if tau <= 0:
        return x.copy()
    y = np.empty_like(x)
    y[0] = x[0]
    a = np.exp(-np.diff(t) / tau)
    for i in range(1, x.size):
        y[i] = a[i - 1] * y[i - 1] + (1.0 - a[i - 1]) * x[i]
    return y


def stimulus(scenario: Scenario, spec: SensorSpec, t: Floats, rng: np.random.Generator) -> Floats:
    prof = PROFILES[spec.name]
    lo, hi = prof.level
    span = hi - lo
    frac: Floats = (t - t[0]) / (t[-1] - t[0])
    out: Floats
    if scenario == "still":
        return np.full(t.size, lo + span * rng.uniform(0.3, 0.7))
    if scenario == "ramp":
        start = lo + span * rng.uniform(0.0, 0.4)
        out = start + 0.6 * span * frac
        return out
    if scenario == "sine":  # up to 3 cycles, each at least 30 tau63 long (a chamber's pace)
        phase = rng.uniform(0, 2 * math.pi)
        cycles = min(3.0, float(t[-1] - t[0]) / max(30.0 * prof.tau_s, 1e-9))
        out = lo + span * (0.5 + 0.4 * np.sin(2 * math.pi * cycles * frac + phase))
        return out
    dwell_s = max(10.0 * prof.tau_s, 60.0 * spec.nominal_period_s)
    n_levels = max(2, int((t[-1] - t[0]) / dwell_s))
    if scenario == "steps":
        levels = lo + span * rng.uniform(0.1, 0.9, n_levels)
    else:  # dwell_and_step: up then back down through the same set points
        up = np.linspace(lo + 0.1 * span, hi - 0.1 * span, (n_levels + 1) // 2 + 1)
        levels = np.concatenate((up, up[-2::-1]))[:n_levels]
    idx = np.minimum((frac * n_levels).astype(int), n_levels - 1)
    out = levels[idx]
    return out


def _tolerance(spec: SensorSpec, ref: Floats) -> Floats:
    return spec.tol_abs + spec.tol_rel * np.abs(ref)


def healthy(
    spec: SensorSpec, ref_true: Floats, t: Floats, rng: np.random.Generator, tau: float
) -> Floats:
    prof = PROFILES[spec.name]
    tol = float(_tolerance(spec, ref_true).min())
    offset = float(np.clip(rng.normal(0.0, 0.15 * tol), -0.35 * tol, 0.35 * tol))
    span = float(np.ptp(ref_true))
    pivot = float(ref_true.mean())
    gain = rng.uniform(-0.1, 0.1) * tol / max(span, 1e-9)
    seen = lag(ref_true, t, tau)
    return seen + offset + gain * (seen - pivot) + rng.normal(0.0, prof.noise_sigma, t.size)


def _quantise(x: Floats, q: float) -> Floats:
    return np.round(x / q) * q


@dataclass(frozen=True, slots=True)
class _Ctx:
    spec: SensorSpec
    x: Floats
    ref: Floats  # the true measurand
    t: Floats
    tau: float
    tol: Floats  # the datasheet tolerance at each reading (at the true value)
    severity: float
    rng: np.random.Generator


# Each fault returns (readings, keep mask or None, applicable).
_Out: TypeAlias = "tuple[Floats, NDArray[np.bool_] | None, bool]"


def _bias(c: _Ctx) -> _Out:
    return c.x + c.severity * _tolerance(c.spec, c.ref), None, True


def _gain(c: _Ctx) -> _Out:
    if float(np.ptp(c.ref)) < float(c.tol.min()):
        return c.x, None, False  # no span (still air): a gain error is invisible
    pivot = float(c.ref.mean())
    g = c.severity / float((np.abs(c.ref - pivot) / c.tol).max())
    return c.x + g * (c.ref - pivot), None, True


def _noise(c: _Ctx) -> _Out:
    return c.x + c.rng.normal(0.0, 1.0, c.x.size) * c.severity * c.tol / 2.0, None, True


def _drift(c: _Ctx) -> _Out:
    return c.x + c.severity * c.tol * (c.t - c.t[0]) / (c.t[-1] - c.t[0]), None, True


def _spikes(c: _Ctx) -> _Out:
    n = c.x.size
    idx = c.rng.choice(np.arange(5, n - 5, 7), size=max(3, n // 200), replace=False)
    y = c.x.copy()
    y[idx] += c.severity * c.tol[idx] * c.rng.choice(np.array([-1.0, 1.0]), idx.size)
    return y, None, True


def _stuck(c: _Ctx) -> _Out:
    start = int(0.3 * c.x.size)
    moved = np.flatnonzero(np.abs(c.ref[start:] - c.ref[start]) >= c.severity * c.tol[start:])
    if moved.size == 0:
        return c.x, None, False  # the reference never moves that far while it is stuck
    y = c.x.copy()
    y[start : min(c.x.size, start + int(moved[0]) + 30)] = c.x[start]
    return y, None, True


def _dropouts(c: _Ctx) -> _Out:
    n = c.x.size
    gaps = max(1, round(c.severity * c.spec.missing_fail_fraction * n) // 10)
    keep = np.ones(n, dtype=bool)
    for k in range(gaps):
        s = (k + 1) * n // (gaps + 2)
        keep[s : s + 10] = False
    return c.x, keep, True


def _saturation(c: _Ctx) -> _Out:
    y = c.x.copy()
    n = c.x.size
    y[n // 2 : n // 2 + max(1, round(c.severity * c.spec.saturation_count))] = c.spec.range_max
    return y, None, True


def _slow(c: _Ctx) -> _Out:
    """A time constant whose lag exceeds the datasheet's by ``severity`` x the tolerance.

    The severity is measured against the lag the datasheet allows (tau63 of the spec), not
    against this unit's healthy lag: a sensor slower than healthy but within the datasheet is
    not faulty.
    """
    allowed = lag(c.ref, c.t, c.spec.response_tau_s or 0.0)
    for factor in (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0):
        slow_tau = max(c.spec.response_tau_s or 0.0, c.spec.nominal_period_s) * factor
        slow = lag(c.ref, c.t, slow_tau)
        if float((np.abs(slow - allowed) / c.tol).max()) >= c.severity:
            return c.x + slow - lag(c.ref, c.t, c.tau), None, True
    return c.x, None, False


_FAULT_FNS = {
    "bias": _bias,
    "gain": _gain,
    "noise": _noise,
    "drift": _drift,
    "spikes": _spikes,
    "stuck_at": _stuck,
    "dropouts": _dropouts,
    "saturation": _saturation,
    "slow_response": _slow,
}


def make_case(  # noqa: PLR0917 - the corpus coordinates, in their natural order
    spec: SensorSpec,
    scenario: Scenario,
    fault: FaultKind,
    severity: float,
    seed: int,
    n: int = N,
) -> Case:
    """One series: ``fault`` ("healthy" for none) at ``severity`` x tolerance."""
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario), zlib.crc32(spec.name.encode())])
    prof = PROFILES[spec.name]
    period = spec.nominal_period_s
    t = np.arange(n) * period + rng.uniform(-JITTER, JITTER, n) * period
    truth = stimulus(scenario, spec, t, rng)
    tau = prof.tau_s * rng.uniform(0.6, 1.0)
    x = healthy(spec, truth, t, rng, tau)
    keep = None
    applicable = True
    if fault != "healthy":
        ctx = _Ctx(spec, x, truth, t, tau, _tolerance(spec, truth), severity, rng)
        x, keep, applicable = _FAULT_FNS[fault](ctx)
    x = np.clip(_quantise(x, spec.resolution), spec.range_min, spec.range_max)
    u_ref = spec.reference_expanded_uncertainty[0] / 2.0
    # The reference's calibration error (one draw within its u) and its noise (a reference is
    # at least as quiet as the sensor: half its noise).
    ref = truth + rng.normal(0.0, u_ref) + rng.normal(0.0, prof.noise_sigma / 2.0, n)
    if keep is not None:
        x, t, ref = x[keep], t[keep], ref[keep]
    return Case(spec.name, scenario, fault, severity, seed, x, t, ref, applicable)

"""Seeded simulation of one sensor, healthy or with injected faults (DESIGN.md §8).

A healthy sensor reads a slowly varying reference inside the spec's operating span, plus a
constant bias within +-20 % of the tolerance and white noise at a quarter of the noise limit,
quantised to the resolution, at the nominal sample rate with +-2 % timestamp jitter. The same
seed always gives the same readings (one ``numpy.random.Generator``).

Faults, each with defaults scaled to the spec so that the default is clearly caught:

==========  ================================================  ===========================
kind        effect (default)                                  caught by (verdict)
==========  ================================================  ===========================
bias        constant offset (3x the tolerance)                accuracy (fail)
noise       extra white noise (rms 5x the noise limit)        noise (fail)
drift       error ramps linearly (5x the drift limit per h)   drift (fail)
spikes      isolated jumps (max(3, n/100) of 3x spike_fail)   spike (fail)
stuck_at    output frozen (40 % in, 2x the flat-line count)   flat_line (fail)
dropouts    readings missing (3 gaps of 5 readings)           gap (fail)
saturation  output pinned at a range limit (50 % in, n/10)    saturation (fail)
==========  ================================================  ===========================

Order of effects: bias, noise and drift act on the analogue signal before quantisation;
spikes, stuck-at and saturation act on the digital output; dropouts remove readings last, so
``n`` is the count before dropouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, TypeAlias

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sensor_backend.sensor.qc import GAP_FAIL_FACTOR

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from numpy.typing import ArrayLike, NDArray

    from sensor_backend.sensor.qc import Floats, Indices
    from sensor_backend.sensor.specs import SensorSpec

DEFAULT_N = 600
MAX_N = 10_000_000
JITTER = 0.02  # timestamp jitter, fraction of the nominal period
HEALTHY_BIAS = 0.2  # fraction of the tolerance
HEALTHY_NOISE = 0.25  # fraction of the noise limit

FaultKind: TypeAlias = Literal[
    "bias", "noise", "drift", "spikes", "stuck_at", "dropouts", "saturation"
]
_FAULT_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
_Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class BiasFault(BaseModel):
    model_config = _FAULT_CONFIG
    kind: Literal["bias"] = "bias"
    offset: float | None = None  # units; None = 3x the tolerance at the mean reference


class NoiseFault(BaseModel):
    model_config = _FAULT_CONFIG
    kind: Literal["noise"] = "noise"
    rms: float | None = Field(default=None, gt=0)  # None = 5x noise_limit


class DriftFault(BaseModel):
    model_config = _FAULT_CONFIG
    kind: Literal["drift"] = "drift"
    rate_per_hour: float | None = None  # None = 5x drift_limit
    start: _Fraction = 0.0


class SpikesFault(BaseModel):
    model_config = _FAULT_CONFIG
    kind: Literal["spikes"] = "spikes"
    count: int | None = Field(default=None, ge=1)  # None = max(3, n // 100)
    magnitude: float | None = Field(default=None, gt=0)  # None = 3x the spike fail threshold


class StuckAtFault(BaseModel):
    model_config = _FAULT_CONFIG
    kind: Literal["stuck_at"] = "stuck_at"
    start: _Fraction = 0.4
    length: int | None = Field(default=None, ge=2)  # None = max(2x flat-line fail, n // 5)
    value: float | None = None  # None = the reading where it sticks


class DropoutsFault(BaseModel):
    model_config = _FAULT_CONFIG
    kind: Literal["dropouts"] = "dropouts"
    count: int = Field(default=3, ge=1)
    length: int | None = Field(default=None, ge=1)  # readings per gap; None = fail-sized


class SaturationFault(BaseModel):
    model_config = _FAULT_CONFIG
    kind: Literal["saturation"] = "saturation"
    start: _Fraction = 0.5
    length: int | None = Field(default=None, ge=1)  # None = max(2x saturation_count, n // 10)
    limit: Literal["max", "min"] = "max"


Fault: TypeAlias = Annotated[
    BiasFault
    | NoiseFault
    | DriftFault
    | SpikesFault
    | StuckAtFault
    | DropoutsFault
    | SaturationFault,
    Field(discriminator="kind"),
]
FAULT_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)


def parse_faults(items: Iterable[Fault | FaultKind | Mapping[str, object]]) -> tuple[Fault, ...]:
    """Validate faults given as models, bare kinds (``"spikes"``) or JSON-like dicts."""
    parsed: list[Fault] = []
    for item in items:
        if isinstance(item, BaseModel):
            parsed.append(item)
        else:
            raw = {"kind": item} if isinstance(item, str) else item
            parsed.append(FAULT_ADAPTER.validate_python(raw))
    return tuple(parsed)


@dataclass(frozen=True, slots=True, eq=False)
class SimulatedReadings:
    """Readings as a rig would send them, plus what was injected where (for tests and UIs)."""

    spec_name: str
    seed: int
    values: NDArray[np.float64]
    timestamps: NDArray[np.float64]  # seconds from ``start_time``
    reference: NDArray[np.float64]
    faults: tuple[Fault, ...]
    # Fault kind -> indices (in the returned arrays) of affected readings; for dropouts the
    # reading right after each gap.
    injected: Mapping[str, NDArray[np.intp]]


def _reference(spec: SensorSpec, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    lo, hi = spec.suspect_range
    span = hi - lo
    center = rng.uniform(lo + 0.25 * span, hi - 0.25 * span)
    cycle = max(n, 100)  # samples per period of the slow variation
    # Keep the per-reading change below half the noise limit so the stimulus itself never
    # looks like a spike or a fast rate of change.
    amplitude = min(0.05 * span, 0.5 * spec.noise_limit * cycle / (2 * math.pi))
    phase = rng.uniform(0.0, 2 * math.pi)
    k = np.arange(n, dtype=np.float64)
    return center + amplitude * np.sin(2 * math.pi * k / cycle + phase)


def _span(n: int, start: float, length: int) -> slice:
    first = min(int(start * n), n - 1)
    return slice(first, min(n, first + length))


def _analogue(
    spec: SensorSpec, f: Fault, ts: Floats, rng: np.random.Generator, tol: float
) -> tuple[Floats | float, Indices] | None:
    """Additive error of a bias, noise or drift fault and the readings it touches."""
    n = ts.size
    if isinstance(f, BiasFault):
        return (3.0 * tol if f.offset is None else f.offset), np.arange(n)
    if isinstance(f, NoiseFault):
        rms = 5.0 * spec.noise_limit if f.rms is None else f.rms
        return rng.normal(0.0, rms, n), np.arange(n)
    if isinstance(f, DriftFault):
        rate = 5.0 * spec.drift_limit if f.rate_per_hour is None else f.rate_per_hour
        t0 = ts[_span(n, f.start, 1).start]
        return rate / 3600.0 * np.maximum(ts - t0, 0.0), np.flatnonzero(ts >= t0)
    return None


def _digital(
    spec: SensorSpec, f: Fault, values: Floats, keep: NDArray[np.bool_], rng: np.random.Generator
) -> Indices:
    """Apply a spikes, stuck-at, saturation or dropouts fault in place; the touched readings."""
    n = values.size
    if isinstance(f, SpikesFault):
        count = max(3, n // 100) if f.count is None else f.count
        slots = np.arange(2, n - 2, 3)  # never adjacent, never at an end
        if count > slots.size:
            raise ValueError(f"{n} readings cannot hold {count} isolated spikes")
        idx = np.sort(rng.choice(slots, size=count, replace=False))
        size = 3.0 * spec.spike_thresholds[1] if f.magnitude is None else f.magnitude
        jump = size * rng.choice(np.array([-1.0, 1.0]), size=count)
        values[idx] = np.round((values[idx] + jump) / spec.resolution) * spec.resolution
        return idx
    if isinstance(f, StuckAtFault):
        span = _span(n, f.start, f.length or max(2 * spec.flat_line_fail_count, n // 5))
        values[span] = values[span.start] if f.value is None else f.value
        return np.arange(span.start, span.stop)
    if isinstance(f, SaturationFault):
        span = _span(n, f.start, f.length or max(2 * spec.saturation_count, n // 10))
        values[span] = spec.range_max if f.limit == "max" else spec.range_min
        return np.arange(span.start, span.stop)
    if isinstance(f, DropoutsFault):
        length = f.length or math.ceil(GAP_FAIL_FACTOR) + 2
        block = n // f.count
        if block < length + 3:
            raise ValueError(f"{n} readings cannot hold {f.count} gaps of {length}")
        starts = np.arange(f.count) * block + rng.integers(1, block - length - 1, f.count)
        keep[(starts[:, None] + np.arange(length)).ravel()] = False
        return starts + length  # the reading right after each gap
    return np.arange(0)


def simulate(
    spec: SensorSpec,
    *,
    n: int | None = None,
    seed: int = 0,
    faults: Iterable[Fault | FaultKind | Mapping[str, object]] = (),
    true_signal: ArrayLike | None = None,
    start_time: float = 0.0,
) -> SimulatedReadings:
    """Simulate ``n`` readings of a ``spec`` sensor (``true_signal`` replaces the reference)."""
    fault_list = parse_faults(faults)
    rng = np.random.default_rng(seed)
    if true_signal is not None:
        ref = np.asarray(true_signal, dtype=np.float64).ravel()
        if n is not None and n != ref.size:
            raise ValueError(f"n={n} but true_signal has {ref.size} values")
        n = ref.size
    n = DEFAULT_N if n is None else n
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be between 1 and {MAX_N}")
    if true_signal is None:
        ref = _reference(spec, n, rng)
    ts = start_time + (np.arange(n) + rng.uniform(-JITTER, JITTER, n)) * spec.nominal_period_s
    tolerance = spec.tolerance(ref)
    signal = ref + rng.uniform(-HEALTHY_BIAS, HEALTHY_BIAS) * float(tolerance.min())
    signal += rng.normal(0.0, HEALTHY_NOISE * spec.noise_limit, n)
    affected: dict[str, list[Indices]] = {}
    for f in fault_list:
        if (effect := _analogue(spec, f, ts, rng, float(tolerance.mean()))) is not None:
            signal += effect[0]
            affected.setdefault(f.kind, []).append(effect[1])
    values = np.round(signal / spec.resolution) * spec.resolution
    keep = np.ones(n, dtype=bool)
    for f in fault_list:
        if not isinstance(f, BiasFault | NoiseFault | DriftFault):
            affected.setdefault(f.kind, []).append(_digital(spec, f, values, keep, rng))
    new_index = np.cumsum(keep) - 1
    injected = {}
    for kind, parts in affected.items():
        old = np.unique(np.concatenate(parts))
        injected[kind] = new_index[old[keep[old]]].astype(np.intp)
    return SimulatedReadings(
        spec_name=spec.name,
        seed=seed,
        values=values[keep],
        timestamps=ts[keep],
        reference=ref[keep],
        faults=fault_list,
        injected=injected,
    )

"""Sensor specs (built-ins, aliases, user-defined validation) and the seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from sensor_backend.sensor.simulate import (
    FAULT_ADAPTER,
    DropoutsFault,
    SpikesFault,
    parse_faults,
    simulate,
)
from sensor_backend.sensor.specs import (
    ALIASES,
    BUILTIN_SPECS,
    SensorSpec,
    UnknownSensorTypeError,
    get_spec,
    sensor_type_names,
)

BUILTINS = sorted(BUILTIN_SPECS)

USER_SPEC = {
    "name": "lab_thermistor",
    "quantity": "temperature",
    "unit": "°C",
    "range_min": -40.0,
    "range_max": 125.0,
    "tol_abs": 0.2,
    "resolution": 0.01,
    "noise_limit": 0.02,
    "drift_limit": 0.2,
    "sample_rate_hz": 2.0,
    "sources": ["vendor datasheet rev A"],
}


def test_registry_holds_every_required_type():
    """All seven built-ins and the four friendly aliases are registered."""
    assert set(BUILTINS) == {
        "pt100_class_a",
        "pt100_class_b",
        "ds18b20",
        "sht45_humidity",
        "sht31_humidity",
        "bme280_pressure",
        "scd41_co2",
    }
    assert set(ALIASES) == {"temperature", "humidity", "pressure", "co2"}
    assert set(sensor_type_names()) == set(BUILTINS) | set(ALIASES)


@pytest.mark.parametrize(
    ("alias", "target"),
    [
        ("temperature", "pt100_class_a"),
        ("humidity", "sht45_humidity"),
        ("pressure", "bme280_pressure"),
        ("co2", "scd41_co2"),
    ],
)
def test_alias_resolves_to_builtin(alias, target):
    """Each alias returns the very spec object of its documented target."""
    assert get_spec(alias) is BUILTIN_SPECS[target]


def test_unknown_type_is_a_key_error_naming_the_known_ones():
    """Asking for an unknown type raises UnknownSensorTypeError (a KeyError) listing names."""
    with pytest.raises(UnknownSensorTypeError, match="pt100_class_a"):
        get_spec("thermocouple_k")
    with pytest.raises(KeyError):
        get_spec("")


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_spec_is_cited_and_self_consistent(name):
    """Every built-in cites a source, and its noise fits well inside its tolerance."""
    spec = BUILTIN_SPECS[name]
    assert spec.name == name
    assert spec.sources
    lo, hi = spec.suspect_range
    assert spec.range_min <= lo < hi <= spec.range_max
    assert spec.noise_limit < spec.tol_abs
    suspect, fail = spec.spike_thresholds
    assert 0 < suspect < fail
    roc_suspect, roc_fail = spec.roc_thresholds
    assert 0 < roc_suspect <= roc_fail
    assert spec.flat_line_suspect_count <= spec.flat_line_fail_count


def test_pressure_is_in_hectopascal():
    """The BME280 spec uses hPa throughout: range 300..1100, noise a few thousandths."""
    spec = get_spec("pressure")
    assert spec.unit == "hPa"
    assert (spec.range_min, spec.range_max) == (300.0, 1100.0)
    assert spec.noise_limit < 0.01
    assert spec.tol_abs == 1.0


@pytest.mark.parametrize(
    ("name", "reference", "expected"),
    [
        ("pt100_class_a", 0.0, 0.15),
        ("pt100_class_a", 100.0, 0.35),
        ("pt100_class_a", -100.0, 0.35),
        ("pt100_class_b", 200.0, 1.30),
        ("ds18b20", 50.0, 0.5),
        ("sht45_humidity", 80.0, 1.0),
        ("scd41_co2", 1000.0, 90.0),
    ],
)
def test_tolerance_formula(name, reference, expected):
    """Tolerance is tol_abs + tol_rel*|reference| (IEC 60751 a + b|t|, SCD41 40 ppm + 5 %)."""
    tol = BUILTIN_SPECS[name].tolerance(np.array([reference]))
    assert math.isclose(float(tol[0]), expected, rel_tol=1e-12)


def test_user_defined_spec_validates_from_json():
    """A user spec built from a JSON-like dict round-trips through model_dump_json."""
    spec = SensorSpec.model_validate(USER_SPEC)
    assert spec.suspect_range == (-40.0, 125.0)
    assert spec.flat_tolerance == 0.005
    again = SensorSpec.model_validate_json(spec.model_dump_json())
    assert again == spec


def test_spec_is_frozen():
    """Specs are immutable once validated."""
    spec = SensorSpec.model_validate(USER_SPEC)
    with pytest.raises(ValidationError):
        spec.tol_abs = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"range_min": 200.0}, "range_min must be below range_max"),
        ({"range_max": -40.0}, "range_min must be below range_max"),
        ({"tol_abs": -0.1}, "greater than or equal to 0"),
        ({"tol_abs": 0.0, "tol_rel": 0.0}, "a tolerance is required"),
        ({"tol_rel": -0.01}, "greater than or equal to 0"),
        ({"resolution": 0.0}, "greater than 0"),
        ({"resolution": 500.0}, "resolution must be smaller"),
        ({"noise_limit": -1.0}, "greater than 0"),
        ({"drift_limit": 0.0}, "greater than 0"),
        ({"sample_rate_hz": 0.0}, "greater than 0"),
        ({"suspect_min": -50.0}, "suspect range must lie inside"),
        ({"suspect_min": 10.0, "suspect_max": 5.0}, "suspect range must lie inside"),
        ({"spike_suspect": 1.0, "spike_fail": 0.5}, "spike_fail must not be below"),
        ({"roc_suspect": 2.0, "roc_fail": 1.0}, "roc_fail must not be below"),
        ({"flat_line_suspect_count": 50, "flat_line_fail_count": 10}, "flat_line_fail_count"),
        ({"flat_line_suspect_count": 2}, "greater than or equal to 3"),
        ({"range_max": math.inf}, "finite number"),
        ({"tol_abs": math.nan}, "finite number"),
        ({"name": ""}, "at least 1 character"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_user_defined_spec_rejects_invalid(change, message):
    """Inconsistent or out-of-range user specs are rejected with a readable reason."""
    with pytest.raises(ValidationError, match=message):
        SensorSpec.model_validate({**USER_SPEC, **change})


def test_explicit_thresholds_override_derived_ones():
    """Spike and rate-of-change thresholds given in the spec win over the derived defaults."""
    spec = SensorSpec.model_validate(
        {**USER_SPEC, "spike_suspect": 0.5, "spike_fail": 1.0, "roc_suspect": 2.0}
    )
    assert spec.spike_thresholds == (0.5, 1.0)
    assert spec.roc_thresholds == (2.0, 2.0)  # fail defaults to spike_fail per period


@pytest.mark.parametrize("name", BUILTINS)
def test_simulation_is_seeded_and_deterministic(name):
    """The same seed gives identical readings; another seed gives different ones."""
    spec = BUILTIN_SPECS[name]
    a = simulate(spec, n=300, seed=7, faults=["spikes", "dropouts"])
    b = simulate(spec, n=300, seed=7, faults=["spikes", "dropouts"])
    c = simulate(spec, n=300, seed=8, faults=["spikes", "dropouts"])
    for field in ("values", "timestamps", "reference"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.values, c.values)
    np.testing.assert_array_equal(a.injected["spikes"], b.injected["spikes"])


@pytest.mark.parametrize("name", BUILTINS)
def test_healthy_simulation_respects_the_spec(name):
    """Healthy readings sit in the operating span, on the resolution grid, at the nominal rate."""
    spec = BUILTIN_SPECS[name]
    sim = simulate(spec, n=1000, seed=3)
    lo, hi = spec.suspect_range
    assert sim.values.size == sim.timestamps.size == sim.reference.size == 1000
    assert sim.reference.min() >= lo
    assert sim.reference.max() <= hi
    steps = sim.values / spec.resolution
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    intervals = np.diff(sim.timestamps) * spec.sample_rate_hz
    assert intervals.min() > 0.95
    assert intervals.max() < 1.05
    error = sim.values - sim.reference
    assert np.all(np.abs(error) <= spec.tolerance(sim.reference))


def test_true_signal_replaces_the_reference():
    """A given true signal becomes the reference and sets n."""
    spec = get_spec("ds18b20")
    truth = np.full(50, 21.0)
    sim = simulate(spec, seed=1, true_signal=truth)
    np.testing.assert_array_equal(sim.reference, truth)
    assert sim.values.size == 50
    with pytest.raises(ValueError, match="true_signal"):
        simulate(spec, n=10, true_signal=truth)


def test_faults_parse_from_kinds_dicts_and_models():
    """Faults may be bare kinds, JSON-like dicts or models; bad ones fail validation."""
    faults = parse_faults(["bias", {"kind": "spikes", "count": 4}, DropoutsFault(count=2)])
    assert [f.kind for f in faults] == ["bias", "spikes", "dropouts"]
    assert isinstance(faults[1], SpikesFault)
    assert faults[1].count == 4
    with pytest.raises(ValidationError):
        FAULT_ADAPTER.validate_python({"kind": "gremlins"})
    with pytest.raises(ValidationError):
        FAULT_ADAPTER.validate_python({"kind": "stuck_at", "start": 1.5})
    with pytest.raises(ValidationError):
        FAULT_ADAPTER.validate_python({"kind": "noise", "rms": -1.0})


def test_simulation_rejects_impossible_requests():
    """Bad sizes and faults that cannot fit the series raise ValueError."""
    spec = get_spec("co2")
    with pytest.raises(ValueError, match="n must be"):
        simulate(spec, n=0)
    with pytest.raises(ValueError, match="cannot hold"):
        simulate(spec, n=20, faults=[{"kind": "dropouts", "count": 5}])
    with pytest.raises(ValueError, match="cannot hold"):
        simulate(spec, n=20, faults=[{"kind": "spikes", "count": 50}])

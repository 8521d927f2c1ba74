"""Sensor-test analysis on the service's simulator: healthy sensors pass, faults are caught.

Since issue 13, ``fail`` means the datasheet is violated: faults that break the accuracy
tolerance or the range fail; faults only a rig-choice threshold sees (noise above a noise
limit, drift above the bench rule, small spikes, gaps within the stated missing fraction)
are ``suspect``. Rig-like scenarios (ramps, steps, sweeps, response time, uncertainty and
decision rules) are in ``test_sensor_reference.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sensor_backend.sensor.analysis import CHECK_ORDER, analyse
from sensor_backend.sensor.qc import FAIL, MISSING, NOT_EVALUATED, PASS, SUSPECT
from sensor_backend.sensor.simulate import simulate
from sensor_backend.sensor.specs import BUILTIN_SPECS, get_spec

BUILTINS = sorted(BUILTIN_SPECS)
SEEDS = (1, 2, 3)
N = 1200

# Fault kind -> the check that must flag the default (clearly faulty) injection.
EXPECTED_CHECK = {
    "bias": "accuracy",
    "noise": "noise",
    "drift": "drift",
    "spikes": "spike",
    "stuck_at": "flat_line",
    "dropouts": "gap",
    "saturation": "saturation",
}
# Faults whose default injection violates the datasheet (tolerance, range) on every type.
DATASHEET_FAULTS = {"bias", "saturation"}


def run(name, *, seed=1, n=N, faults=(), timestamps=True, reference=True, **kwargs):
    spec = BUILTIN_SPECS[name]
    sim = simulate(spec, n=n, seed=seed, faults=faults, **kwargs)
    result = analyse(
        spec,
        sim.values,
        sim.timestamps if timestamps else None,
        sim.reference if reference else None,
    )
    return sim, result


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", BUILTINS)
def test_healthy_sensor_passes(name, seed):
    """A healthy simulated sensor passes every check, with no reasons given."""
    _, result = run(name, seed=seed)
    assert result.verdict == "pass", result.reasons
    assert result.reasons == ()
    assert result.mode == "reference"
    # The simulator's slow reference has no step: response time is not evaluated.
    assert result.checks["response_time"].flag == NOT_EVALUATED
    assert {c.flag for n, c in result.checks.items() if n != "response_time"} == {PASS}
    assert result.noise_rms is not None
    assert result.noise_rms < BUILTIN_SPECS[name].noise_limit
    assert result.accuracy is not None
    assert result.accuracy.fraction_within_tolerance == 1.0


@pytest.mark.parametrize("kind", sorted(EXPECTED_CHECK))
@pytest.mark.parametrize("name", BUILTINS)
def test_fault_is_caught(name, kind):
    """Each default fault is caught by its own check, with a reason naming its source.

    Bias and saturation break the datasheet and fail; the others fail only where the fault
    also takes readings out of the tolerance, else they are suspect.
    """
    sim, result = run(name, faults=[kind])
    check = result.checks[EXPECTED_CHECK[kind]]
    assert result.verdict != "pass"
    assert check.flag in {SUSPECT, FAIL}, check.message
    assert any(r.startswith(f"{check.name} [") for r in result.reasons)
    if kind in DATASHEET_FAULTS:
        assert (result.verdict, check.flag) == ("fail", FAIL)
    flagged = set(check.fail_indices.tolist()) | set(check.suspect_indices.tolist())
    injected = sim.injected[kind]
    if kind == "spikes":
        assert set(injected.tolist()) <= flagged
    elif kind in {"dropouts", "saturation"}:
        assert flagged == set(injected.tolist())
    elif kind == "stuck_at":
        assert flagged <= set(injected.tolist())
        assert len(flagged) >= injected.size - BUILTIN_SPECS[name].flat_line_suspect_count


@pytest.mark.parametrize(
    ("scenario", "check"),
    [("small_spikes", "spike"), ("single_dropouts", "gap"), ("mild_noise", "noise")],
)
@pytest.mark.parametrize("name", BUILTINS)
def test_mild_fault_is_suspect(name, scenario, check):
    """Faults between the suspect and fail thresholds give a suspect verdict, not a fail.

    A spike is only suspect while the reading stays within the accuracy tolerance; the
    DS18B20's spike threshold (0.6 °C, rig choice) is already beyond its ±0.5 °C, so any
    spike it flags breaks the datasheet and fails.
    """
    spec = BUILTIN_SPECS[name]
    if scenario == "small_spikes" and spec.spike_thresholds[0] > spec.tol_abs:
        _, result = run(name, faults=[{"kind": "spikes", "count": 3}])
        assert result.verdict == "fail"
        return
    faults = {
        "small_spikes": {"kind": "spikes", "count": 3, "magnitude": 1.5 * spec.spike_thresholds[0]},
        "single_dropouts": {"kind": "dropouts", "count": 2, "length": 1},
        "mild_noise": {"kind": "noise", "rms": 1.4 * spec.noise_limit},
    }[scenario]
    _, result = run(name, faults=[faults])
    assert result.verdict == "suspect", result.reasons
    assert result.checks[check].flag == SUSPECT


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in BUILTINS
        if BUILTIN_SPECS[n].suspect_range
        != (BUILTIN_SPECS[n].range_min, BUILTIN_SPECS[n].range_max)
    ],
)
def test_outside_operating_span_is_suspect(name):
    """Readings inside the sensor range but outside its operating span are suspect."""
    spec = BUILTIN_SPECS[name]
    lo, _ = spec.suspect_range
    truth = np.full(300, (spec.range_min + lo) / 2)
    _, result = run(name, n=None, true_signal=truth)
    assert result.checks["gross_range"].flag == SUSPECT
    assert result.verdict == "suspect"


def test_reading_outside_sensor_range_fails():
    """A reading beyond the sensor range is a gross-range FAIL at that index."""
    spec = get_spec("humidity")
    sim = simulate(spec, n=200, seed=4)
    values = sim.values.copy()
    values[50] = 104.0
    result = analyse(spec, values, sim.timestamps, sim.reference)
    assert result.checks["gross_range"].flag == FAIL
    assert result.checks["gross_range"].fail_indices.tolist() == [50]
    assert result.verdict == "fail"


def test_empty_input_is_missing_and_fails():
    """No readings: every check is 9 (missing) and the verdict is fail, with a reason."""
    result = analyse(get_spec("co2"), [], [], [])
    assert result.verdict == "fail"
    assert result.reasons[0] == "no readings"
    assert {c.flag for c in result.checks.values()} == {MISSING}
    assert result.stats.count == 0
    assert result.stats.mean is None
    json.dumps(result.to_dict())


def test_single_reading_is_suspect_with_checks_not_evaluated():
    """One reading: range checks run, the rest are 2, and the verdict is suspect."""
    result = analyse(get_spec("temperature"), [21.5], [0.0], [21.45])
    assert result.verdict == "suspect"
    assert "only 1 reading" in result.reasons[0]
    flags = {name: c.flag for name, c in result.checks.items()}
    assert flags["gross_range"] == flags["saturation"] == flags["accuracy"] == PASS
    for name in ("spike", "rate_of_change", "flat_line", "gap", "noise", "drift"):
        assert flags[name] == NOT_EVALUATED
    assert result.stats.std is None
    assert result.stats.min == result.stats.max == 21.5


def test_single_reading_out_of_range_fails():
    """One reading outside the range still fails: a 4 outranks the too-few-readings suspect."""
    result = analyse(get_spec("pressure"), [1200.0])
    assert result.verdict == "fail"
    assert result.checks["gross_range"].flag == FAIL


def test_without_timestamps_gap_is_not_evaluated():
    """Without timestamps the gap check is 2, listed in notes, and the verdict still passes."""
    _, result = run("scd41_co2", timestamps=False)
    assert result.checks["gap"].flag == NOT_EVALUATED
    assert result.gaps is None
    assert any(note.startswith("gap:") for note in result.notes)
    assert result.verdict == "pass"
    assert result.checks["drift"].flag == PASS


def test_without_reference_accuracy_and_drift_are_not_evaluated():
    """Without reference values accuracy and drift are 2; noise uses first differences."""
    _, result = run("sht31_humidity", reference=False)
    assert result.checks["accuracy"].flag == NOT_EVALUATED
    assert result.checks["drift"].flag == NOT_EVALUATED
    assert result.accuracy is None
    assert result.noise_method == "first_difference"
    assert result.checks["noise"].flag == PASS
    assert result.verdict == "pass"


def test_faults_without_reference_are_still_caught():
    """Spikes, stuck-at and saturation need no reference values to be caught (QARTOD)."""
    for kind in ("spikes", "stuck_at", "saturation"):
        _, result = run("bme280_pressure", faults=[kind], reference=False)
        assert result.mode == "values"
        assert result.checks[EXPECTED_CHECK[kind]].flag == FAIL
        assert result.verdict == "fail"
    # Noise 5x the limit is only suspect as noise (2 sigma is far inside the 1 hPa
    # tolerance); without a reference, QARTOD's spike test on the values still fails it.
    _, result = run("bme280_pressure", faults=["noise"], reference=False)
    assert result.checks["noise"].flag == SUSPECT
    assert result.verdict != "pass"


def test_figures_match_what_was_injected():
    """Bias, noise and drift figures recover the injected values."""
    spec = get_spec("temperature")
    _, healthy = run("pt100_class_a")  # same seed: the same healthy bias underneath
    _, biased = run("pt100_class_a", faults=[{"kind": "bias", "offset": 0.5}])
    assert biased.accuracy is not None
    assert healthy.accuracy is not None
    assert biased.accuracy.bias - healthy.accuracy.bias == pytest.approx(0.5, abs=1e-3)
    noisy_rms = 0.05
    _, noisy = run("pt100_class_a", faults=[{"kind": "noise", "rms": noisy_rms}])
    assert noisy.noise_rms == pytest.approx(math.hypot(noisy_rms, spec.noise_limit / 4), rel=0.1)
    _, drifting = run("pt100_class_a", n=3600, faults=[{"kind": "drift", "rate_per_hour": 0.6}])
    assert drifting.drift_per_hour == pytest.approx(0.6, rel=0.05)


def test_gap_statistics_count_missing_readings():
    """Gap statistics count the gaps and estimate the readings they should have held."""
    _, result = run("ds18b20", faults=[{"kind": "dropouts", "count": 3, "length": 5}])
    assert result.gaps is not None
    assert result.gaps.gap_count == 3
    assert result.gaps.missing_estimate == 15
    assert result.gaps.max_interval_s == pytest.approx(6.0, abs=0.1)
    # 15 of 1215 readings (1.2 %) is within the spec's stated 5 %: suspect, not fail.
    assert (result.verdict, result.checks["gap"].flag) == ("suspect", SUSPECT)


def test_missing_data_beyond_the_stated_fraction_fails():
    """More missing readings than ``missing_fail_fraction`` fail the gap check."""
    _, result = run("ds18b20", faults=[{"kind": "dropouts", "count": 10, "length": 10}])
    assert (result.verdict, result.checks["gap"].flag) == ("fail", FAIL)


def test_non_increasing_timestamps_fail_the_gap_check():
    """A timestamp that does not increase is a gap FAIL at that reading."""
    spec = get_spec("humidity")
    sim = simulate(spec, n=100, seed=2)
    ts = sim.timestamps.copy()
    ts[40] = ts[39]
    result = analyse(spec, sim.values, ts, sim.reference)
    assert result.checks["gap"].flag == FAIL
    assert 40 in result.checks["gap"].fail_indices.tolist()


def test_pt100_tolerance_grows_with_temperature():
    """The same 0.5 degC error passes at 300 degC (class A: 0.75) but fails near 0 degC."""
    spec = get_spec("pt100_class_a")
    hot = np.full(100, 300.0)
    assert analyse(spec, hot + 0.5, reference=hot).checks["accuracy"].flag == PASS
    cold = np.full(100, 1.0)
    assert analyse(spec, cold + 0.5, reference=cold).checks["accuracy"].flag == FAIL


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"values": [1.0, math.nan]}, "values must be finite"),
        ({"values": [[1.0, 2.0]]}, "one-dimensional"),
        ({"timestamps": [0.0]}, "timestamps has 1 entries"),
        ({"reference": [1.0, math.inf]}, "reference must be finite"),
    ],
)
def test_malformed_input_raises(bad, message):
    """Non-finite, multi-dimensional or mismatched arrays raise ValueError."""
    args = {"values": [1.0, 2.0], "timestamps": None, "reference": None, **bad}
    with pytest.raises(ValueError, match=message):
        analyse(get_spec("co2"), args["values"], args["timestamps"], args["reference"])


def test_result_serialises_to_json_with_truncated_indices():
    """to_dict() is JSON-friendly, keeps the check order and can cut index lists."""
    _, result = run("sht45_humidity", faults=["spikes"])
    data = result.to_dict(max_indices=2)
    text = json.dumps(data)
    assert json.loads(text)["verdict"] == "fail"
    assert list(data["checks"]) == list(CHECK_ORDER)
    spike = data["checks"]["spike"]
    assert len(spike["fail_indices"]) == 2
    assert spike["fail_truncated"] is True
    assert spike["counts"]["4"] == result.checks["spike"].counts[FAIL]
    assert "fail_indices" not in result.to_dict(include_indices=False)["checks"]["spike"]
    assert result.flag == FAIL


def test_large_series_is_analysed_quickly():
    """200 000 readings with faults are analysed in well under a second (vectorised)."""
    spec = get_spec("temperature")
    sim = simulate(spec, n=200_000, seed=5, faults=["spikes", "stuck_at", "dropouts"])
    result = analyse(spec, sim.values, sim.timestamps, sim.reference)
    assert result.verdict == "fail"
    assert result.stats.count == sim.values.size

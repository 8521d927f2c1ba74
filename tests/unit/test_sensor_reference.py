"""Reference-aware verdicts (issue 13): rig stimuli, response time, GUM and ILAC-G8 rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sensor_backend.sensor.analysis import analyse
from sensor_backend.sensor.decision import false_accept_probability
from sensor_backend.sensor.qc import FAIL, NOT_EVALUATED, PASS, SUSPECT
from sensor_backend.sensor.response import first_order
from sensor_backend.sensor.specs import get_spec


def quantise(x, q):
    return np.round(x / q) * q


def tracking(spec, ref, t, *, sigma, seed=1, tau=None):
    """A healthy sensor: follows ``ref`` (lagged by tau), noise ``sigma``, quantised."""
    rng = np.random.default_rng(seed)
    seen = ref if tau is None else first_order(ref, t, tau)
    return quantise(seen + rng.normal(0.0, sigma, ref.size), spec.resolution)


def test_tracking_through_a_5_degc_per_minute_ramp_passes():
    """A Pt100 following a chamber ramp of 5 °C/min passes: the dynamics are judged on e."""
    spec = get_spec("pt100_class_a")
    t = np.arange(1800.0)
    ref = -20.0 + 5.0 / 60.0 * t  # 5 °C/min, 150 °C in 30 min
    x = tracking(spec, ref, t, sigma=0.003)
    result = analyse(spec, x, t, ref)
    assert result.mode == "reference"
    assert result.verdict == "pass", result.reasons
    # The same readings judged without the reference: QARTOD flags the ramp on the values.
    assert analyse(spec, x, t).checks["rate_of_change"].flag >= SUSPECT


def test_tracking_a_10_hpa_step_sequence_passes_and_reports_response():
    """A pressure controller stepping by 10 hPa: pass, one measured response per step."""
    spec = get_spec("bme280_pressure")
    levels = [1000.0, 1010.0, 1020.0, 1030.0, 1020.0, 1010.0, 1000.0]
    ref = np.repeat(levels, 120)
    t = np.arange(ref.size, dtype=float)
    x = tracking(spec, ref, t, sigma=0.002)
    result = analyse(spec, x, t, ref)
    assert result.verdict == "pass", result.reasons
    assert result.response is not None
    assert [s.size for s in result.response.steps] == [10.0, 10.0, 10.0, -10.0, -10.0, -10.0]
    assert all(s.t63_s == pytest.approx(1.0) for s in result.response.steps)
    cal = result.calibration
    assert cal is not None
    assert cal.gain.value == pytest.approx(1.0, abs=1e-4)
    assert cal.hysteresis.value is not None
    assert cal.hysteresis.value < 0.01
    # 1010 and 1020 hPa are visited twice, but from opposite sides: not a repeat.
    assert cal.repeatability.why is not None


def test_tracking_a_slow_sine_sweep_with_the_datasheet_lag_passes():
    """An SHT31 lagging a humidity sweep by its datasheet 8 s tau63 is not an accuracy error."""
    spec = get_spec("sht31_humidity")
    t = np.arange(3600.0)
    ref = 50.0 + 35.0 * np.sin(2 * math.pi * t / 600.0)  # up to 0.37 %RH/s
    x = tracking(spec, ref, t, sigma=0.05, tau=8.0)
    assert np.abs(x - ref).max() > spec.tol_abs  # the raw error leaves the tolerance
    result = analyse(spec, x, t, ref)
    assert result.verdict == "pass", result.reasons


def test_humidity_steps_measure_t63_and_t90_and_a_slow_sensor_is_caught():
    """Steps give t63 ~ tau and t90 ~ 2.3 tau; a sensor 4x slower than the datasheet fails.

    Its lag leaves the tolerance (accuracy fail) and its response time is suspect.
    """
    spec = get_spec("sht31_humidity")
    ref = np.repeat([30.0, 50.0, 70.0, 50.0, 30.0], 300)
    t = np.arange(ref.size, dtype=float)
    healthy = analyse(spec, tracking(spec, ref, t, sigma=0.05, tau=8.0), t, ref)
    assert healthy.verdict == "pass", healthy.reasons
    assert healthy.response is not None
    for step in healthy.response.steps:
        assert step.t63_s == pytest.approx(8.0, abs=1.5)
        assert step.t90_s == pytest.approx(8.0 * math.log(10), abs=2.0)
    slow = analyse(spec, tracking(spec, ref, t, sigma=0.05, tau=32.0), t, ref)
    assert slow.checks["response_time"].flag == SUSPECT
    assert slow.checks["accuracy"].flag == FAIL
    assert slow.verdict == "fail"


def test_a_sensor_stuck_while_its_reference_moves_fails():
    """A frozen output while the chamber ramps is a flat-line FAIL, named as such."""
    spec = get_spec("pt100_class_a")
    t = np.arange(1200.0)
    ref = 20.0 + 2.0 / 60.0 * t
    x = tracking(spec, ref, t, sigma=0.003)
    x[500:800] = x[500]
    result = analyse(spec, x, t, ref)
    assert result.verdict == "fail"
    assert result.checks["flat_line"].flag == FAIL
    assert set(result.checks["flat_line"].fail_indices.tolist()) <= set(range(500, 800))
    assert any(r.startswith("flat_line [datasheet tolerance]") for r in result.reasons)


def test_a_flat_output_with_a_steady_reference_is_only_suspect():
    """Stuck output in still air cannot be told from a perfect sensor: suspect (rig count)."""
    spec = get_spec("pt100_class_a")
    ref = np.full(300, 25.0)
    x = tracking(spec, ref, np.arange(300.0), sigma=0.003)
    x[100:200] = x[100]
    result = analyse(spec, x, None, ref)
    assert result.checks["flat_line"].flag == SUSPECT
    assert result.verdict == "suspect"
    assert "rig choice" in result.checks["flat_line"].source


def test_a_spike_of_the_error_is_caught_even_during_a_ramp():
    spec = get_spec("pt100_class_a")
    t = np.arange(600.0)
    ref = 20.0 + 5.0 / 60.0 * t
    x = tracking(spec, ref, t, sigma=0.003)
    x[300] += 1.0
    result = analyse(spec, x, t, ref)
    assert result.checks["spike"].fail_indices.tolist() == [300]
    assert result.aggregate_flags[300] == FAIL
    assert result.aggregate_flags[10] == PASS


def near_limit(rule):
    """A DS18B20 reading 0.44 °C high: inside ±0.5 °C, but not by the guard band."""
    spec = get_spec("ds18b20")
    rng = np.random.default_rng(3)
    ref = np.full(600, 25.0)
    x = quantise(ref + 0.44 + rng.normal(0.0, 0.02, ref.size), spec.resolution)
    return analyse(spec, x, None, ref, decision_rule=rule)


def test_guarded_and_simple_acceptance_differ_near_the_limit():
    """ILAC-G8: simple acceptance passes; guarded (w = U) puts it in the conditional zone."""
    simple, guarded = near_limit("simple"), near_limit("guarded")
    assert (simple.verdict, guarded.verdict) == ("pass", "suspect")
    assert simple.decision is not None
    assert guarded.decision is not None
    assert simple.decision.guard_band == 0.0
    assert guarded.decision.guard_band == pytest.approx(guarded.uncertainty.expanded, rel=0.01)
    assert guarded.decision.conditional_points > 0
    # Same worst point, same probability of false accept: the rule decides, not the data.
    assert simple.decision.false_accept_probability == pytest.approx(
        guarded.decision.false_accept_probability
    )
    assert 0.0 < guarded.decision.false_accept_probability < 0.5
    assert "guarded acceptance" in guarded.checks["accuracy"].message
    assert guarded.decision_rule_text is not None


def test_both_rules_fail_beyond_the_tolerance_and_pass_well_inside():
    spec = get_spec("ds18b20")
    ref = np.full(300, 25.0)
    x = tracking(spec, ref, np.arange(300.0), sigma=0.03)
    for rule in ("simple", "guarded"):
        assert analyse(spec, x + 0.625, None, ref, decision_rule=rule).verdict == "fail"
        assert analyse(spec, x + 0.125, None, ref, decision_rule=rule).verdict == "pass"


def test_uncertainty_budget_follows_the_gum():
    """U = 2 sqrt(u_ref^2 + (sigma/sqrt m)^2 + q^2/12), the reference default stated."""
    spec = get_spec("ds18b20")
    result = near_limit("guarded")
    budget = result.uncertainty
    assert budget is not None
    parts = {c.name: c for c in budget.components}
    assert set(parts) == {"reference", "noise", "resolution"}
    assert parts["reference"].standard_uncertainty == pytest.approx(spec.tol_abs / 4 / 2)
    assert "TUR 4:1" in parts["reference"].basis
    assert parts["resolution"].distribution == "rectangular"
    assert parts["resolution"].standard_uncertainty == pytest.approx(0.0625 / math.sqrt(12))
    assert parts["noise"].kind == "type A"
    combined = math.sqrt(sum(c.standard_uncertainty**2 for c in budget.components))
    assert budget.expanded == pytest.approx(2 * combined)
    stated = analyse(spec, np.full(50, 25.1), None, np.full(50, 25.0), reference_uncertainty=0.01)
    assert stated.uncertainty is not None
    ref_part = stated.uncertainty.components[0]
    assert ref_part.standard_uncertainty == pytest.approx(0.005)
    assert "stated" in ref_part.basis


def test_false_accept_probability_at_the_limits():
    assert false_accept_probability(1.0, 1.0, 0.1) == pytest.approx(0.5)
    assert false_accept_probability(0.8, 1.0, 0.1) == pytest.approx(0.0228, abs=1e-3)


def test_rig_noise_limit_only_makes_suspect_unless_the_tolerance_cannot_be_met():
    """DS18B20's noise limit is a rig choice: above it, suspect; 2 sigma > tolerance: fail."""
    spec = get_spec("ds18b20")
    rng = np.random.default_rng(5)
    ref = np.full(2000, 25.0)
    noisy = quantise(ref + rng.normal(0.0, 0.15, ref.size), spec.resolution)
    result = analyse(spec, noisy, None, ref)
    assert result.checks["noise"].flag == SUSPECT
    assert result.checks["noise"].source == "rig choice"
    very = quantise(ref + rng.normal(0.0, 0.3, ref.size), spec.resolution)
    assert analyse(spec, very, None, ref).checks["noise"].flag == FAIL


def test_every_reason_names_its_source():
    spec = get_spec("sht31_humidity")
    t = np.arange(1200.0)
    ref = np.full(t.size, 40.0)
    x = tracking(spec, ref, t, sigma=0.3) + 3.0
    result = analyse(spec, x, t, ref)
    assert result.verdict == "fail"
    for reason in result.reasons:
        assert any(s in reason for s in ("[datasheet", "[standard", "[rig choice", "[test plan"))


def test_calibration_recovers_offset_gain_and_allan_minimum():
    """A sweep with gain 1.002 and offset 0.3: both recovered within their uncertainty."""
    spec = get_spec("pt100_class_b")
    t = np.arange(4000.0)
    ref = 100.0 + 80.0 * np.sin(2 * math.pi * t / 2000.0)
    x = tracking(spec, 0.3 + 1.002 * ref, t, sigma=0.01)
    result = analyse(spec, x, t, ref)
    cal = result.calibration
    assert cal is not None
    assert cal.offset.value == pytest.approx(0.3, abs=cal.offset.uncertainty)
    assert cal.gain.value == pytest.approx(1.002, abs=max(cal.gain.uncertainty, 1e-5))
    assert cal.linearity.value is not None
    assert cal.allan
    assert cal.allan_minimum.at is not None
    assert cal.allan_minimum.value is not None
    # White noise: ADEV at tau = 1 period is sigma (first octave), slope about -1/2.
    assert cal.allan[0].adev == pytest.approx(0.01, rel=0.15)
    assert cal.allan_slope.value == pytest.approx(-0.5, abs=0.1)


def test_figures_the_data_cannot_support_say_why():
    spec = get_spec("scd41_co2")
    ref = np.full(40, 800.0)
    result = analyse(spec, ref + 5.0, None, ref)
    cal = result.calibration
    assert cal is not None
    assert cal.gain.value is None
    assert cal.gain.why is not None
    assert "spans" in cal.gain.why
    assert cal.hysteresis.why is not None
    assert result.checks["response_time"].flag == NOT_EVALUATED
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["mode"] == "reference"
    assert doc["calibration"]["gain"]["why"].startswith("not evaluated")
    assert doc["uncertainty"]["k"] == 2.0
    assert doc["aggregate_flag_counts"] == {"1": 40} or "1" in doc["aggregate_flag_counts"]


def test_without_a_reference_the_mode_is_values():
    result = analyse(get_spec("co2"), np.full(50, 800.0) + np.arange(50) % 3)
    assert result.mode == "values"
    assert result.checks["attenuated_signal"].flag == NOT_EVALUATED
    assert result.decision is None


def test_hysteresis_and_repeatability_of_a_dwell_and_step_sequence():
    """Up and down the same set points twice, reading 0.1 °C low on the way down.

    Hysteresis is ~0.1 °C; repeatability (same set point, same direction) is near the noise
    of a set point's mean, not the hysteresis.
    """
    spec = get_spec("pt100_class_b")
    levels = [0.0, 25.0, 50.0, 75.0, 100.0, 75.0, 50.0, 25.0, 0.0]
    ref = np.repeat(levels * 2, 100)
    t = np.arange(ref.size, dtype=float)
    x = tracking(spec, ref, t, sigma=0.005)
    # Approached from above: the last change of the reference was downwards.
    change = np.flatnonzero(np.diff(ref)) + 1
    last = np.zeros(ref.size, dtype=int)
    last[change] = change
    last = np.maximum.accumulate(last)
    falling = (last > 0) & (ref < ref[np.maximum(last - 1, 0)])
    x[falling] -= 0.1
    result = analyse(spec, x, t, ref)
    cal = result.calibration
    assert cal is not None
    assert cal.hysteresis.value == pytest.approx(0.1, abs=0.02)
    assert cal.repeatability.value is not None
    assert cal.repeatability.value < 0.01


def test_the_vectorised_first_order_response_equals_the_recursion():
    """response.first_order (blockwise, exact) matches y[n] = a y[n-1] + (1 - a) x[n]."""
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.uniform(0.5, 1.5, 5000))
    x = rng.normal(1000.0, 300.0, t.size)
    y = first_order(x, t, 3.0)
    expected = np.empty_like(x)
    expected[0] = x[0]
    for i in range(1, x.size):
        a = math.exp(-(t[i] - t[i - 1]) / 3.0)
        expected[i] = a * expected[i - 1] + (1.0 - a) * x[i]
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-9)


def test_drift_is_told_from_lag_and_gain_on_a_sweep():
    """A lagging, slightly mis-scaled SHT31 on a sweep shows no drift; a real one is caught."""
    spec = get_spec("sht31_humidity")
    t = np.arange(3600.0)
    ref = 50.0 + 20.0 * np.sin(2 * math.pi * t / 1500.0)
    x = tracking(spec, ref, t, sigma=0.05, tau=8.0) + 0.6 + 0.01 * (ref - 50.0)
    steady = analyse(spec, x, t, ref)
    assert steady.checks["drift"].flag == PASS, steady.checks["drift"].message
    assert steady.drift_per_hour == pytest.approx(0.0, abs=0.2)
    drifting = analyse(spec, x + 3.0 * t / 3600.0, t, ref)
    assert drifting.checks["drift"].flag == SUSPECT
    assert drifting.drift_per_hour == pytest.approx(3.0, abs=0.2)

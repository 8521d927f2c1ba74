"""A seeded slice of the validation corpus meets issue 13's published targets.

Every fault at 2x tolerance or more is caught (verdict not ``pass``), no healthy sensor
fails, at most 2 % of healthy sensors are suspect. The full corpus:
``python -m sensor_backend.validation``.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from sensor_backend.sensor.specs import BUILTIN_SPECS
from sensor_backend.validation import corpus
from sensor_backend.validation.corpus import SCENARIOS, make_case
from sensor_backend.validation.score import run, table


@pytest.fixture(scope="module")
def score():
    return run(sorted(BUILTIN_SPECS), seeds=[101], healthy_seeds=[101, 102], n=600)


def test_every_fault_at_twice_the_tolerance_is_caught(score):
    assert score.rates()["faults_at_2x"] > 300
    assert score.missed == []


def test_no_healthy_sensor_fails_and_few_are_suspect(score):
    rates = score.rates()
    assert rates["healthy"] == len(BUILTIN_SPECS) * len(SCENARIOS) * 2
    assert score.healthy_fail == []
    assert rates["healthy_suspect_rate"] <= 0.02


def test_the_confusion_matrix_lists_every_type_and_fault(score):
    text = table(score)
    for name in BUILTIN_SPECS:
        assert f"**{name}**" in text
    for fault in corpus.FAULTS:
        assert f"| {fault} |" in text


def test_corpus_is_seeded_and_realistic():
    """Same seed, same series; DS18B20 readings sit on its 1/16 °C grid."""
    spec = BUILTIN_SPECS["ds18b20"]
    a = make_case(spec, "ramp", "healthy", 0.0, 7)
    b = make_case(spec, "ramp", "healthy", 0.0, 7)
    np.testing.assert_array_equal(a.values, b.values)
    steps = a.values / 0.0625
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    ramp_rate = np.polyfit(a.timestamps, a.reference, 1)[0] * 60.0
    assert 0.5 < ramp_rate < 5.0  # °C/min, as a climate chamber does


def test_the_corpus_does_not_use_the_service_simulator():
    tree = ast.parse(inspect.getsource(corpus))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any("simulate" in m for m in imported)

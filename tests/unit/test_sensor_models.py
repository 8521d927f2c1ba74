"""Parsing of POST /test bodies: sources, strict arrays, limits, fingerprints, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sensor_backend.core.errors import BadRequest, ServiceError
from sensor_backend.sensor.models import (
    InvalidRequestError,
    check_idempotency_key,
    parse_test_request,
)
from sensor_backend.sensor.notifications import finite
from sensor_backend.sensor.simulate import DEFAULT_N, SpikesFault

LIMIT = 1000


def parse(body: object, sensor_type: str = "temperature", limit: int = LIMIT):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_test_request(raw, sensor_type, max_readings=limit)


def error_of(body: object, limit: int = LIMIT) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        parse(body, limit=limit)
    return info.value


@pytest.mark.parametrize("raw", [b"", b"  \n", b"{}"])
def test_no_body_means_a_default_simulation(raw):
    """An empty body (the notes' curl) or {} asks for a simulated test with the defaults."""
    request = parse(raw).request
    assert request.readings is None
    assert request.simulate is None
    assert request.device_id is None


def test_readings_become_float64_arrays():
    """Integers and floats are accepted and become float64 arrays of the same length."""
    body = {"device_id": "rig-1", "readings": {"values": [1, 2.5, 3], "reference": [1, 2, 3]}}
    readings = parse(body).request.readings
    assert readings is not None
    assert readings.values.dtype == np.float64
    assert readings.values.tolist() == [1.0, 2.5, 3.0]
    assert readings.timestamps is None


def test_faults_accept_bare_kinds_and_objects():
    """Faults may be given as a kind name or as an object with parameters."""
    body = {"simulate": {"n": 300, "seed": 4, "faults": ["spikes", {"kind": "bias", "offset": 2}]}}
    sim = parse(body).request.simulate
    assert sim is not None
    assert sim.n == 300
    assert isinstance(sim.faults[0], SpikesFault)
    assert sim.faults[1].kind == "bias"


def test_simulate_defaults():
    """simulate: {} uses the engine's default length and leaves the seed to be drawn."""
    sim = parse({"simulate": {}}).request.simulate
    assert sim is not None
    assert (sim.n, sim.seed, sim.faults) == (DEFAULT_N, None, [])


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"device_id": "d", "readings": {"values": [1, "2"]}}, "readings.values", "element 1"),
        ({"device_id": "d", "readings": {"values": [1, True]}}, "readings.values", "element 1"),
        ({"device_id": "d", "readings": {"values": [1, None]}}, "readings.values", "element 1"),
        ({"device_id": "d", "readings": {"values": [[1]]}}, "readings.values", "element 0"),
        ({"device_id": "d", "readings": {"values": 5}}, "readings.values", "array"),
        ({"device_id": "d", "readings": {"values": []}}, "readings", "at least one"),
        (
            {"device_id": "d", "readings": {"values": [1, 2], "timestamps": [0]}},
            "readings",
            "timestamps has 1 entries for 2",
        ),
        (
            {"device_id": "d", "readings": {"values": [1, 2], "reference": [1, 2, 3]}},
            "readings",
            "reference has 3 entries for 2",
        ),
        ({"readings": {"values": [1, 2]}}, "body", "device_id is required"),
        ({"simulate": {}, "device_id": "d", "readings": {"values": [1]}}, "body", "not both"),
        ({"simulate": {"faults": ["melting"]}}, "simulate.faults[0]", "melting"),
        ({"simulate": {"n": 0}}, "simulate.n", "greater than or equal to 1"),
        ({"simulate": {"seed": -1}}, "simulate.seed", "greater than or equal to 0"),
        ({"device_id": "has space"}, "device_id", "pattern"),
        ({"device_id": "x" * 129}, "device_id", "pattern"),
        ({"spec_overrides": {"name": "other"}}, "body", "cannot rename"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
        ([1, 2], "body", "object"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(body, field, words):
    """Each malformed request is a 422 whose first field and message say what is wrong."""
    error = error_of(body)
    assert isinstance(error, InvalidRequestError)
    assert error.status_code == 422
    first = error.body()["fields"][0]
    assert first["field"] == field
    assert words in first["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"device_id": "d", "readings": {"values": [1, NaN]}}',
        b'{"device_id": "d", "readings": {"values": [1, Infinity]}}',
        b'{"device_id": "d", "readings": {"values": [1, -Infinity]}}',
        b'{"device_id": "d", "readings": {"values": [1, 1e400]}}',
        b'{"device_id": "d", "readings": {"values": [1, ' + b"9" * 400 + b"]}}",
    ],
)
def test_non_finite_numbers_are_refused(raw):
    """NaN, Infinity and literals beyond float64 are refused, naming the element."""
    error = error_of(raw)
    assert error.status_code == 422
    assert "element 1 is not a finite number" in error.message


@pytest.mark.parametrize("raw", [b"{not json", b'{"device_id": "d",}', b"\xff\xfe"])
def test_broken_json_is_400(raw):
    """A body that is not JSON at all is a 400 that says so."""
    error = error_of(raw)
    assert isinstance(error, BadRequest)
    assert "not valid JSON" in error.message


def test_more_readings_than_the_limit_are_refused_before_conversion():
    """More readings than max_readings is a 422 naming the limit (also for simulate.n)."""
    error = error_of({"device_id": "d", "readings": {"values": [0] * 11}}, limit=10)
    assert "at most 10 readings" in error.message
    error = error_of({"simulate": {"n": 11}}, limit=10)
    assert "at most 10 readings" in error.message


def test_a_million_bad_elements_cost_one_error():
    """Every element bad still yields one error per array, not one per element."""
    raw = b'{"device_id": "d", "readings": {"values": [' + b",".join([b'"x"'] * 100_000) + b"]}}"
    error = error_of(raw, limit=200_000)
    assert error.body()["error_count"] == 1


def test_fingerprint_ignores_formatting_and_key_order():
    """Whitespace and key order do not change the fingerprint; content and type do."""
    a = b'{"device_id":"d","readings":{"values":[1,2],"reference":[1,2]}}'
    b = b'{ "readings": {"reference": [1.0, 2.0], "values": [1, 2]},\n "device_id": "d" }'
    c = b'{"device_id":"d","readings":{"values":[1,3],"reference":[1,2]}}'
    fa, fb, fc = (parse(x).fingerprint for x in (a, b, c))
    assert fa == fb
    assert fa != fc
    assert fa != parse_test_request(a, "humidity", max_readings=LIMIT).fingerprint


def test_fingerprint_tells_timestamps_from_reference():
    """The same numbers as timestamps or as reference are different requests."""
    ts = {"device_id": "d", "readings": {"values": [1, 2], "timestamps": [1, 2]}}
    ref = {"device_id": "d", "readings": {"values": [1, 2], "reference": [1, 2]}}
    assert parse(ts).fingerprint != parse(ref).fingerprint


@pytest.mark.parametrize("key", ["abc-123", "a" * 255, "uuid:0b7e"])
def test_good_idempotency_keys(key):
    """Visible ASCII keys up to 255 characters are accepted."""
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "a" * 256, "with space", "naïve", "tab\tkey"])
def test_bad_idempotency_keys(key):
    """Empty, overlong, spaced or non-ASCII keys are a 400."""
    with pytest.raises(BadRequest):
        check_idempotency_key(key)


def test_finite_replaces_non_finite_floats():
    """Results are made JSON-safe: NaN and infinities become None at any depth."""
    doc = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "x", "e": 2}
    assert finite(doc) == {"a": None, "b": [1.0, None, {"c": None}], "d": "x", "e": 2}


def test_decision_rule_and_reference_uncertainty_fold_into_the_spec_overrides():
    """Issue 13's request fields reach the spec (and so the stored job) as overrides."""
    raw = (
        b'{"device_id": "rig", "readings": {"values": [1, 2, 3]},'
        b' "decision_rule": "simple", "reference_uncertainty": 0.05,'
        b' "spec_overrides": {"tol_abs": 0.4}}'
    )
    parsed = parse_test_request(raw, "ds18b20", max_readings=10)
    assert parsed.request.analysis_overrides() == {
        "tol_abs": 0.4,
        "decision_rule": "simple",
        "reference_uncertainty": 0.05,
    }
    assert parse_test_request(b"{}", "ds18b20", max_readings=10).request.analysis_overrides() == {}
    other = parse_test_request(raw.replace(b"simple", b"guarded"), "ds18b20", max_readings=10)
    assert other.fingerprint != parsed.fingerprint
    with pytest.raises(ServiceError):
        parse_test_request(b'{"decision_rule": "lenient"}', "ds18b20", max_readings=10)
    with pytest.raises(ServiceError):
        parse_test_request(b'{"reference_uncertainty": -1}', "ds18b20", max_readings=10)

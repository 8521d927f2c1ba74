"""The sensor service's HTTP API as real processes: two sensor replicas, auth, events, broker.

Every endpoint, every bad input, idempotency, each fault kind found end to end, rigs'
readings with a reference, a million readings, and the completion events reaching the
event service once each.
"""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import numpy as np
import pytest
from harness import Harness, eventually, wait_for

from sensor_backend.sensor.app import build_app
from sensor_backend.sensor.settings import SensorSettings
from sensor_backend.sensor.simulate import simulate
from sensor_backend.sensor.specs import BUILTIN_SPECS, get_spec
from sensor_backend.validation.api import Client
from sensor_backend.validation.score import cases, tally, verdict_of

pytestmark = pytest.mark.integration
RELAY_PASSWORD = "relay-password-for-tests"  # noqa: S105 - a test fixture's password
USER_PASSWORD = "sensor user password"  # noqa: S105
MIB = 1024 * 1024
EXPECTED_CHECK = {
    "bias": "accuracy",
    "noise": "noise",
    "drift": "drift",
    "spikes": "spike",
    "stuck_at": "flat_line",
    "dropouts": "gap",
    "saturation": "saturation",
}


@pytest.fixture(scope="module")
def system():
    harness = Harness(
        {"postgres", "broker", "auth", "events", "sensor"},
        offset_start=35000,
        replicas={"sensor": 2},
        env={"SERVICE_ACCOUNT_PASSWORD": RELAY_PASSWORD},
    ).start()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def user_headers(system):
    auth = system.url("auth")
    body = {"username": "bench-user", "password": USER_PASSWORD}
    assert httpx.post(f"{auth}/register", json=body, timeout=10).status_code == 201
    token = httpx.post(f"{auth}/token", data=body, timeout=10).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def post(system, path, *, replica="sensor", headers=None, **kw) -> httpx.Response:
    return httpx.post(
        f"{system.url(replica)}{path}", headers=headers or system.headers(), timeout=30, **kw
    )


def get(system, path, *, replica="sensor", **kw) -> httpx.Response:
    return httpx.get(f"{system.url(replica)}{path}", headers=system.headers(), timeout=10, **kw)


def finished(system, test_id: str, timeout: float = 30) -> dict:
    """The test's document once it is completed or failed."""

    def done():
        doc = get(system, f"/test/{test_id}").json()
        return doc if doc["status"] in {"completed", "failed"} else None

    doc = wait_for(done, timeout, interval=0.1)
    assert doc, f"test {test_id} did not finish: {get(system, f'/test/{test_id}').json()}"
    return doc


def run(system, sensor_type, body=None, **kw) -> dict:
    response = post(system, f"/test/{sensor_type}", json=body, **kw)
    assert response.status_code == 202, response.text
    return finished(system, response.json()["test_id"])


def rig_readings(name: str, n: int = 600, seed: int = 5, bias: float = 0.0) -> dict:
    sim = simulate(BUILTIN_SPECS[name], n=n, seed=seed)
    return {
        "values": (sim.values + bias).tolist(),
        "timestamps": sim.timestamps.tolist(),
        "reference": sim.reference.tolist(),
    }


# ---------------------------------------------------------------- submitting and results


def test_the_notes_curl_runs_a_default_simulation(system):
    """POST /test/sensor/temperature with no body: 202, Location, then a passing result."""
    response = post(system, "/test/sensor/temperature")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["location"] == body["links"]["self"] == f"/test/{body['test_id']}"
    doc = finished(system, body["test_id"])
    assert (doc["status"], doc["verdict"], doc["sensor_type"]) == (
        "completed",
        "pass",
        "pt100_class_a",
    )
    assert doc["device_id"].startswith("sim-")
    assert doc["source"] == "simulate"
    assert doc["params"]["simulate"]["n"] == 600
    assert doc["result"]["stats"]["count"] == 600
    assert doc["result"]["checks"]["gross_range"]["flag"] == 1


@pytest.mark.parametrize("name", sorted(BUILTIN_SPECS))
def test_a_healthy_simulated_sensor_passes(system, name):
    """Every built-in type's healthy simulation passes with no reasons."""
    doc = run(system, name, {"device_id": f"healthy-{name}", "simulate": {"seed": 3}})
    assert doc["verdict"] == "pass", doc["result"]["reasons"]
    assert doc["result"]["reasons"] == []


@pytest.mark.parametrize("kind", sorted(EXPECTED_CHECK))
def test_each_fault_kind_is_detected_through_the_api(system, kind):
    """A simulated fault is caught by the check that looks for it.

    Issue 13: it fails where the datasheet is violated (bias, saturation), else it may be
    suspect (a rig-choice threshold saw it).
    """
    body = {"simulate": {"n": 1200, "seed": 2, "faults": [kind]}}
    doc = run(system, "temperature", body)
    assert doc["verdict"] != "pass"
    assert doc["result"]["checks"][EXPECTED_CHECK[kind]]["flag"] in {3, 4}
    if kind in {"bias", "saturation"}:
        assert (doc["verdict"], doc["result"]["checks"][EXPECTED_CHECK[kind]]["flag"]) == (
            "fail",
            4,
        )
    assert doc["result"]["simulation"]["injected"][kind] > 0
    assert doc["result"]["mode"] == "reference"


def test_a_chamber_ramp_tracked_by_the_sensor_passes(system):
    """5 °C/min with a Pt100 that follows it: pass, judged on the error, with its figures."""
    t = np.arange(1200.0)
    ref = 20.0 + 5.0 / 60.0 * t
    noise = np.random.default_rng(4).normal(0.0, 0.003, t.size)
    body = {
        "device_id": "rig-ramp",
        "readings": {
            "values": np.round(ref + noise, 3).tolist(),
            "timestamps": t.tolist(),
            "reference": ref.tolist(),
        },
    }
    doc = run(system, "temperature", body)
    assert doc["verdict"] == "pass", doc["result"]["reasons"]
    result = doc["result"]
    assert result["mode"] == "reference"
    assert result["uncertainty"]["k"] == 2.0
    assert result["decision"]["rule"] == "guarded"
    assert result["calibration"]["gain"]["value"] == pytest.approx(1.0, abs=1e-3)
    series = get(system, f"/test/{doc['test_id']}/readings").json()
    assert set(series["flags"]) == {1}  # worst of the point tests, reading by reading


def test_the_decision_rule_and_reference_uncertainty_come_with_the_request(system):
    """Near the limit, simple acceptance passes and the default guarded rule is suspect."""
    ref = np.full(600, 25.0)
    noise = np.random.default_rng(3).normal(0.0, 0.02, ref.size)
    values = (np.round((ref + 0.44 + noise) / 0.0625) * 0.0625).tolist()
    readings = {"values": values, "reference": ref.tolist()}
    verdicts = {}
    for rule in ("simple", "guarded"):
        body = {
            "device_id": "rig-limit",
            "readings": readings,
            "decision_rule": rule,
            "reference_uncertainty": 0.1,
        }
        doc = run(system, "ds18b20", body)
        assert doc["spec"]["decision_rule"] == rule
        assert doc["result"]["uncertainty"]["components"][0]["basis"].endswith("(stated)")
        verdicts[rule] = doc["verdict"]
    assert verdicts == {"simple": "pass", "guarded": "suspect"}


def test_a_spike_is_flagged_in_the_readings_series(system):
    """GET /test/{id}/readings carries the aggregate QARTOD flag of each point."""
    readings = rig_readings("sht45_humidity", seed=8)
    readings["values"][300] += 10.0
    doc = run(system, "humidity", {"device_id": "rig-spike", "readings": readings})
    assert doc["verdict"] == "fail"
    series = get(system, f"/test/{doc['test_id']}/readings").json()
    flags = dict(zip(series["index"], series["flags"], strict=True))
    assert flags[300] == 4
    assert flags[100] == 1


def test_a_rigs_readings_with_reference_pass(system):
    """Readings a rig sends, with timestamps and reference values, within spec pass."""
    body = {"device_id": "rig-7/sht45", "readings": rig_readings("sht45_humidity")}
    doc = run(system, "humidity", body)
    assert (doc["verdict"], doc["source"], doc["n_readings"]) == ("pass", "readings", 600)
    assert doc["result"]["checks"]["accuracy"]["flag"] == 1
    assert doc["params"]["readings"] == {"timestamps": True, "reference": True}


def test_a_rigs_biased_readings_fail_accuracy(system):
    """The same rig reading 3 %RH high fails the accuracy check against its reference."""
    body = {"device_id": "rig-7/sht45", "readings": rig_readings("sht45_humidity", bias=3.0)}
    doc = run(system, "humidity", body)
    assert doc["verdict"] == "fail"
    assert doc["result"]["checks"]["accuracy"]["flag"] == 4
    assert doc["result"]["accuracy"]["bias"] == pytest.approx(3.0, abs=0.3)


def test_input_the_engine_cannot_use_ends_failed_at_once(system):
    """A fault that does not fit the series fails the test on its first attempt, with why."""
    device = f"bad-sim-{uuid.uuid4().hex[:8]}"
    body = {"device_id": device, "simulate": {"n": 10, "faults": [{"kind": "spikes", "count": 50}]}}
    doc = run(system, "temperature", body)
    assert (doc["status"], doc["attempts"], doc["verdict"], doc["result"]) == (
        "failed",
        1,
        None,
        None,
    )
    assert doc["error"] == "invalid input: 10 readings cannot hold 50 isolated spikes"
    params = {"subject": device, "type": "sensor.test.failed"}

    def logged():
        response = httpx.get(
            f"{system.url('events')}/logs", params=params, headers=system.headers(), timeout=10
        )
        return response.json()["items"]

    assert wait_for(logged, 20)
    assert [item["id"] for item in logged()] == [doc["event"]["id"]]


def test_spec_overrides_change_the_verdict(system):
    """A tolerance override is applied to this test only and is stored with it."""
    readings = rig_readings("sht45_humidity", bias=3.0)
    body = {"device_id": "rig-8", "readings": readings, "spec_overrides": {"tol_abs": 5.0}}
    doc = run(system, "humidity", body)
    assert doc["verdict"] == "pass"
    assert doc["spec"]["tol_abs"] == 5.0


def test_a_million_readings(system):
    """1,000,000 readings with timestamps and reference are accepted and analysed."""
    spec = get_spec("temperature")
    sim = simulate(spec, n=1_000_000, seed=9)
    body = {
        "device_id": "rig-big",
        "readings": {
            "values": np.round(sim.values, 3).tolist(),
            "timestamps": np.round(sim.timestamps, 4).tolist(),
            "reference": np.round(sim.reference, 4).tolist(),
        },
    }
    doc = run(system, "temperature", body)
    assert doc["status"] == "completed"
    assert doc["result"]["stats"]["count"] == 1_000_000
    assert doc["verdict"] == "pass", doc["result"]["reasons"]


# ---------------------------------------------------------------- idempotency


def test_idempotency_key_replays_the_same_test(system, user_headers):
    """Same key and body: the same test again (Idempotent-Replayed), and no duplicate row."""
    device = f"idem-{uuid.uuid4().hex[:8]}"
    body = {"device_id": device, "simulate": {"seed": 1}}
    headers = {**user_headers, "Idempotency-Key": f"key-{device}"}
    first = post(system, "/test/co2", json=body, headers=headers)
    again = post(system, "/test/co2", json=body, headers=headers, replica="sensor-2")
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["test_id"] == again.json()["test_id"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    listed = get(system, "/tests", params={"device_id": device}).json()
    assert listed["count"] == 1


def test_idempotency_key_with_another_body_is_422(system, user_headers):
    """Reusing a key for a different body is refused with 422 naming the header."""
    headers = {**user_headers, "Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    assert (
        post(system, "/test/co2", json={"simulate": {"seed": 1}}, headers=headers).status_code
        == 202
    )
    response = post(system, "/test/co2", json={"simulate": {"seed": 2}}, headers=headers)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "Idempotency-Key"


def test_idempotency_keys_belong_to_their_caller(system, user_headers):
    """Two callers using the same key get two different tests."""
    headers = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    mine = post(system, "/test/co2", headers={**user_headers, **headers})
    theirs = post(system, "/test/co2", headers={**system.headers(), **headers})
    assert mine.json()["test_id"] != theirs.json()["test_id"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (b"{not json", 400, None),
        # NaN is no JSON number: the input guard at the edge refuses it, naming the element.
        (b'{"device_id": "d", "readings": {"values": [1, NaN]}}', 422, "body.readings.values[1]"),
        (b'{"device_id": "d", "readings": {"values": [1, 1e999]}}', 422, "readings.values"),
        (b'{"device_id": "d", "readings": {"values": ["1"]}}', 422, "readings.values"),
        (b'{"device_id": "d", "readings": {"values": [1, 2], "reference": [1]}}', 422, "readings"),
        (b'{"readings": {"values": [1, 2]}}', 422, "body"),
        (b'{"device_id": "d", "readings": {"values": [1]}, "simulate": {}}', 422, "body"),
        (b'{"simulate": {"faults": ["gremlins"]}}', 422, "simulate.faults[0]"),
        (b'{"spec_overrides": {"tol_abs": -1}}', 422, "spec_overrides.tol_abs"),
        (b'{"spec_overrides": {"no_such_field": 1}}', 422, "spec_overrides.no_such_field"),
        (b'{"simulate": {"n": 1000001}}', 422, "simulate"),
    ],
)
def test_bad_bodies_are_clear_4xx(system, content, status, field):
    """Broken JSON, non-finite or non-numeric readings, bad shapes: 4xx JSON naming the field."""
    response = post(
        system,
        "/test/temperature",
        content=content,
        headers={**system.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    doc = response.json()
    assert doc["error"] in {"bad_request", "validation_error"}
    if field is not None:
        assert doc["fields"][0]["field"] == field


def test_more_readings_than_the_maximum_is_422(system):
    """1,000,001 readings (the default maximum is a million) are refused with the limit."""
    content = b'{"device_id": "d", "readings": {"values": [' + b"0," * 1_000_000 + b"0]}}"
    response = post(
        system,
        "/test/temperature",
        content=content,
        headers={**system.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "at most 1000000 readings" in response.json()["message"]


def test_a_body_over_the_size_limit_is_413(system):
    """A body over 64 MiB is refused by its Content-Length before it is read."""
    response = post(
        system,
        "/test/temperature",
        content=b" " * (64 * MIB + 1),
        headers={**system.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_unknown_sensor_type_is_404_listing_the_known_ones(system):
    """An unknown type answers 404 with every name a test may use."""
    response = post(system, "/test/thermocouple")
    assert response.status_code == 404
    known = response.json()["known"]
    assert {"temperature", "humidity", "pt100_class_a", "scd41_co2"} <= set(known)


def test_a_bad_idempotency_key_is_400(system):
    """An Idempotency-Key with spaces is refused."""
    response = post(
        system, "/test/temperature", headers={**system.headers(), "Idempotency-Key": "a b"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(("path", "status"), [(f"/test/{uuid.uuid4()}", 404), ("/test/42", 422)])
def test_unknown_and_malformed_test_ids(system, path, status):
    """An unknown test id is 404, a malformed one 422."""
    assert get(system, path).status_code == status


# ---------------------------------------------------------------- listing and types


def test_list_tests_filters_and_paginates(system):
    """GET /tests filters by device, type, verdict and status, newest first, with a cursor."""
    device = f"list-{uuid.uuid4().hex[:8]}"
    ids = [
        run(system, "temperature", {"device_id": device, "simulate": {"faults": faults}})["test_id"]
        for faults in ([], ["bias"], [])  # bias always fails (spikes may be only suspect)
    ]
    page = get(system, "/tests", params={"device_id": device, "limit": 2}).json()
    assert [i["test_id"] for i in page["items"]] == ids[::-1][:2]
    rest = get(system, "/tests", params={"device_id": device, "limit": 2, "before": page["next"]})
    assert [i["test_id"] for i in rest.json()["items"]] == ids[:1]
    failing = get(system, "/tests", params={"device_id": device, "verdict": "fail"}).json()
    assert [i["test_id"] for i in failing["items"]] == [ids[1]]
    by_alias = get(system, "/tests", params={"device_id": device, "sensor_type": "temperature"})
    assert by_alias.json()["count"] == 3
    completed = get(system, "/tests", params={"device_id": device, "status": "completed"})
    assert completed.json()["count"] == 3
    assert get(system, "/tests", params={"status": "bogus"}).status_code == 422


def test_sensor_types_list_and_get(system):
    """Built-ins are listed with their datasheet sources; an alias resolves to its spec."""
    listed = get(system, "/sensor-types").json()
    names = {item["name"] for item in listed["items"]}
    assert set(BUILTIN_SPECS) <= names
    assert listed["aliases"]["temperature"] == "pt100_class_a"
    one = get(system, "/sensor-types/humidity").json()
    assert (one["name"], one["builtin"], one["aliases"]) == ("sht45_humidity", True, ["humidity"])
    assert one["sources"]
    missing = get(system, "/sensor-types/nope")
    assert missing.status_code == 404
    assert "ds18b20" in missing.json()["known"]


def test_admin_defines_a_sensor_type_and_tests_use_it(system, user_headers):
    """POST /sensor-types (admin) stores a type that tests then use; names are not reused."""
    spec = get_spec("ds18b20").model_dump(mode="json")
    spec |= {"name": "ds18b20_batch7", "tol_abs": 0.8, "sources": ["batch 7 acceptance"]}
    assert post(system, "/sensor-types", json=spec, headers=user_headers).status_code == 403
    created = post(system, "/sensor-types", json=spec)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/sensor-types/ds18b20_batch7"
    assert post(system, "/sensor-types", json=spec).status_code == 409
    assert post(system, "/sensor-types", json={**spec, "name": "humidity"}).status_code == 409
    bad = post(system, "/sensor-types", json={**spec, "name": "Bad Name"})
    assert bad.status_code == 422
    assert post(system, "/sensor-types", json={**spec, "range_max": -100}).status_code == 422
    fetched = get(system, "/sensor-types/ds18b20_batch7", replica="sensor-2").json()
    assert (fetched["builtin"], fetched["tol_abs"]) == (False, 0.8)
    doc = run(system, "ds18b20_batch7", {"simulate": {"seed": 1}})
    assert (doc["sensor_type"], doc["verdict"], doc["spec"]["tol_abs"]) == (
        "ds18b20_batch7",
        "pass",
        0.8,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/test/temperature"),
        ("POST", "/test/sensor/temperature"),
        ("GET", f"/test/{uuid.uuid4()}"),
        ("GET", "/tests"),
        ("GET", "/sensor-types"),
        ("GET", "/sensor-types/humidity"),
        ("POST", "/sensor-types"),
    ],
)
def test_every_endpoint_needs_a_token(system, method, path):
    """Without a bearer token every endpoint but health and metrics answers 401."""
    response = httpx.request(method, f"{system.url('sensor')}{path}", timeout=10)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


# ---------------------------------------------------------------- replicas, health, events


def test_replicas_share_the_queue_and_each_test_completes_once(system):
    """40 tests submitted to both replicas complete once each, with one event each."""
    device = f"shared-{uuid.uuid4().hex[:8]}"
    ids = [
        post(system, "/test/temperature", json={"device_id": device}, replica=replica).json()[
            "test_id"
        ]
        for replica in ("sensor", "sensor-2") * 20
    ]
    docs = [finished(system, test_id) for test_id in ids]
    assert {d["status"] for d in docs} == {"completed"}
    assert {d["attempts"] for d in docs} == {1}
    workers = {d["processed_by"].split("/")[0] for d in docs}
    assert workers == {"sensor", "sensor-2"}, workers
    events = system.url("events")

    def logged():
        response = httpx.get(
            f"{events}/logs",
            params={"subject": device, "type": "sensor.test.completed", "limit": 100},
            headers=system.headers(),
            timeout=10,
        )
        return response.json()["items"]

    assert wait_for(lambda: len(logged()) >= 40, 30)
    items = logged()
    assert len(items) == 40
    assert {i["id"] for i in items} == {d["event"]["id"] for d in docs}
    assert {i["verdict"] for i in items} == {"pass"}


def test_completion_event_carries_the_verdict_and_metrics(system):
    """The delivered event: CloudEvents attributes, subject = device, data with key metrics."""
    device = f"evt-{uuid.uuid4().hex[:8]}"
    doc = run(system, "pressure", {"device_id": device, "simulate": {"faults": ["bias"]}})
    assert wait_for(
        lambda: get(system, f"/test/{doc['test_id']}").json()["event"]["status"] == "sent", 20
    )

    def logged():
        response = httpx.get(
            f"{system.url('events')}/logs",
            params={"subject": device},
            headers=system.headers(),
            timeout=10,
        )
        return response.json()["items"]

    assert wait_for(logged, 20)
    [item] = logged()
    assert item["id"] == doc["event"]["id"]
    assert (item["type"], item["source"], item["sensor_type"], item["verdict"]) == (
        "sensor.test.completed",
        "/sensor-service",
        "bme280_pressure",
        "fail",
    )


async def test_a_misconfigured_events_url_is_retried_not_dead(system, tmp_path):
    """A 404 from the events endpoint (a wrong URL) is retried, never dead-lettered.

    Fixing the setup cures a 404 (core/event_limits.RETRYABLE_4XX), so the event waits in
    the outbox with the reason; refusals of the event itself (413, 422) are dead-lettered
    (tests/integration/test_event_contract.py, against a real event service).
    """
    admin = await asyncpg.connect(system.url("postgres"))
    name = f"dead_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    settings = SensorSettings(
        database_url=system.url("postgres").rsplit("/", 1)[0] + f"/{name}",
        auth_service_urls=[system.url("auth")],
        events_service_urls=[system.url("auth")],  # answers 404 to POST /send-event
        spool_dir=tmp_path,
        service_account_password=RELAY_PASSWORD,
        instance_id="in-process",
    )
    app = build_app(settings)
    headers = system.headers()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client,
    ):
        await app.state.db.wait_until_up(30)
        response = await client.post("/test/humidity", headers=headers)
        assert response.status_code == 202
        path = response.json()["links"]["self"]

        async def retried() -> dict | None:
            doc = (await client.get(path, headers=headers)).json()
            return doc if (doc["event"]["attempts"] or 0) >= 2 else None

        doc = await eventually(retried, 20, interval=0.1)
        assert doc is not None, "the outbox event was not retried"
        assert doc["event"]["status"] == "pending"
        assert doc["event"]["error"].startswith("event service answered 404")
        assert app.state.sensor.relay.counts["dead"] == 0
        assert app.state.sensor.relay.counts["retried"] >= 1


def test_health_and_metrics(system):
    """/health shows queue, outbox, workers and relay; /metrics the queue and verdicts."""
    health = httpx.get(f"{system.url('sensor')}/health", timeout=10).json()
    assert health["status"] == "healthy"
    assert set(health) >= {"queue", "outbox", "workers", "relay", "circuit_breakers"}
    assert health["workers"]["configured"] == 2
    assert health["relay"]["state"] in {"idle", "delivering"}
    assert "events" in health["circuit_breakers"]
    assert wait_for(
        lambda: httpx.get(f"{system.url('sensor')}/health").json()["queue"]["queued"] == 0, 10
    )
    metrics = httpx.get(f"{system.url('sensor')}/metrics", timeout=10).text
    for name in (
        'sensor_queue_depth{state="queued"}',
        'sensor_outbox_depth{status="pending"}',
        "sensor_test_processing_seconds_bucket",
        'sensor_test_verdicts_total{verdict="pass"}',
        "sensor_outbox_delivered_total",
    ):
        assert name in metrics


def test_a_corpus_slice_scored_through_the_api_matches_the_engine(system):
    """The validation corpus through POST /test: same verdicts as analyse(), targets met."""
    corpus = cases(["sht31_humidity", "bme280_pressure"], seeds=[7], healthy_seeds=[7], n=300)
    corpus = [c for c in corpus if c.severity in {0.0, 2.0}]
    token = system.headers()["Authorization"].removeprefix("Bearer ")
    verdicts = Client(f"{system.url('sensor')}/test", token).verdicts(corpus, workers=4)
    assert verdicts == [verdict_of(c) for c in corpus]
    score = tally(zip(corpus, verdicts, strict=True))
    assert (score.missed, score.healthy_fail, score.healthy_suspect) == ([], [], [])

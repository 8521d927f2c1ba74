"""The event service against the real embedded broker and PostgreSQL, with real auth."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from harness import Harness, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system():
    harness = Harness({"postgres", "broker", "auth", "events"}).start()
    yield harness
    harness.close()


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "source": "/rigs/bench-1",
        "type": "sensor.test.completed",
        "subject": "device-42",
        "data": {"sensor_type": "humidity", "verdict": "pass"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def send(system: Harness, body: object, **kw: object) -> httpx.Response:
    return httpx.post(
        f"{system.url('events')}/send-event", json=body, headers=system.headers(), timeout=15, **kw
    )


def stats(system: Harness) -> dict:
    return httpx.get(f"{system.url('events')}/stats", headers=system.headers(), timeout=10).json()


def broker_status(system: Harness) -> str:
    return httpx.get(f"{system.url('events')}/health", timeout=5).json()["checks"]["broker"][
        "status"
    ]


def logged_ids(system: Harness, **params: object) -> list[str]:
    response = httpx.get(
        f"{system.url('events')}/logs",
        params={"limit": 500, **params},
        headers=system.headers(),
        timeout=10,
    )
    return [item["id"] for item in response.json()["items"]]


def test_send_one_event_is_produced_and_consumed(system):
    """One event: 201 sent with its partition and offset, then it appears in the log."""
    ev = event()
    response = send(system, ev)
    assert response.status_code == 201
    assert response.json()["status"] == "sent"
    assert response.json()["offset"] >= 0
    assert wait_for(lambda: ev["id"] in logged_ids(system))


def test_send_a_batch(system):
    """A batch of 20: 201 with one result per event, all consumed once."""
    batch = [event(subject=f"device-{i % 3}") for i in range(20)]
    response = send(system, batch)
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["sent"], body["queued"]) == ("sent", 20, 0)
    assert [r["id"] for r in body["results"]] == [e["id"] for e in batch]
    ids = {e["id"] for e in batch}
    assert wait_for(lambda: ids <= set(logged_ids(system)))


def test_duplicates_are_answered_and_not_stored_twice(system):
    """A repeated id is answered duplicate (also inside one batch) and counted once."""
    ev = event(type="dup.check")
    assert send(system, ev).status_code == 201
    again = send(system, ev)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    fresh = event(type="dup.check")
    batch = send(system, [fresh, fresh])
    assert [r["status"] for r in batch.json()["results"]] == ["sent", "duplicate"]
    assert wait_for(lambda: len(logged_ids(system, type="dup.check")) == 2)
    assert stats(system)["processed"]["by_type"]["dup.check"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "/x", "type": "t"}, "id"),
        (event(id="not-a-uuid"), "id"),
        (event(source=""), "source"),
        (event(type="has spaces"), "type"),
        (event(time="2026-01-01T00:00:00"), "time"),
        (event(specversion="0.3"), "specversion"),
        (event(BadExt="x"), "body"),
        ([event(), {"id": str(uuid.uuid4())}], "[1].source"),
    ],
)
def test_bad_events_are_422_naming_the_field(system, body, field):
    """Missing or bad attributes answer 422 with the field named (batch index included)."""
    response = send(system, body)
    assert response.status_code == 422
    doc = response.json()
    assert doc["error"] == "validation_error"
    assert field in [f["field"] for f in doc["fields"]]


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 400),
        (b'{"id": NaN}', 422),  # the input guard names the field NaN is in
        (b"[]", 422),
        (json.dumps([event() for _ in range(501)]).encode(), 422),
        (b"x" * (5 * 1024 * 1024), 413),
    ],
)
def test_bad_bodies_are_clear_4xx(system, content, status):
    """Broken JSON, NaN, an empty or oversized batch and a huge body are clear 4xx JSON."""
    response = httpx.post(
        f"{system.url('events')}/send-event",
        content=content,
        headers={**system.headers(), "content-type": "application/json"},
        timeout=15,
    )
    assert response.status_code == status
    assert "error" in response.json()


@pytest.mark.parametrize("path", ["/send-event", "/stats", "/logs"])
def test_every_endpoint_needs_a_token(system, path):
    """Without a bearer token every endpoint answers 401 with WWW-Authenticate."""
    method = "POST" if path == "/send-event" else "GET"
    response = httpx.request(method, f"{system.url('events')}{path}", json=event(), timeout=10)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


def test_stats_and_logs_content(system):
    """Stats count verdicts and sensor types; logs filter by subject and paginate."""
    subject = f"device-{uuid.uuid4().hex[:8]}"
    sent = [
        event(subject=subject, data={"sensor_type": "co2", "verdict": v})
        for v in ("pass", "fail", "suspect")
    ]
    before = stats(system)["processed"]
    assert send(system, sent).status_code == 201
    assert wait_for(lambda: len(logged_ids(system, subject=subject)) == 3)
    after = stats(system)["processed"]
    for verdict in ("pass", "fail", "suspect"):
        assert after["verdicts"][verdict] == before["verdicts"][verdict] + 1
    assert after["by_sensor_type"]["co2"] == before["by_sensor_type"].get("co2", 0) + 3
    page = httpx.get(
        f"{system.url('events')}/logs",
        params={"subject": subject, "limit": 2},
        headers=system.headers(),
    ).json()
    assert len(page["items"]) == 2
    rest = httpx.get(
        f"{system.url('events')}/logs",
        params={"subject": subject, "limit": 2, "before": page["next"]},
        headers=system.headers(),
    ).json()
    assert [i["id"] for i in page["items"] + rest["items"]] == [e["id"] for e in reversed(sent)]
    doc = stats(system)
    assert doc["dropped"] == 0
    assert doc["consumer"]["lag"] == 0 or wait_for(lambda: stats(system)["consumer"]["lag"] == 0)


def test_broker_down_spools_and_a_crash_loses_nothing():
    """Spooled events survive a SIGKILL of the event service and arrive exactly once.

    Broker stopped: N events answer 202 queued; the service is SIGKILLed; after both
    restart, all N arrive and each is counted once.
    """
    harness = Harness({"postgres", "broker", "auth", "events"}, offset_start=31000).start()
    try:
        harness.kill("broker")
        batch = [event(type="spool.check", subject=f"s{i % 4}") for i in range(40)]
        statuses = [send(harness, ev).status_code for ev in batch[:30]]
        statuses.append(send(harness, batch[30:]).status_code)
        assert statuses == [202] * 31
        assert stats(harness)["queue_depth"] == 40
        harness.kill("events")
        harness.restart("broker")
        harness.restart("events")
        ids = {e["id"] for e in batch}
        assert wait_for(lambda: ids <= set(logged_ids(harness, type="spool.check")), 60), (
            harness.log("events")[-3000:]
        )
        assert len(logged_ids(harness, type="spool.check")) == 40
        doc = stats(harness)
        assert doc["processed"]["by_type"]["spool.check"] == 40
        assert doc["queue_depth"] == 0
    finally:
        harness.close()


def test_a_full_spool_answers_503_and_keeps_what_it_accepted():
    """A full spool refuses with 503 and Retry-After and loses nothing it accepted.

    With a 5-event spool and the broker down, the 6th event gets 503; the 5 accepted ones
    are delivered once the broker returns.
    """
    harness = Harness(
        {"postgres", "broker", "auth", "events"},
        offset_start=32000,
        env={"EVENTS_SPOOL_MAX_ITEMS": "5"},
    ).start()
    try:
        harness.kill("broker")
        accepted = [event(type="full.check") for _ in range(5)]
        assert [send(harness, ev).status_code for ev in accepted] == [202] * 5
        refused = send(harness, event(type="full.check"))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert (
            send(harness, [event(type="full.check"), event(type="full.check")]).status_code == 503
        )
        harness.restart("broker")
        ids = {e["id"] for e in accepted}
        assert wait_for(lambda: set(logged_ids(harness, type="full.check")) == ids, 60)
    finally:
        harness.close()


def test_consumer_follows_a_broker_that_restarted_empty():
    """After the in-memory broker restarts, new events are consumed though offsets restarted.

    30 events first move every partition's offset well past zero; then only the broker is
    restarted (the consumer process lives on), and the next events, at offsets 0 and 1 of
    the recreated topic, must still be consumed.
    """
    harness = Harness({"postgres", "broker", "auth", "events"}, offset_start=33500).start()
    try:
        before = [event(type="restart.before", subject=f"s{i}") for i in range(30)]
        assert send(harness, before).status_code == 201
        assert wait_for(lambda: len(logged_ids(harness, type="restart.before")) == 30)
        harness.kill("broker")
        # Down long enough for the event service to notice (one health probe), as a real
        # crash is; test_broker_crash.py covers a restart faster than that.
        assert wait_for(lambda: broker_status(harness) == "down", 10)
        harness.restart("broker")
        after = [event(type="restart.after", subject=f"s{i}") for i in range(3)]
        assert all(send(harness, ev).status_code in {201, 202} for ev in after)
        ids = {e["id"] for e in after}
        assert wait_for(lambda: ids <= set(logged_ids(harness, type="restart.after")), 60), stats(
            harness
        )["consumer"]
        assert stats(harness)["consumer"]["resets"] >= 1
    finally:
        harness.close()


@pytest.mark.parametrize("field", ["source", "subject"])
def test_nul_characters_are_refused(system, field):
    """A NUL in an attribute is a 422 at the door, not a poison pill for the consumer."""
    response = send(system, event(**{field: "a\u0000b"}))
    assert response.status_code == 422
    # Refused by the input guard every service shares, naming the field.
    assert response.json()["fields"][0] == {
        "field": f"body.{field}",
        "message": "must not contain NUL",
        "type": "unsafe_text",
    }

"""The embedded in-memory broker killed twice under steady event load: nothing accepted is lost.

The broker (tansu, memory storage) forgets everything it held when it dies, including
events it acknowledged moments before. The event service keeps every accepted event in
its fsynced journal until its consumer stored it in PostgreSQL (DESIGN.md §7) and produces
the unconfirmed ones again after the broker came back, so every 201/202 must end up stored
exactly once. One restart is immediate (faster than the service's health probe), the other
comes after the service noticed the broker was gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from harness import Harness, wait_for

pytestmark = pytest.mark.integration

EVENTS = 3000
RATE_PER_S = 150  # steady, bounded load for 2 shared cores
IN_FLIGHT = 16
EVENT_TYPE = "broker.crash.check"
CATCH_UP_S = 60.0


@dataclass
class Sent:
    id: str
    status: int | None  # None: connection error
    answered_at: float
    retry_after: bool


@dataclass
class Sender:
    url: str
    headers: dict[str, str]
    results: list[Sent] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    async def _one(self, client: httpx.AsyncClient, index: int) -> None:
        event_id = str(uuid.uuid4())
        body = {
            "id": event_id,
            "source": "/crash-test",
            "type": EVENT_TYPE,
            # Few subjects: several events per key in flight, as a real rig sends them.
            "subject": f"device-{index % 7}",
            "data": {"sensor_type": "humidity", "verdict": "pass", "n": index},
        }
        try:
            response = await client.post(self.url, json=body, headers=self.headers)
        except httpx.HTTPError:
            self.results.append(Sent(event_id, None, time.monotonic(), retry_after=False))
            return
        self.results.append(
            Sent(
                event_id,
                response.status_code,
                time.monotonic(),
                "retry-after" in response.headers,
            )
        )

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        async with httpx.AsyncClient(timeout=20, limits=limits) as client:
            slots = asyncio.Semaphore(IN_FLIGHT)
            tasks: set[asyncio.Task[None]] = set()

            async def bounded(index: int) -> None:
                async with slots:
                    await self._one(client, index)

            for index in range(EVENTS):
                task = asyncio.create_task(bounded(index))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(1.0 / RATE_PER_S)
            await asyncio.gather(*tasks)

    def run_in_thread(self) -> threading.Thread:
        def target() -> None:
            try:
                asyncio.run(self._run())
            finally:
                self.done.set()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread


def logged_ids(harness: Harness) -> list[str]:
    """Every id the event service's consumer stored for this test's type (all pages)."""
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"type": EVENT_TYPE, "limit": 500}
        if cursor:
            params["before"] = cursor
        page = httpx.get(
            f"{harness.url('events')}/logs", params=params, headers=harness.headers(), timeout=10
        ).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next"]
        if not cursor:
            return ids


def stats(harness: Harness) -> dict:
    return httpx.get(f"{harness.url('events')}/stats", headers=harness.headers(), timeout=10).json()


def broker_status(harness: Harness) -> str:
    doc = httpx.get(f"{harness.url('events')}/health", timeout=5).json()
    return doc["checks"]["broker"]["status"]


def test_broker_killed_twice_under_load_loses_nothing() -> None:
    """Two SIGKILLs of the in-memory broker under load: 0 accepted events lost, 0 doubled."""
    harness = Harness({"postgres", "broker", "auth", "events"}, offset_start=35500).start()
    try:
        _scenario(harness)
    finally:
        harness.close()


def _scenario(harness: Harness) -> None:
    sender = Sender(f"{harness.url('events')}/send-event", harness.headers())
    thread = sender.run_in_thread()
    kills: list[float] = []

    def acked_by_broker(at_least: int) -> bool:
        """Enough sent, and the latest answers are 201: the broker holds fresh acks."""
        recent = sender.results[-20:]
        return len(sender.results) >= at_least and all(s.status == 201 for s in recent)

    try:
        # First crash: restarted at once, before the service's health probe can notice.
        assert wait_for(lambda: acked_by_broker(600), 60)
        kills.append(time.monotonic())
        harness.kill("broker")
        harness.restart("broker")
        # Second crash: down long enough for the service to see it, then restarted.
        assert wait_for(lambda: acked_by_broker(1600), 60)
        kills.append(time.monotonic())
        harness.kill("broker")
        assert wait_for(lambda: broker_status(harness) == "down", 10)
        time.sleep(1.0)
        harness.restart("broker")
    finally:
        sender.done.wait(120)
        thread.join(timeout=30)
    sent_at = time.monotonic()
    assert len(sender.results) == EVENTS

    accepted = {s.id for s in sender.results if s.status in {201, 202}}
    refused = [s for s in sender.results if s.id not in accepted]
    # Only an honest, retryable refusal is allowed (a full journal or a broken request).
    assert all(s.status == 503 and s.retry_after for s in refused), [
        (s.status, s.retry_after) for s in refused[:5]
    ]
    # The load exercised the window the in-memory broker used to lose: events answered 201
    # (acknowledged by the broker) within the second before each kill.
    for killed in kills:
        window = [s for s in sender.results if s.status == 201 and killed - 1 <= s.answered_at]
        assert [s for s in window if s.answered_at <= killed], "no 201 just before a kill"

    def all_stored() -> bool:
        return accepted <= set(logged_ids(harness))

    caught_up = wait_for(all_stored, CATCH_UP_S, interval=1.0)
    catch_up_s = time.monotonic() - sent_at
    ids = logged_ids(harness)
    missing = accepted - set(ids)
    doc = stats(harness)
    print(  # noqa: T201 - the figures are the point of this test
        f"accepted {len(accepted)} of {EVENTS}, refused {len(refused)}, stored {len(ids)}, "
        f"missing {len(missing)}, caught up in {catch_up_s:.1f} s, journal {doc['journal']}, "
        f"produced {doc['produced']}"
    )
    assert caught_up, f"{len(missing)} accepted events lost, e.g. {sorted(missing)[:3]}"
    assert len(ids) == len(set(ids)), "an event is in the processing log twice"
    assert set(ids) <= {s.id for s in sender.results}
    # Counted once each: the exact counters only count rows actually inserted.
    assert doc["processed"]["by_type"][EVENT_TYPE] == len(ids) == len(accepted)
    assert doc["journal"]["resend_rounds"] >= 1
    assert doc["reproduced"] > 0
    assert doc["dropped"] == 0
    # Everything confirmed: the journal empties once the consumer has stored it all.
    assert wait_for(lambda: stats(harness)["journal_depth"] == 0, 30), stats(harness)["journal"]


def test_another_replicas_consumer_confirms_through_postgresql() -> None:
    """Events the other replica's consumer stored are confirmed by asking PostgreSQL.

    Two replicas share the consumer group, so the first replica's journal only empties if
    it learns from the events table what the second one's consumer stored.
    """
    harness = Harness(
        {"postgres", "broker", "auth", "events"}, offset_start=36500, replicas={"events": 2}
    ).start()
    try:
        url = f"{harness.url('events')}/send-event"

        # Both consumers must hold partitions before sending, or one may own them all.
        def both_assigned() -> bool:
            return all(
                httpx.get(f"{harness.url(name)}/health", timeout=5).json()["consumer"]["partitions"]
                for name in ("events", "events-2")
            )

        assert wait_for(both_assigned, 60)
        batch = [
            {
                "id": str(uuid.uuid4()),
                "source": "/replicas",
                "type": "replica.check",
                "subject": f"device-{i}",
            }
            for i in range(60)
        ]
        response = httpx.post(url, json=batch, headers=harness.headers(), timeout=20)
        assert response.status_code == 201, response.text

        def first_replica() -> dict:
            return httpx.get(
                f"{harness.url('events')}/stats", headers=harness.headers(), timeout=10
            ).json()

        assert wait_for(lambda: first_replica()["journal_depth"] == 0, 30), first_replica()
        confirmer = first_replica()["journal"]["confirmer"]
        assert confirmer["confirmed_from_database"] > 0, confirmer
        assert confirmer["confirmed_by_consumer"] + confirmer["confirmed_from_database"] == 60
    finally:
        harness.close()

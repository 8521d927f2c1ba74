"""The outbox relay's answer handling against a real in-process HTTP server.

The server plays auth's ``/token`` and the event service's ``/send-event`` with scripted
statuses; an in-memory outbox hands out the queued rows and records what the relay decides
for each. The tests drive the relay through its public ``run_once`` (one round of its loop),
so the loop itself is never started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from sensor_backend.core.breaker import BreakerConfig, BreakerState, CircuitBreaker
from sensor_backend.core.event_limits import EventLimits
from sensor_backend.core.replicas import ReplicaPool
from sensor_backend.core.retry import RetryBudget, RetryPolicy
from sensor_backend.core.service_client import ServiceClient
from sensor_backend.sensor.metrics import SensorMetrics
from sensor_backend.sensor.outbox import OutboxRow
from sensor_backend.sensor.relay import Relay
from sensor_backend.sensor.settings import SensorSettings

PASSWORD = "relay-password"  # noqa: S105 - a test fixture's password


@dataclass
class MemoryOutbox:
    queued: list[OutboxRow] = field(default_factory=list)
    claims: list[tuple[str, int]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    dead: dict[int, str] = field(default_factory=dict)
    dead_status: dict[int, int | None] = field(default_factory=dict)
    released: list[tuple[list[int], str, float]] = field(default_factory=list)

    async def claim(self, relay: str, limit: int, _max_bytes: int) -> list[OutboxRow]:
        """The oldest ``limit`` queued rows (byte bounds are the real outbox's, tested there)."""
        self.claims.append((relay, limit))
        claimed, self.queued = self.queued[:limit], self.queued[limit:]
        return claimed

    async def due_now(self) -> None:
        pass

    async def mark_sent(self, seqs: list[int]) -> None:
        self.sent += seqs

    async def mark_dead(self, seq: int, reason: str, *, status: int | None = None) -> None:
        self.dead[seq] = reason
        self.dead_status[seq] = status

    async def release(self, seqs: list[int], reason: str, *, delay_s: float) -> None:
        self.released.append((seqs, reason, delay_s))


class FakeEvents:
    """``status`` answers every batch; an event whose id is in ``refuse`` gets a 422."""

    def __init__(self) -> None:
        self.url = ""
        self.status = 201
        self.refuse: set[str] = set()
        self.max_rows: int | None = None  # larger batches get 413, as over a body limit
        self.batches: list[list[dict[str, Any]]] = []
        self.tokens_issued = 0
        self.authorizations: list[str] = []

    async def token(self, _request: web.Request) -> web.Response:
        self.tokens_issued += 1
        return web.json_response({"access_token": f"t{self.tokens_issued}", "expires_in": 3600})

    async def send(self, request: web.Request) -> web.Response:
        batch = json.loads(await request.read())
        self.batches.append(batch)
        self.authorizations.append(request.headers["Authorization"])
        if self.max_rows is not None and len(batch) > self.max_rows:
            return web.json_response({"error": "payload_too_large"}, status=413)
        if any(event["id"] in self.refuse for event in batch):
            return web.json_response({"error": "validation_error"}, status=422)
        return web.json_response({"status": "ok"}, status=self.status)


@pytest.fixture
async def server():
    fake = FakeEvents()
    app = web.Application()
    app.router.add_post("/token", fake.token)
    app.router.add_post("/send-event", fake.send)
    test_server = TestServer(app)
    await test_server.start_server()
    fake.url = str(test_server.make_url("")).rstrip("/")
    yield fake
    await test_server.close()


@pytest.fixture
async def relay(server, session, clock):
    settings = SensorSettings(
        auth_service_urls=[server.url],
        events_service_urls=[server.url],
        service_account_password=PASSWORD,
    )
    breaker = CircuitBreaker(
        "events", BreakerConfig(consecutive_failures=2, open_wait_s=60), clock=clock
    )
    outbox = MemoryOutbox()
    metrics = SensorMetrics(CollectorRegistry(), dict)
    events = ServiceClient(
        "events",
        ReplicaPool("events", [server.url]),
        breaker,
        RetryBudget(),
        lambda: session,
        timeout_s=5.0,
    )
    return Relay(settings, outbox, events, SimpleNamespace(session=session), metrics)


def rows(*seqs: int, attempts: int = 1) -> list[OutboxRow]:
    return [
        OutboxRow(seq, f"00000000-0000-4000-8000-{seq:012d}", {"id": f"e{seq}"}, attempts)
        for seq in seqs
    ]


async def deliver(relay: Relay, batch: list[OutboxRow]) -> MemoryOutbox:
    """Queue ``batch`` and run one round: the relay claims it whole and posts it."""
    outbox = relay.outbox
    assert isinstance(outbox, MemoryOutbox)
    outbox.queued += batch
    await relay.run_once()
    assert outbox.queued == []
    return outbox


@pytest.mark.parametrize("status", [200, 201, 202])
async def test_accepted_answers_mark_the_batch_sent(server, relay, status):
    """200 (duplicates), 201 (produced) and 202 (spooled) all mean delivered."""
    server.status = status
    outbox = await deliver(relay, rows(1, 2, 3))
    assert outbox.sent == [1, 2, 3]
    assert server.batches == [[{"id": "e1"}, {"id": "e2"}, {"id": "e3"}]]
    assert relay.counts["delivered"] == 3


async def test_a_401_renews_the_token_and_retries_soon(server, relay):
    """401: the service token is dropped, the rows come back in 0.2 s, a new token is used."""
    server.status = 401
    outbox = await deliver(relay, rows(1))
    assert outbox.released == [([1], "401 from the event service", 0.2)]
    server.status = 201
    await deliver(relay, rows(1))
    assert server.authorizations == ["Bearer t1", "Bearer t2"]
    assert relay.breaker.state is BreakerState.CLOSED


async def test_throttling_is_retried_without_tripping_the_breaker(server, relay):
    """429 is transient: rows are retried with backoff and the breaker stays closed."""
    server.status = 429
    for _ in range(3):
        await deliver(relay, rows(1, attempts=3))
    assert len(relay.outbox.released) == 3
    assert all(0 <= delay <= 2.0 for _, _, delay in relay.outbox.released)
    assert relay.breaker.state is BreakerState.CLOSED


async def test_server_errors_trip_the_breaker_and_nothing_is_sent_while_open(server, relay):
    """Two 503s open the breaker; a round then claims nothing and waits out the open wait."""
    server.status = 503
    outbox = await deliver(relay, rows(1))  # the client's retry makes it two tries
    assert len(server.batches) == 2
    assert [seqs for seqs, _, _ in outbox.released] == [[1]]
    assert relay.breaker.state is BreakerState.OPEN
    outbox.queued += rows(2)
    wait = await relay.run_once()
    assert wait == pytest.approx(60.0)  # open_wait_s, on the fixture's manual clock
    assert outbox.queued == rows(2)
    assert len(outbox.claims) == 1
    assert len(server.batches) == 2
    assert relay.state == "events breaker open"


async def test_a_batch_the_breaker_turns_away_is_released_untried(server, relay, clock):
    """A batch claimed while the half-open probe is taken elsewhere is released, not posted."""
    server.status = 503
    await deliver(relay, rows(1))
    clock.advance(60.0)
    assert relay.breaker.state is BreakerState.HALF_OPEN
    relay.breaker.acquire()  # another caller holds the only probe slot
    outbox = await deliver(relay, rows(2))
    assert len(server.batches) == 2
    assert outbox.released[-1] == ([2], "events breaker open", 0.0)


async def test_a_refused_event_is_dead_and_its_batch_mates_are_delivered(server, relay):
    """A 422 for a batch is retried event by event: the bad one is dead, the others sent."""
    server.refuse = {"e2"}
    outbox = await deliver(relay, rows(1, 2, 3))
    assert outbox.sent == [1, 3]
    assert list(outbox.dead) == [2]
    assert outbox.dead[2].startswith("refused by the event service: 422")
    assert relay.counts["dead"] == 1


async def test_an_unreachable_event_service_is_retried_later(server, relay):
    """No answer at all (connection refused) releases the rows and counts against the breaker."""
    relay.events.pool = ReplicaPool("events", ["http://127.0.0.1:9"])
    relay.events.retry = RetryPolicy(max_attempts=1)  # one try: the client's retries aside
    outbox = await deliver(relay, rows(1))
    [(seqs, reason, _)] = outbox.released
    assert seqs == [1]
    assert reason.startswith("event service unreachable")
    assert relay.breaker.consecutive_failures == 1


async def test_the_client_retries_an_unreachable_replica_on_another(server, relay):
    """With two replicas, one refusing connections, the batch still goes in one round."""
    relay.events.pool = ReplicaPool("events", ["http://127.0.0.1:9", server.url])
    relay.events.pool.replicas[1].outstanding = 100  # the dead replica is picked first
    outbox = await deliver(relay, rows(1, 2))
    assert outbox.sent == [1, 2]
    assert outbox.released == []
    assert relay.events.pool.replicas[0].failures == 1


async def test_a_batch_refused_for_size_is_halved_until_it_is_taken(server, relay):
    """413 for a batch of 8: halves of 4, then 2, go separately; every row is sent."""
    server.max_rows = 2
    outbox = await deliver(relay, rows(*range(1, 9)))
    assert outbox.sent == list(range(1, 9))
    assert outbox.dead == {}
    assert [len(b) for b in server.batches] == [8, 4, 2, 2, 4, 2, 2]


async def test_a_single_event_refused_for_size_is_dead_with_its_status(server, relay):
    server.status = 413
    outbox = await deliver(relay, rows(1))
    assert outbox.dead_status == {1: 413}
    assert outbox.dead[1].startswith("refused by the event service: 413")


async def test_an_event_over_the_per_event_limit_is_dead_without_a_post(server, relay):
    """The relay's screen dead-letters what the event service would refuse, and posts the rest."""
    relay.limits = EventLimits(max_event_bytes=1024, max_batch_events=10, max_batch_bytes=4096)
    big = OutboxRow(9, "00000000-0000-4000-8000-000000000009", {"id": "e9", "pad": "x" * 2000}, 1)
    outbox = await deliver(relay, [*rows(1), big, *rows(2)])
    assert list(outbox.dead) == [9]
    assert "over the 1024-byte limit" in outbox.dead[9]
    assert outbox.dead_status == {9: None}
    assert outbox.sent == [1, 2]
    assert server.batches == [[{"id": "e1"}, {"id": "e2"}]]


@pytest.mark.parametrize("status", [403, 404])
async def test_a_refusal_a_fix_of_the_deployment_cures_is_retried_not_dead(server, relay, status):
    server.status = status
    outbox = await deliver(relay, rows(1, 2))
    assert outbox.dead == {}
    assert [seqs for seqs, _, _ in outbox.released] == [[1, 2]]

"""The event contract: byte-bounded batches, splitting on 413, the dead-letter store.

Real SQLite files in tmp_path for the spool and the dead-letter store, and a real
in-process HTTP server playing auth's ``/token`` and the event service's ``/send-event``
with the event service's own limits (413 over the body or per-event limit, 422 for an
event it refuses), so :meth:`EventQueue.forward` runs its real HTTP path.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from sensor_backend.core.breaker import BreakerConfig, CircuitBreaker
from sensor_backend.core.cloudevents import CloudEvent
from sensor_backend.core.dead_letter import DeadLetterStore, NewDeadLetter
from sensor_backend.core.drainer import Drainer
from sensor_backend.core.errors import PayloadTooLarge
from sensor_backend.core.event_limits import (
    EventLimits,
    batch_body,
    batch_body_bytes,
    is_permanent_refusal,
)
from sensor_backend.core.replicas import ReplicaPool
from sensor_backend.core.retry import RetryBudget
from sensor_backend.core.service_client import ServiceClient
from sensor_backend.core.service_token import ServiceTokenProvider
from sensor_backend.core.spool import Spool, SpooledItem
from sensor_backend.events.settings import EventsSettings
from sensor_backend.gateway.event_queue import EventQueue
from sensor_backend.gateway.settings import GatewaySettings
from sensor_backend.sensor.settings import SensorSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import aiohttp

    from sensor_backend.core.cloudevents import CloudEvent as CloudEventType

PASSWORD = "queue-password"  # noqa: S105 - a test fixture's password


def cloud_event(size: int = 0, **overrides: object) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "source": "/test",
        "type": "limits.check",
        "time": "2026-01-01T00:00:00Z",
        "data": {"pad": "x" * size},
    }
    doc.update(overrides)
    return doc


def canonical(doc: dict[str, Any]) -> bytes:
    return CloudEvent.model_validate(doc).stamped().encode()


# -- the contract itself -------------------------------------------------------------------


def test_batch_body_and_its_size_agree() -> None:
    """The framing is "[" + ",".join + "]", and batch_body_bytes predicts its length."""
    payloads = [b'{"a":1}', b'{"b":22}', b"{}"]
    assert batch_body(payloads) == b'[{"a":1},{"b":22},{}]'
    assert batch_body_bytes(len(p) for p in payloads) == len(batch_body(payloads))
    assert batch_body_bytes([]) == len(batch_body([]))


def test_batch_prefix_is_bounded_by_count_and_bytes() -> None:
    """The prefix stops at the count limit or before the body would pass the byte limit."""
    limits = EventLimits(max_event_bytes=100, max_batch_events=5, max_batch_bytes=350)
    assert limits.batch_prefix([10] * 9) == 5  # count
    # 100-byte items: 3 make 2 + 300 + 2 = 304 bytes, a 4th would make 405.
    assert limits.batch_prefix([100] * 9) == 3
    assert batch_body_bytes([100] * 3) <= 350 < batch_body_bytes([100] * 4)
    # An item over every limit still goes, alone: its refusal dead-letters it.
    assert limits.batch_prefix([1000, 10]) == 1
    assert limits.batch_prefix([]) == 0


def test_limits_must_hold_one_maximal_event() -> None:
    with pytest.raises(ValueError, match="must hold one maximal event"):
        EventLimits(max_event_bytes=1000, max_batch_events=5, max_batch_bytes=1001)
    EventLimits(max_event_bytes=1000, max_batch_events=5, max_batch_bytes=1002)
    with pytest.raises(ValueError, match="max_batch_events"):
        EventLimits(max_batch_events=0)


def test_parse_measures_the_canonical_encoding() -> None:
    """A per-event 413 names the event; the size is that of the stamped, compact encoding."""
    limits = EventLimits(max_event_bytes=2000, max_batch_events=10, max_batch_bytes=20_000)
    small, big = cloud_event(100), cloud_event(3000)
    events, payloads, is_batch = limits.parse(
        json.dumps([small, small | {"id": str(uuid.uuid4())}]).encode()
    )
    assert is_batch
    assert payloads == [e.encode() for e in events]
    with pytest.raises(PayloadTooLarge) as refused:
        limits.parse(json.dumps([small, big]).encode())
    assert refused.value.extra["field"] == "[1]"
    assert refused.value.extra["event_id"] == big["id"]
    assert refused.value.extra["event_bytes"] == len(canonical(big))
    # Whitespace in the request does not count, the canonical size does.
    padded = json.dumps(cloud_event(1500), indent=100).encode()
    assert len(padded) > 2000
    limits.parse(padded)
    with pytest.raises(PayloadTooLarge, match="request body over 20000 bytes"):
        limits.parse(b" " * 20_001)


def test_which_refusals_are_permanent() -> None:
    assert all(is_permanent_refusal(s) for s in (400, 413, 415, 422))
    assert not any(is_permanent_refusal(s) for s in (200, 401, 403, 404, 408, 429, 500, 503))


# -- the drainer's byte bound --------------------------------------------------------------


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    s = Spool(tmp_path / "spool", name="events")
    await s.open()
    yield s
    await s.close()


async def test_peek_within_bounds_payload_bytes_but_returns_the_oldest(spool: Spool) -> None:
    await spool.append([(f"k{i}", b"x" * 100) for i in range(10)])
    assert len(await spool.peek_within(10, 350)) == 3
    assert len(await spool.peek_within(2, 10_000)) == 2
    assert [i.key for i in await spool.peek_within(10, 5)] == ["k0"]


async def test_drainer_batches_are_bounded_by_bytes(spool: Spool) -> None:
    """Every batch fits max_bytes once framed, in order, and an oversized item goes alone."""
    sizes = [100] * 20 + [2000] + [100] * 5
    await spool.append([(f"k{i:02d}", b"x" * size) for i, size in enumerate(sizes)])
    batches: list[list[str]] = []
    framed: list[int] = []

    async def send(items: list[SpooledItem]) -> list[int]:
        batches.append([i.key for i in items])
        framed.append(batch_body_bytes(len(i.payload) for i in items))
        return [i.seq for i in items]

    drainer = Drainer(spool, send, batch=50, max_bytes=1000, idle_s=0.01)
    while spool.depth:
        await drainer._round()
    assert [k for batch in batches for k in batch] == [f"k{i:02d}" for i in range(len(sizes))]
    assert ["k20"] in batches
    assert all(
        size <= 1000 for size, batch in zip(framed, batches, strict=True) if batch != ["k20"]
    )
    # 100-byte items: 9 fit (9 * 101 + 1 = 910), 10 would not (1011).
    assert len(batches[0]) == 9


def test_drainer_refuses_a_bad_byte_bound(spool: Spool) -> None:
    async def send(items: list[SpooledItem]) -> list[int]:  # pragma: no cover - not called
        return []

    with pytest.raises(ValueError, match="max_bytes"):
        Drainer(spool, send, max_bytes=0)


# -- the dead-letter store -----------------------------------------------------------------


def dead(key: str, payload: bytes = b"{}", status: int = 413) -> NewDeadLetter:
    return NewDeadLetter(
        key=key,
        payload=payload,
        origin="gateway-spool",
        status=status,
        reason=f"refused: {status}",
        attempts=1,
        first_seen_at=1000.0,
    )


async def test_dead_letters_persist_page_and_count_repeats(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path, name="dlq")
    await store.open()
    await store.add([dead("a", b'{"id":"a"}'), dead("b")])
    await store.add([dead("a", b'{"id":"a"}', status=422)])
    assert store.count == 2
    assert store.snapshot()["oldest_age_s"] is not None
    await store.close()
    reopened = DeadLetterStore(tmp_path, name="dlq")
    await reopened.open()
    try:
        entry = await reopened.get("a")
        assert entry is not None
        assert (entry.payload, entry.status, entry.times_dead, entry.attempts) == (
            b'{"id":"a"}',
            422,
            2,
            1,
        )
        first = await reopened.page(limit=1)
        assert [e.key for e in first] == ["b"]
        assert [e.key for e in await reopened.page(limit=5, before=first[0].seq)] == ["a"]
        assert await reopened.remove("a")
        assert not await reopened.remove("a")
        assert reopened.count == 1
        assert await reopened.get("a") is None
    finally:
        await reopened.close()


# -- EventQueue.forward against a real HTTP server -----------------------------------------


class FakeEventService:
    """``/send-event`` with the event service's limits; ``refuse`` ids get 422."""

    def __init__(self, limits: EventLimits) -> None:
        self.limits = limits
        self.url = ""
        self.bodies: list[int] = []
        self.accepted: list[str] = []
        self.accepted_bodies: list[int] = []
        self.refuse: set[str] = set()
        self.unauthorized_once = False
        self.status: int | None = None
        self.tokens = 0

    async def token(self, _request: web.Request) -> web.Response:
        self.tokens += 1
        return web.json_response({"access_token": f"t{self.tokens}", "expires_in": 3600})

    async def send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.bodies.append(len(raw))
        if self.unauthorized_once:
            self.unauthorized_once = False
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.status is not None:
            return web.json_response({"error": "scripted"}, status=self.status)
        if len(raw) > self.limits.max_batch_bytes:
            return web.json_response({"error": "payload_too_large"}, status=413)
        events = json.loads(raw)
        for event in events:
            if len(json.dumps(event, separators=(",", ":"))) > self.limits.max_event_bytes:
                return web.json_response({"error": "payload_too_large"}, status=413)
            if event["id"] in self.refuse:
                return web.json_response({"error": "validation_error"}, status=422)
        self.accepted += [event["id"] for event in events]
        self.accepted_bodies.append(len(raw))
        return web.json_response({"status": "sent"}, status=201)


@pytest.fixture
async def service() -> AsyncIterator[FakeEventService]:
    fake = FakeEventService(EventLimits(max_event_bytes=3000, max_batch_bytes=10_000))
    app = web.Application(client_max_size=100 * 1024 * 1024)
    app.router.add_post("/token", fake.token)
    app.router.add_post("/send-event", fake.send)
    server = TestServer(app)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@pytest.fixture
async def queue(
    tmp_path: Path, service: FakeEventService, session: aiohttp.ClientSession
) -> AsyncIterator[EventQueue]:
    spool = Spool(tmp_path, name="events")
    store = DeadLetterStore(tmp_path, name="events-dead-letters")
    await spool.open()
    await store.open()
    upstream = ServiceClient(
        "events",
        ReplicaPool("events", [service.url]),
        CircuitBreaker("events", BreakerConfig(consecutive_failures=50)),
        RetryBudget(),
        lambda: session,
        timeout_s=5.0,
    )
    tokens = ServiceTokenProvider(session, [service.url], username="relay", password=PASSWORD)
    # The gateway's own limits are the defaults: larger than this event service's, as after
    # an operator lowered the service's limits (or as a misconfiguration would have it).
    yield EventQueue(
        spool,
        upstream,
        tokens,
        limits=EventLimits(),
        dead_letters=store,
    )
    await store.close()
    await spool.close()


async def spool_events(queue: EventQueue, docs: list[dict[str, Any]]) -> list[CloudEventType]:
    events = [CloudEvent.model_validate(doc).stamped() for doc in docs]
    await queue.accept(events, [e.encode() for e in events], is_batch=True)
    return events


async def drain(queue: EventQueue) -> None:
    drainer = Drainer(queue.spool, queue.forward, batch=500, max_bytes=4 * 1024 * 1024)
    for _ in range(20):
        if not queue.spool.depth:
            return
        await drainer._round()
    raise AssertionError(f"spool not drained: {drainer.snapshot()}")


async def test_a_batch_refused_for_size_is_halved_until_it_fits(
    queue: EventQueue, service: FakeEventService
) -> None:
    """40 events of ~1 KB (41 KB) against a 10 KB body limit: halves of 20, 10, 5: all sent."""
    events = await spool_events(queue, [cloud_event(900) for _ in range(40)])
    await drain(queue)
    assert service.accepted == [e.id for e in events]
    assert queue.dead_letters.count == 0
    assert queue.splits >= 3
    assert service.bodies[0] > 10_000
    assert len(service.accepted_bodies) == 8  # 41 KB in parts of 5 events (~5 KB)
    assert all(size <= 10_000 for size in service.accepted_bodies)


async def test_a_single_refused_event_is_dead_lettered_and_the_rest_delivered(
    queue: EventQueue, service: FakeEventService
) -> None:
    """An event over the service's per-event limit and one it refuses: dead letters.

    Both are kept with their status (413, 422); everything else is delivered, in order.
    """
    docs = [cloud_event(100) for _ in range(7)]
    docs[2] = cloud_event(5000)
    service.refuse = {docs[5]["id"]}
    events = await spool_events(queue, docs)
    await drain(queue)
    assert service.accepted == [e.id for i, e in enumerate(events) if i not in {2, 5}]
    too_big = await queue.dead_letters.get(docs[2]["id"])
    refused = await queue.dead_letters.get(docs[5]["id"])
    assert too_big is not None
    assert refused is not None
    assert (too_big.status, refused.status) == (413, 422)
    assert too_big.payload == events[2].encode()
    assert queue.snapshot()["dead_lettered"] == 2


async def test_replay_puts_a_dead_letter_back_and_discard_deletes_it(
    queue: EventQueue, service: FakeEventService
) -> None:
    """A replayed event is delivered once the service takes it; discard removes for good."""
    docs = [cloud_event(100), cloud_event(100)]
    service.refuse = {d["id"] for d in docs}
    await spool_events(queue, docs)
    await drain(queue)
    assert queue.dead_letters.count == 2
    # Replayed while the service still refuses it: dead again, its record continued.
    assert (await queue.replay(docs[0]["id"]))["status"] == "queued"
    await drain(queue)
    again = await queue.dead_letters.get(docs[0]["id"])
    assert again is not None
    assert (again.times_dead, again.attempts) == (2, 2)
    service.refuse = set()
    answer = await queue.replay(docs[0]["id"])
    assert answer["status"] == "queued"
    await drain(queue)
    assert service.accepted == [docs[0]["id"]]
    assert (await queue.discard(docs[1]["id"], by="admin"))["status"] == "discarded"
    assert queue.dead_letters.count == 0


async def test_a_401_renews_the_token_and_resends_at_once(
    queue: EventQueue, service: FakeEventService
) -> None:
    events = await spool_events(queue, [cloud_event(10)])
    service.unauthorized_once = True
    assert await queue.forward(await queue.spool.peek(10)) == [1]
    assert service.accepted == [events[0].id]
    assert service.tokens == 2


@pytest.mark.parametrize("status", [403, 404, 429, 500, 503])
async def test_answers_a_retry_can_fix_keep_the_batch(
    queue: EventQueue, service: FakeEventService, status: int
) -> None:
    """Nothing is acked nor dead-lettered: the drainer backs off and sends it again."""
    await spool_events(queue, [cloud_event(10), cloud_event(10)])
    service.status = status
    with pytest.raises(ConnectionError):
        await queue.forward(await queue.spool.peek(10))
    assert queue.dead_letters.count == 0
    assert queue.spool.depth == 2


def test_every_hop_defaults_to_the_same_contract() -> None:
    """Gateway, event service and sensor relay: one set of numbers unless tuned."""
    hops = [GatewaySettings(), EventsSettings(), SensorSettings()]
    assert {hop.event_limits() for hop in hops} == {EventLimits()}


def test_a_contract_that_cannot_carry_one_maximal_event_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="must hold one maximal event"):
        EventsSettings(max_event_bytes=2_000_000, max_body_bytes=1_000_000)


async def test_replay_oldest_puts_dead_letters_back_in_order(
    queue: EventQueue, service: FakeEventService
) -> None:
    """After the cause is fixed, the oldest dead letters go back at once, in their order."""
    docs = [cloud_event(100) for _ in range(4)]
    service.refuse = {d["id"] for d in docs}
    await spool_events(queue, docs)
    await drain(queue)
    service.refuse = set()
    answer = await queue.replay_oldest(3)
    assert answer == {"replayed": [d["id"] for d in docs[:3]], "count": 3, "remaining": 1}
    await drain(queue)
    assert service.accepted == [d["id"] for d in docs[:3]]
    assert (await queue.replay_oldest(10))["replayed"] == [docs[3]["id"]]

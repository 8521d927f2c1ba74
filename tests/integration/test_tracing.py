"""One trace per sensor test, from the request to the consumed event, over real OTLP/HTTP.

Real processes (PostgreSQL, the embedded broker, auth, sensor, events, gateway) export their
spans to a small OTLP/HTTP receiver in this test, which decodes the protobuf payloads
(``ExportTraceServiceRequest``) as a collector would. A test submitted through the gateway
with a known traceparent must come back as one trace whose parent links run
request -> job -> outbox relay -> event receive -> publish -> process, with the verdict,
sensor type and attempt as attributes, and the services' log lines carrying its ids.
"""

from __future__ import annotations

import gzip
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from harness import Harness, wait_for

pytest.importorskip("opentelemetry.proto", reason="the tracing extra is not installed")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

pytestmark = pytest.mark.integration
RELAY_PASSWORD = "relay-password-for-tracing"  # noqa: S105 - a test fixture's password
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
EXPECTED = {
    "POST /test/sensor/{sensor_type}",
    "POST sensor",
    "GET /verify",
    "POST /test/{sensor_type}",
    "sensor test job",
    "outbox relay",
    "event receive",
    "publish sensor-events",
    "process sensor-events",
}


@dataclass
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]
    links: list[str]


@dataclass
class Receiver:
    """An OTLP/HTTP traces endpoint (``POST /v1/traces``, protobuf) on a loopback port."""

    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces"
                if ok:
                    receiver.add(body)
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    span = Span(
                        service=resource["service.name"],
                        name=s.name,
                        kind=s.kind,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent=s.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        links=[link.span_id.hex() for link in s.links],
                    )
                    with self.lock:
                        self.spans.append(span)

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture(scope="module")
def receiver():
    found = Receiver()
    endpoint = found.start()
    yield found, endpoint
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture(scope="module")
def system(receiver):
    _, endpoint = receiver
    harness = Harness(
        {"postgres", "broker", "auth", "events", "sensor", "gateway"},
        offset_start=37000,
        env={
            "SERVICE_ACCOUNT_PASSWORD": RELAY_PASSWORD,
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        },
    ).start()
    yield harness
    harness.close()


def one(spans: list[Span], service: str, name: str) -> Span:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, (service, name, [(s.service, s.name) for s in spans])
    return found[0]


def test_a_sensor_test_is_one_trace_from_request_to_consumed_event(system, receiver):
    """Gateway, sensor and events spans share one trace, each parented by the one before."""
    found, _ = receiver
    gateway = system.url("gateway")
    headers = {**system.headers(), "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"}
    response = httpx.post(f"{gateway}/test/sensor/temperature", headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    assert response.headers["traceparent"].startswith(f"00-{TRACE_ID}-")
    test_id = response.json()["test_id"]

    def consumed() -> list[Span] | None:
        spans = found.trace(TRACE_ID)
        names = {s.name for s in spans}
        return spans if names >= EXPECTED else None

    spans = wait_for(consumed, 60, interval=0.2)
    assert spans, f"trace incomplete: {[(s.service, s.name) for s in found.trace(TRACE_ID)]}"

    server = one(spans, "gateway", "POST /test/sensor/{sensor_type}")
    client = one(spans, "gateway", "POST sensor")
    sensor = one(spans, "sensor", "POST /test/{sensor_type}")
    job = one(spans, "sensor", "sensor test job")
    relay = one(spans, "sensor", "outbox relay")
    receive = one(spans, "events", "event receive")
    publish = one(spans, "events", "publish sensor-events")
    process = one(spans, "events", "process sensor-events")
    chain = [server, client, sensor, job, relay, receive, publish, process]
    assert server.parent == CLIENT_SPAN
    for parent, child in itertools.pairwise(chain):
        assert child.parent == parent.span_id, (child.name, parent.name)
    # No parent id that no exported span has (the token checks at auth included).
    ids = {s.span_id for s in spans} | {CLIENT_SPAN}
    assert all(s.parent in ids for s in spans), [(s.service, s.name) for s in spans]
    assert {s.service for s in spans} == {"gateway", "auth", "sensor", "events"}

    assert job.attributes["sensor.type"] == "pt100_class_a"
    assert job.attributes["sensor.verdict"] == "pass"
    assert job.attributes["job.attempt"] == 1
    assert job.attributes["test.id"] == test_id
    assert job.attributes["job.status"] == "completed"
    assert process.attributes["sensor.verdict"] == "pass"
    assert process.attributes["sensor.type"] == "pt100_class_a"
    assert process.attributes["cloudevents.event_type"] == "sensor.test.completed"
    assert receive.attributes["cloudevents.event_id"] == process.attributes["cloudevents.event_id"]
    assert server.attributes["http.response.status_code"] == 202
    # The receive span points at the request that carried the relay's batch.
    assert len(receive.links) == 1

    # The log lines carry the same ids: the request lines of the gateway and the sensor.
    def request_line(name: str, span: Span) -> dict[str, Any] | None:
        for line in system.log(name).splitlines():
            if '"request"' in line and TRACE_ID in line:
                doc = json.loads(line)
                if doc.get("span_id") == span.span_id:
                    return doc
        return None

    assert wait_for(lambda: request_line("gateway", server), 10)
    assert wait_for(lambda: request_line("sensor", sensor), 10)


def test_untraced_callers_still_get_one_trace_per_request(system, receiver):
    """A request without a traceparent starts its own trace, returned in the answer."""
    found, _ = receiver
    response = httpx.get(f"{system.url('gateway')}/.well-known/jwks.json", timeout=10)
    trace_id = response.headers["traceparent"].split("-")[1]
    assert trace_id != TRACE_ID
    spans = wait_for(lambda: found.trace(trace_id), 10)
    assert spans
    root = one(spans, "gateway", "GET /.well-known/jwks.json")
    assert root.parent == ""
    client = one(spans, "gateway", "GET auth")
    assert client.parent == root.span_id
    assert one(spans, "auth", "GET /.well-known/jwks.json").parent == client.span_id


def test_health_checks_are_not_traced(system, receiver):
    """Probes and scrapes (every few seconds) make no spans."""
    found, _ = receiver
    response = httpx.get(f"{system.url('sensor')}/health", timeout=10)
    trace_id = response.headers["traceparent"].split("-")[1]
    assert not wait_for(lambda: found.trace(trace_id), 1)
    with found.lock:
        assert not [s for s in found.spans if s.name.startswith(("GET /health", "GET /metrics"))]

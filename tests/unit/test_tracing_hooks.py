"""core/tracing.py and core/spans.py: off without OTEL_*, and when on, spans with the logs' ids.

The on-path tests install a tracer over the SDK's in-memory exporter (the OTLP/HTTP export
itself is proven against real processes in tests/integration/test_tracing.py).
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, ClassVar

import httpx
import pytest
from pydantic_settings import SettingsConfigDict

from sensor_backend.core import request_context, tracing
from sensor_backend.core.app import ServiceContext, create_app
from sensor_backend.core.request_context import outgoing_headers, trace_var
from sensor_backend.core.settings import ServiceSettings
from sensor_backend.core.spans import ClientSpan, EventSpans

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
ENDPOINT = "http://127.0.0.1:4318"


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRACETEST_", frozen=True, extra="ignore")
    service_name: ClassVar[str] = "demo"
    default_port: ClassVar[int] = 8098


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_only_an_exporter_turns_tracing_on(environ: dict[str, str], *, wanted: bool) -> None:
    """An endpoint or the otlp exporter asks for traces; disabled and ``none`` win."""
    assert tracing.wanted(environ) is wanted


def test_without_otel_variables_nothing_is_configured_or_imported() -> None:
    """No OTEL_*: configure installs nothing, and neither the SDK nor an exporter is imported.

    (The OpenTelemetry API itself comes with FastAPI, which imports it.)
    """
    code = (
        "import sys\n"
        "OTEL_SDK = ('opentelemetry.sdk', 'opentelemetry.exporter', 'opentelemetry.proto')\n"
        "from sensor_backend.core import tracing\n"
        "from sensor_backend.gateway.app import build_app\n"
        "from sensor_backend.gateway.settings import GatewaySettings\n"
        "build_app(GatewaySettings())\n"
        "assert tracing.configure_tracing('gateway') is False\n"
        "assert tracing.state.tracer is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(OTEL_SDK)))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_SPOOL_DIR": "/tmp"}  # noqa: S108 - never written
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_hooks_are_no_ops_when_off() -> None:
    """Off, the helpers hand back their fallbacks and yield a span that ignores attributes."""
    assert tracing.state.tracer is None
    assert tracing.current_traceparent(TRACEPARENT) == TRACEPARENT
    tracing.annotate({"sensor.verdict": "pass"})
    with tracing.span("job", traceparent=TRACEPARENT) as active:
        active.set({"job.attempt": 1})
        assert trace_var.get() is None


def test_settings_the_sdk_refuses_leave_the_service_untraced(monkeypatch) -> None:
    """A bad OTEL_BSP_* value makes the SDK raise: the service starts untraced, not at all."""
    pytest.importorskip("opentelemetry.sdk")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "-1")
    assert tracing.configure_tracing("demo") is False
    assert tracing.state.tracer is None
    assert tracing.state.provider is None


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on, spans kept in memory (synchronously exported)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.state.provider = provider
    tracing.state.tracer = provider.get_tracer("test")
    request_context.set_outgoing_parent_is_current(value=True)
    yield exporter
    tracing.shutdown_tracing()


def _hex(span_id: int) -> str:
    return f"{span_id:016x}"


async def test_server_span_ids_are_the_request_context_ids(exported) -> None:
    """The middleware's server span continues the caller, and the handler sees its ids."""
    app = create_app(ServiceContext(DemoSettings()), title="demo")
    seen: dict[str, str] = {}

    @app.get("/ids")
    async def ids() -> dict[str, str]:
        trace = trace_var.get()
        assert trace is not None
        seen.update(trace=trace.trace_id, span=trace.span_id, out=outgoing_headers()["traceparent"])
        return seen

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        response = await client.get("/ids", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    (span,) = exported.get_finished_spans()
    assert span.name == "GET /ids"
    assert f"{span.context.trace_id:032x}" == TRACE_ID == seen["trace"]
    assert _hex(span.context.span_id) == seen["span"]
    assert span.parent is not None
    assert _hex(span.parent.span_id) == SPAN_ID
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    # A downstream call names this span as its parent, and so does the answer.
    assert seen["out"] == f"00-{TRACE_ID}-{seen['span']}-01"
    assert response.headers["traceparent"] == seen["out"]


def test_span_continues_a_stored_traceparent_and_sets_the_log_ids(exported) -> None:
    """A job span is a child of the stored traceparent; inside it the logs carry its ids."""
    with tracing.span("job", traceparent=TRACEPARENT, attributes={"job.attempt": 2}) as active:
        trace = trace_var.get()
        inner = tracing.current_traceparent("fallback")
        tracing.annotate({"sensor.verdict": "fail", "skipped": None})
        active.set({"sensor.type": "pt100_class_a"})
    assert trace_var.get() is None
    (span,) = exported.get_finished_spans()
    assert trace is not None
    assert (trace.trace_id, trace.span_id) == (TRACE_ID, _hex(span.context.span_id))
    assert inner == trace.traceparent
    assert span.parent is not None
    assert _hex(span.parent.span_id) == SPAN_ID
    assert dict(span.attributes or {}) == {
        "job.attempt": 2,
        "sensor.verdict": "fail",
        "sensor.type": "pt100_class_a",
    }


def test_event_spans_continue_each_events_own_trace(exported) -> None:
    """One span per item, each a child of its own traceparent; none for an item without."""
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    batch = EventSpans("relay", "producer", [TRACEPARENT, None, other], [{}, {}, {}])
    assert batch.traceparents[1] is None
    batch.end("HTTP 503")
    finished = exported.get_finished_spans()
    assert [f"{s.context.trace_id:032x}" for s in finished] == [TRACE_ID, "1" * 32]
    assert [s.status.status_code.name for s in finished] == ["ERROR", "ERROR"]
    # The parent's flags (sampled) are kept.
    assert batch.traceparents[0] == f"00-{TRACE_ID}-{_hex(finished[0].context.span_id)}-01"


def test_client_span_replaces_the_traceparent_header(exported) -> None:
    """The client span becomes the downstream's parent, in a dict or a list of pairs."""
    client = ClientSpan("sensor", "POST", "/test/x?y=1")
    as_dict = client.inject({"Traceparent": "old", "a": "b"})
    as_list = client.inject([("traceparent", "old"), ("a", "b")])
    client.end()
    (span,) = exported.get_finished_spans()
    context = span.context
    expected = f"00-{context.trace_id:032x}-{_hex(context.span_id)}-{context.trace_flags:02x}"
    assert as_dict == {"a": "b", "traceparent": expected}
    assert as_list == [("a", "b"), ("traceparent", expected)]
    assert (span.attributes or {})["url.path"] == "/test/x"

"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables ask for it.

Off (the default, and whenever ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``)
nothing of OpenTelemetry is imported and every hook costs one attribute check
(``state.tracer is None``). On (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, or ``OTEL_TRACES_EXPORTER=otlp``): a
`TracerProvider` with a `BatchSpanProcessor` and the OTLP/HTTP protobuf exporter, which
read the rest of the standard variables themselves (sampler: ``OTEL_TRACES_SAMPLER`` and
``_ARG``; ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``, exporter
headers, timeout and compression). The packages are the ``tracing`` extra; without them a
configured service logs a warning and runs untraced.

The spans' ids are the ids the logs carry: a span started here also sets the request
context's `TraceContext` (core/request_context.py), which every log line includes. A remote
parent is always a W3C ``traceparent`` string, as stored with a job, an outbox row and a
CloudEvent, and sent as a Kafka header: the SDK's propagator is not needed for that.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensor_backend import __version__
from sensor_backend.core import request_context
from sensor_backend.core.log import get_logger
from sensor_backend.core.request_context import TraceContext, parse_traceparent, trace_var

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanKind, Tracer

log = get_logger("tracing")
Attributes = dict[str, str | int | float | bool]


@dataclass(slots=True)
class _State:
    tracer: Tracer | None = None
    provider: TracerProvider | None = None


state = _State()


def enabled() -> bool:
    return state.tracer is not None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (an endpoint, or the otlp exporter)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
    if "none" in exporters:
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint) or "otlp" in exporters


def configure_tracing(
    service_name: str, *, instance_id: str = "", environ: Mapping[str, str] = os.environ
) -> bool:
    """Install the tracer when the environment asks for one; True when tracing is on."""
    if state.tracer is not None:
        return True
    if not wanted(environ):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415 - only when on
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        log.warning("OTEL_* asks for traces but the tracing extra is not installed: untraced")
        return False
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol != "http/protobuf":
        log.warning("only OTLP over HTTP (http/protobuf) is supported", asked=protocol)
    attributes: Attributes = {"service.namespace": "sensor-backend", "service.version": __version__}
    # Resource.create lets given attributes win over OTEL_SERVICE_NAME and
    # OTEL_RESOURCE_ATTRIBUTES: the service's own name is only the default.
    if not environ.get("OTEL_SERVICE_NAME") and "service.name=" not in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes["service.name"] = service_name
    if instance_id:
        attributes["service.instance.id"] = instance_id
    try:
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    except ValueError as exc:  # e.g. OTEL_BSP_MAX_QUEUE_SIZE=-1: the SDK refuses it
        log.warning("OTEL_* settings refused by the OpenTelemetry SDK: untraced", error=str(exc))
        return False
    state.provider = provider
    state.tracer = provider.get_tracer("sensor_backend", __version__)
    # Every hop's span is exported now: a downstream call names it as its parent.
    request_context.set_outgoing_parent_is_current(value=True)
    log.info("tracing on", exporter="otlp/http", service=service_name)
    return True


def shutdown_tracing() -> None:
    """Export what is buffered and stop (blocking: run it off the event loop)."""
    provider, state.provider, state.tracer = state.provider, None, None
    request_context.set_outgoing_parent_is_current(value=False)
    if provider is not None:
        provider.shutdown()


# -- span primitives ----------------------------------------------------------------------


def trace_context_of(span: Span) -> TraceContext:
    ctx = span.get_span_context()
    return TraceContext(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{ctx.trace_flags:02x}")


def traceparent_of(span: Span) -> str:
    return trace_context_of(span).traceparent


def _kind(name: str) -> SpanKind:
    from opentelemetry.trace import SpanKind  # noqa: PLC0415 - only when on

    return SpanKind[name.upper()]


def _parent(traceparent: str | None) -> Context | None:
    """A context whose span is the remote ``traceparent`` (None: the current context)."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    from opentelemetry.trace import (  # noqa: PLC0415 - only when on
        NonRecordingSpan,
        SpanContext,
        TraceFlags,
        set_span_in_context,
    )

    remote = SpanContext(
        int(parsed.trace_id, 16),
        int(parsed.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(parsed.flags, 16)),
    )
    return set_span_in_context(NonRecordingSpan(remote))


def start_span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: str = "internal",
    attributes: Attributes | None = None,
    link_current: bool = False,
) -> Span:
    """A started span (tracing must be on): child of ``traceparent``, else of the current span.

    ``link_current``: also link the current span (an event received in a batch request
    continues its own trace and points at the request that carried it).
    """
    tracer = state.tracer
    assert tracer is not None  # noqa: S101 - callers check enabled() first
    from opentelemetry import trace  # noqa: PLC0415 - only when on

    links = None
    if link_current:
        current = trace.get_current_span().get_span_context()
        links = [trace.Link(current)] if current.is_valid else None
    return tracer.start_span(
        name, context=_parent(traceparent), kind=_kind(kind), attributes=attributes, links=links
    )


def end_span(span: Span, error: BaseException | str | None = None) -> None:
    if error is not None:
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415 - only when on

        if isinstance(error, BaseException):
            span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    span.end()


class Active:
    """A span that attributes may be added to; a no-op around None (tracing off)."""

    __slots__ = ("span",)

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def set(self, attributes: Mapping[str, object]) -> None:
        if self.span is not None:
            for key, value in attributes.items():
                if isinstance(value, str | int | float | bool):
                    self.span.set_attribute(key, value)


_OFF = Active(None)


@contextmanager
def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: str = "internal",
    attributes: Attributes | None = None,
) -> Iterator[Active]:
    """A span made current for the block (its ids in the log lines too); no-op when off."""
    if state.tracer is None:
        yield _OFF
        return
    from opentelemetry import context, trace  # noqa: PLC0415 - only when on

    started = start_span(name, traceparent=traceparent, kind=kind, attributes=attributes)
    token = context.attach(trace.set_span_in_context(started))
    trace_token = trace_var.set(trace_context_of(started))
    error: BaseException | None = None
    try:
        yield Active(started)
    except BaseException as exc:
        error = exc
        raise
    finally:
        end_span(started, error)
        trace_var.reset(trace_token)
        context.detach(token)


def annotate(attributes: Mapping[str, object]) -> None:
    """Attributes on the current span (None values skipped); no-op when off."""
    if state.tracer is None:
        return
    from opentelemetry import trace  # noqa: PLC0415 - only when on

    Active(trace.get_current_span()).set(attributes)


def current_traceparent(fallback: str | None) -> str | None:
    """The current span's traceparent when tracing is on, else ``fallback``."""
    if state.tracer is None:
        return fallback
    from opentelemetry import trace  # noqa: PLC0415 - only when on

    current = trace.get_current_span()
    return traceparent_of(current) if current.get_span_context().is_valid else fallback

"""The spans of requests, calls between services and batches of events (README "Traces").

Built on `core.tracing`'s primitives and used only when tracing is on: `ServerSpan` in the
core middleware (core/app.py), `ClientSpan` around a call of `core.service_client`, and
`EventSpans` where events travel in batches (the sensor outbox relay, the event service).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sensor_backend.core.request_context import parse_traceparent
from sensor_backend.core.tracing import (
    Active,
    Attributes,
    end_span,
    start_span,
    trace_context_of,
    traceparent_of,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.trace import Span
    from starlette.types import Scope


class ServerSpan:
    """The span of one request in the core middleware (core/app.py); current while it runs."""

    __slots__ = ("_span", "_token", "trace")

    def __init__(self, scope: Scope, traceparent: str | None) -> None:
        from opentelemetry import context, trace  # noqa: PLC0415 - only when on

        method = scope["method"]
        self._span = start_span(
            method,
            traceparent=traceparent,
            kind="server",
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        self.trace = trace_context_of(self._span)
        self._token = context.attach(trace.set_span_in_context(self._span))

    def end(self, scope: Scope, status: int) -> None:
        from opentelemetry import context  # noqa: PLC0415 - only when on

        route = getattr(scope.get("route"), "path", None)
        if route:
            self._span.update_name(f"{scope['method']} {route}")
            self._span.set_attribute("http.route", route)
        self._span.set_attribute("http.response.status_code", status)
        end_span(self._span, f"HTTP {status}" if status >= 500 else None)  # noqa: PLR2004
        context.detach(self._token)


class ClientSpan:
    """The span of one call to another service (core/service_client.py), all tries in it."""

    __slots__ = ("_span",)

    def __init__(self, service: str, method: str, path: str) -> None:
        self._span = start_span(
            f"{method} {service}",
            kind="client",
            attributes={
                "http.request.method": method,
                "url.path": path.split("?", 1)[0],
                "peer.service": service,
            },
        )

    def inject(self, headers: Any) -> Any:  # noqa: ANN401 - a mapping, a list of pairs or None
        """``headers`` with this span as the downstream's parent."""
        value = traceparent_of(self._span)
        if headers is None:
            return {"traceparent": value}
        if isinstance(headers, Mapping):
            kept = {k: v for k, v in headers.items() if k.lower() != "traceparent"}
            return {**kept, "traceparent": value}
        kept_pairs = [(k, v) for k, v in headers if k.lower() != "traceparent"]
        return [*kept_pairs, ("traceparent", value)]

    def status(self, status: int) -> None:
        self._span.set_attribute("http.response.status_code", status)

    def end(self, error: BaseException | None = None) -> None:
        end_span(self._span, error)


# -- batches of events --------------------------------------------------------------------


class EventSpans:
    """One span per item of a batch, each a child of the item's own ``traceparent``.

    Items without a valid traceparent get no span (their entry in ``traceparents`` is
    None). ``traceparents`` are the spans' own, for the next hop to continue.
    """

    __slots__ = ("_spans", "traceparents")

    def __init__(
        self,
        name: str,
        kind: str,
        parents: Sequence[str | None],
        attributes: Sequence[Attributes],
        *,
        link_current: bool = False,
    ) -> None:
        self._spans: list[Span | None] = [
            start_span(name, traceparent=p, kind=kind, attributes=a, link_current=link_current)
            if parse_traceparent(p) is not None
            else None
            for p, a in zip(parents, attributes, strict=True)
        ]
        self.traceparents = [None if s is None else traceparent_of(s) for s in self._spans]

    def set(self, index: int, attributes: Mapping[str, object]) -> None:
        Active(self._spans[index]).set(attributes)

    def end(self, error: BaseException | str | None = None) -> None:
        for started in self._spans:
            if started is not None:
                end_span(started, error)

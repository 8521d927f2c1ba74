"""Request identity carried across services: ``X-Request-ID`` and W3C ``traceparent``.

The values live in context variables so that logs (structlog merges contextvars) and
outgoing calls (`outgoing_headers`) pick them up without being passed around.

traceparent format (W3C Trace Context §3.2): ``00-<32 hex trace-id>-<16 hex parent-id>-<2 hex
flags>``; an all-zero trace-id or parent-id is invalid.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from dataclasses import dataclass

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"

# A client-supplied request id is echoed into logs and headers: keep it to a safe alphabet
# and a bounded length so it can never inject a header or a log line.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span in the same trace, for an outgoing call."""
        return TraceContext(self.trace_id, new_span_id(), self.flags)


request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
trace_var: ContextVar[TraceContext | None] = ContextVar("trace", default=None)


def new_request_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def valid_request_id(value: str | None) -> str | None:
    # fullmatch: with match(), "$" also accepts a trailing newline (header/log injection).
    if value and _REQUEST_ID_RE.fullmatch(value):
        return value
    return None


def parse_traceparent(value: str | None) -> TraceContext | None:
    if not value:
        return None
    # Lowercase hex only: W3C Trace Context §3.2.2 says to ignore anything else.
    match = _TRACEPARENT_RE.fullmatch(value.strip())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


def incoming(request_id: str | None, traceparent: str | None) -> tuple[str, TraceContext]:
    """Adopt the caller's ids when valid, otherwise start new ones; returns this hop's ids.

    The span id of this hop is new; the caller's span becomes our parent (W3C §3.2.2.3).
    """
    rid = valid_request_id(request_id) or new_request_id()
    parent = parse_traceparent(traceparent)
    trace = parent.child() if parent else TraceContext(os.urandom(16).hex(), new_span_id())
    return rid, trace


class _Outgoing:
    # Untraced, each outgoing call gets a fresh span id of its own. With tracing on
    # (core/tracing.py) the current span is exported, so it is the downstream's parent,
    # unless a client span (core/service_client.py) replaces it: no parent id that no
    # exported span has.
    parent_is_current = False


def set_outgoing_parent_is_current(*, value: bool) -> None:
    _Outgoing.parent_is_current = value


def outgoing_headers() -> dict[str, str]:
    """Headers that carry the current request's identity to a downstream call."""
    headers: dict[str, str] = {}
    rid = request_id_var.get()
    if rid:
        headers["X-Request-ID"] = rid
    trace = trace_var.get()
    if trace is not None:
        parent = trace if _Outgoing.parent_is_current else trace.child()
        headers["traceparent"] = parent.traceparent
    return headers

"""Request identity: ``X-Request-ID`` validation and W3C ``traceparent`` (Trace Context §3.2)."""

from __future__ import annotations

import re
from contextvars import copy_context

import pytest

from sensor_backend.core.request_context import (
    TraceContext,
    incoming,
    new_request_id,
    new_span_id,
    outgoing_headers,
    parse_traceparent,
    request_id_var,
    trace_var,
    valid_request_id,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "abc-123",
        "req.1:2_3-4",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "A" * 128,
    ],
)
def test_valid_request_id_is_kept(value: str) -> None:
    """A request id of 1 to 128 safe characters is adopted unchanged."""
    assert valid_request_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "A" * 129,
        "has space",
        "inject\r\nSet-Cookie: x=1",
        "carriage\rreturn",
        "line\nfeed",
        "\nleading-newline",
        "tab\there",
        'quote"d',
        "semi;colon",
        "slash/ed",
        "ünïcödé",
    ],
)
def test_invalid_request_id_is_refused(value: str | None) -> None:
    """Too long, empty or header/log-injecting request ids are refused."""
    assert valid_request_id(value) is None


def test_request_id_with_trailing_newline_is_refused() -> None:
    """A request id ending in a newline cannot be echoed into a header or a log line."""
    assert valid_request_id("abc\n") is None


def test_parse_valid_traceparent() -> None:
    """A version-00 traceparent yields its trace id, parent span id and flags."""
    assert parse_traceparent(TRACEPARENT) == TraceContext(TRACE_ID, SPAN_ID, "01")


@pytest.mark.parametrize("flags", ["00", "01", "ff"])
def test_parse_traceparent_keeps_flags(flags: str) -> None:
    """The trace flags are carried over as given."""
    parsed = parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-{flags}")
    assert parsed is not None
    assert parsed.flags == flags
    assert parsed.traceparent == f"00-{TRACE_ID}-{SPAN_ID}-{flags}"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"01-{TRACE_ID}-{SPAN_ID}-01",  # only version 00 is understood
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is forbidden by the spec
        f"0-{TRACE_ID}-{SPAN_ID}-01",
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",  # trace id too short
        f"00-{TRACE_ID}0-{SPAN_ID}-01",  # trace id too long
        f"00-{TRACE_ID}-{SPAN_ID[:-1]}-01",  # parent id too short
        f"00-{TRACE_ID}-{SPAN_ID}0-01",  # parent id too long
        f"00-{TRACE_ID}-{SPAN_ID}-1",  # flags too short
        f"00-{TRACE_ID}-{SPAN_ID}-011",  # flags too long
        f"00-{TRACE_ID[:-1]}g-{SPAN_ID}-01",  # not hex
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE_ID}_{SPAN_ID}_01",
    ],
)
def test_invalid_traceparent_is_ignored(value: str | None) -> None:
    """Malformed, zero or non-00 traceparents are ignored (a new trace is started)."""
    assert parse_traceparent(value) is None


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID.upper()}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-0A",
    ],
)
def test_uppercase_traceparent_is_ignored(value: str) -> None:
    """Uppercase hex is not valid in a traceparent."""
    assert parse_traceparent(value) is None


def test_new_ids_are_random_lowercase_hex() -> None:
    """Generated request ids are 32 hex chars, span ids 16, and differ call to call."""
    rid_a, rid_b = new_request_id(), new_request_id()
    span_a, span_b = new_span_id(), new_span_id()
    assert HEX32.match(rid_a)
    assert HEX16.match(span_a)
    assert rid_a != rid_b
    assert span_a != span_b
    assert valid_request_id(rid_a) == rid_a


def test_child_keeps_trace_and_flags_with_new_span() -> None:
    """A child span stays in the same trace with the same flags and a fresh span id."""
    parent = TraceContext(TRACE_ID, SPAN_ID, "00")
    child = parent.child()
    assert child.trace_id == TRACE_ID
    assert child.flags == "00"
    assert HEX16.match(child.span_id)
    assert child.span_id != SPAN_ID


def test_incoming_adopts_callers_ids() -> None:
    """A valid caller's request id is kept and its trace continues with a new span."""
    rid, trace = incoming("caller-id-1", TRACEPARENT)
    assert rid == "caller-id-1"
    assert trace.trace_id == TRACE_ID
    assert trace.span_id != SPAN_ID
    assert HEX16.match(trace.span_id)
    assert trace.flags == "01"


@pytest.mark.parametrize(
    ("request_id", "traceparent"),
    [
        (None, None),
        ("", ""),
        ("bad id\r\n", f"00-{'0' * 32}-{SPAN_ID}-01"),
        ("x" * 200, "not-a-traceparent"),
    ],
)
def test_incoming_creates_new_ids_when_invalid(
    request_id: str | None, traceparent: str | None
) -> None:
    """Missing or invalid incoming ids are replaced by newly generated ones."""
    rid, trace = incoming(request_id, traceparent)
    assert rid != request_id
    assert HEX32.match(rid)
    assert HEX32.match(trace.trace_id)
    assert trace.trace_id != "0" * 32
    assert HEX16.match(trace.span_id)
    assert parse_traceparent(trace.traceparent) == trace


def test_incoming_traces_differ_between_requests() -> None:
    """Two requests without a traceparent start two different traces."""
    _, first = incoming(None, None)
    _, second = incoming(None, None)
    assert first.trace_id != second.trace_id


def test_outgoing_headers_empty_without_context() -> None:
    """Outside a request no identity headers are sent."""
    assert copy_context().run(outgoing_headers) == {}


def _outgoing_with(rid: str | None, trace: TraceContext | None) -> dict[str, str]:
    request_id_var.set(rid)
    trace_var.set(trace)
    return outgoing_headers()


def test_outgoing_headers_carry_request_id_and_child_span() -> None:
    """Outgoing headers carry the current request id and a child span of the current trace."""
    current = TraceContext(TRACE_ID, SPAN_ID, "01")
    headers = copy_context().run(_outgoing_with, "rid-42", current)
    assert headers["X-Request-ID"] == "rid-42"
    child = parse_traceparent(headers["traceparent"])
    assert child is not None
    assert child.trace_id == TRACE_ID
    assert child.span_id != SPAN_ID
    assert child.flags == "01"


@pytest.mark.parametrize(
    ("rid", "trace", "expected_keys"),
    [
        ("rid-only", None, {"X-Request-ID"}),
        (None, TraceContext(TRACE_ID, SPAN_ID), {"traceparent"}),
    ],
)
def test_outgoing_headers_only_what_is_known(
    rid: str | None, trace: TraceContext | None, expected_keys: set[str]
) -> None:
    """Only the identity values actually set in the context are sent on."""
    headers = copy_context().run(_outgoing_with, rid, trace)
    assert set(headers) == expected_keys


def test_context_vars_default_to_none() -> None:
    """Outside a request the context variables hold nothing."""
    ctx = copy_context()
    assert ctx.run(request_id_var.get) is None
    assert ctx.run(trace_var.get) is None

"""Structured logging: secret redaction, request ids on every line, one JSON object per line."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from sensor_backend.core.log import (
    REDACTED,
    SECRET_KEYS,
    add_request_ids,
    configure_logging,
    get_logger,
    redact_secrets,
)
from sensor_backend.core.request_context import TraceContext, request_id_var, trace_var

if TYPE_CHECKING:
    from collections.abc import Iterator

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo configure_logging: root handlers and level, uvicorn loggers, structlog config."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = {
        name: (lg.handlers[:], lg.propagate, lg.disabled)
        for name in UVICORN_LOGGERS
        for lg in [logging.getLogger(name)]
    }
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (lg_handlers, propagate, disabled) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = lg_handlers
            lg.propagate = propagate
            lg.disabled = disabled
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


@pytest.fixture
def request_ids() -> Iterator[tuple[str, TraceContext]]:
    """Set a request id and trace in the context variables for one test."""
    trace = TraceContext(TRACE_ID, SPAN_ID)
    rid_token = request_id_var.set("req-123")
    trace_token = trace_var.set(trace)
    try:
        yield "req-123", trace
    finally:
        request_id_var.reset(rid_token)
        trace_var.reset(trace_token)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_redact_secrets_masks_each_secret_key(key: str) -> None:
    """Every key in SECRET_KEYS has its value replaced by the redaction marker."""
    event = {"event": "login", key: "s3cr3t-value"}
    out = redact_secrets(None, "info", event)
    assert out[key] == REDACTED
    assert out["event"] == "login"


def test_redact_secrets_masks_all_at_once_and_leaves_others() -> None:
    """All secrets in one event are masked while ordinary keys keep their values."""
    event: dict[str, Any] = dict.fromkeys(SECRET_KEYS, "x")
    event.update({"event": "e", "username": "alice", "status": 200, "token_count": 3})
    out = redact_secrets(None, "info", event)
    assert all(out[key] == REDACTED for key in SECRET_KEYS)
    assert out["username"] == "alice"
    assert out["status"] == 200
    assert out["token_count"] == 3


def test_redact_secrets_without_secrets_is_unchanged() -> None:
    """An event with no secret keys passes through untouched."""
    event = {"event": "e", "user": "bob"}
    assert redact_secrets(None, "info", dict(event)) == event


def test_add_request_ids_from_context(request_ids: tuple[str, TraceContext]) -> None:
    """request_id, trace_id and span_id come from the context variables."""
    rid, trace = request_ids
    out = add_request_ids(None, "info", {"event": "e"})
    assert out["request_id"] == rid
    assert out["trace_id"] == trace.trace_id
    assert out["span_id"] == trace.span_id


def test_add_request_ids_without_context_adds_nothing() -> None:
    """Outside a request no id keys are added."""
    out = add_request_ids(None, "info", {"event": "e"})
    assert out == {"event": "e"}


def test_add_request_ids_keeps_explicit_values(request_ids: tuple[str, TraceContext]) -> None:
    """Ids passed explicitly by the caller are not overwritten."""
    out = add_request_ids(None, "info", {"event": "e", "request_id": "explicit"})
    assert out["request_id"] == "explicit"
    assert out["trace_id"] == TRACE_ID


def test_configure_logging_json_line(
    restore_logging: None,
    request_ids: tuple[str, TraceContext],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A structlog line is one JSON object with service, ids, level and a redacted password."""
    configure_logging("auth", level="INFO", json=True)
    get_logger("auth.login").info("login attempt", username="alice", password="hunter2")  # noqa: S106
    err = capsys.readouterr().err
    assert "hunter2" not in err
    (line,) = json_lines(err)
    assert line["event"] == "login attempt"
    assert line["service"] == "auth"
    assert line["request_id"] == "req-123"
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == SPAN_ID
    assert line["password"] == REDACTED
    assert line["username"] == "alice"
    assert line["level"] == "info"
    assert line["logger"] == "auth.login"
    assert "timestamp" in line


def test_configure_logging_routes_stdlib_loggers(
    restore_logging: None,
    request_ids: tuple[str, TraceContext],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A standard-library logger (e.g. aiokafka) also writes JSON with the service and ids."""
    configure_logging("events", json=True)
    logging.getLogger("aiokafka.conn").warning("broker gone")
    (line,) = json_lines(capsys.readouterr().err)
    assert line["event"] == "broker gone"
    assert line["service"] == "events"
    assert line["request_id"] == "req-123"
    assert line["logger"] == "aiokafka.conn"
    assert line["level"] == "warning"


def test_configure_logging_level_filters(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines below the configured level are dropped."""
    configure_logging("sensor", level="warning", json=True)
    log = get_logger("x")
    log.info("quiet")
    log.warning("loud")
    lines = json_lines(capsys.readouterr().err)
    assert [line["event"] for line in lines] == ["loud"]
    assert logging.getLogger().level == logging.WARNING


def test_configure_logging_formats_exceptions(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception is rendered as a traceback string inside the JSON line."""
    configure_logging("gateway", json=True)
    try:
        raise ValueError("kaput")  # noqa: TRY301 - raising to get a real traceback
    except ValueError:
        get_logger("x").exception("failed")
    (line,) = json_lines(capsys.readouterr().err)
    assert "ValueError: kaput" in line["exception"]


def test_configure_logging_replaces_handlers_and_quiets_uvicorn(restore_logging: None) -> None:
    """Root gets exactly one handler, uvicorn's access log is off and uvicorn propagates."""
    logging.getLogger("uvicorn").addHandler(logging.NullHandler())
    configure_logging("auth", json=True)
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0], logging.StreamHandler)
    assert logging.getLogger("uvicorn.access").disabled is True
    for name in ("uvicorn", "uvicorn.error"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate is True


def test_configure_logging_console_is_not_json(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """With json=False the line is human-readable text, still redacted."""
    configure_logging("auth", json=False)
    get_logger("x").info("hello", password="hunter2")  # noqa: S106
    err = capsys.readouterr().err
    assert "hello" in err
    assert "hunter2" not in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.strip())

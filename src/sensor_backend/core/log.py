"""JSON structured logging (structlog) with the request id and trace id on every line.

Standard-library loggers (uvicorn, aiokafka, asyncpg) are routed through the same
processors, so a service writes one JSON object per line whatever logged it. A redaction
processor masks secret-looking keys: no password, token or hash is ever logged.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import structlog

from sensor_backend.core.request_context import request_id_var, trace_var

if TYPE_CHECKING:
    from collections.abc import Mapping

    from structlog.typing import EventDict, Processor, WrappedLogger

SECRET_KEYS = frozenset(
    {
        "password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "password_hash",
        "hash",
        "secret",
        "private_key",
    }
)
REDACTED = "[redacted]"


def _redact(mapping: Mapping[str, object], depth: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in mapping.items():
        if key.lower() in SECRET_KEYS:
            out[key] = REDACTED
        elif isinstance(value, dict) and depth > 0:
            out[key] = _redact(value, depth - 1)
        else:
            out[key] = value
    return out


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask secret-looking keys in any letter case, also inside nested dicts (headers=...)."""
    return _redact(event_dict, depth=3)


def add_request_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    rid = request_id_var.get()
    if rid is not None:
        event_dict.setdefault("request_id", rid)
    trace = trace_var.get()
    if trace is not None:
        event_dict.setdefault("trace_id", trace.trace_id)
        event_dict.setdefault("span_id", trace.span_id)
    return event_dict


def configure_logging(service: str, *, level: str = "INFO", json: bool = True) -> None:
    """Configure structlog and the standard library for one service process."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_ids,
        redact_secrets,
        structlog.processors.format_exc_info,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)
    # uvicorn's access log duplicates our own request log line.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger

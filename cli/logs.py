"""Structured logs through structlog (operations.md §4): one JSON object per line, or
readable console lines on a TTY / with LOG_FORMAT=console; always redacted.

Every `logging.getLogger(...)` call of the project and of its libraries goes through
structlog's `ProcessorFormatter`, so one pipeline serves both: the context bound in
`structlog.contextvars` (the API binds `request_id` per request) and the record's `extra`
fields are merged, then secrets and e-mails are redacted (models/redaction.py, the rules of
domain.md §6.4) before anything is rendered.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from models.redaction import redact, redact_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_RENDERED = {"event", "level", "logger", "timestamp", "exception"}


def _timestamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    record: logging.LogRecord | None = event.get("_record")
    created = record.created if record is not None else datetime.now(UTC).timestamp()
    event["timestamp"] = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event


def _record_fields(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Logger name, lower-case level and the record's `extra=` fields."""
    record: logging.LogRecord | None = event.get("_record")
    if record is not None:
        event["logger"] = record.name
        event["level"] = record.levelname.lower()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in event:
                event[key] = value
    return event


def _redacted(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key, value in list(event.items()):
        if key.startswith("_"):
            continue
        if key in ("event", "exception") and isinstance(value, str):
            event[key] = redact_text(value)
        elif key not in _RENDERED:
            event[key] = redact(value, key)
    return event


def _processors(console: bool) -> list[Any]:
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if console else structlog.processors.JSONRenderer(default=str)
    )
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _redacted,
        renderer,
    ]


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    console = fmt == "console"
    # no line shows the caller's file, thread or process: skip collecting them for every record
    # (the "Optimization" knobs of the logging documentation; the API logs a line per request)
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _record_fields,
        _timestamp,
        structlog.processors.format_exc_info,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=_processors(console))
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _timestamp,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

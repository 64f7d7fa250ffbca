"""Logs go through structlog: JSON lines with the bound context, extras and redaction."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from cli.logs import configure_logging


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_lines_carry_the_bound_context_and_redact_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("offerhub.test")
    with structlog.contextvars.bound_contextvars(request_id="req_bound", workflow_id="ord_x"):
        log.info("paid ana@example.com", extra={"api_key": "ohk_test_abcdefghijklmnop", "order_id": "ord_x"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        structlog.get_logger("offerhub.native").warning("native", wallet_seed="SABCDEF")
    log.info("outside")
    first, failed, native, outside = lines(capsys.readouterr().out)
    assert first["request_id"] == "req_bound" and first["workflow_id"] == "ord_x"
    assert first["level"] == "info" and first["logger"] == "offerhub.test"
    assert str(first["timestamp"]).endswith("Z")
    assert "ana@example.com" not in str(first["event"]) and first["api_key"] == "[REDACTED]"
    assert first["order_id"] == "ord_x"
    assert "ValueError: boom" in str(failed["exception"]) and failed["level"] == "error"
    assert native["wallet_seed"] == "[REDACTED]" and native["request_id"] == "req_bound"
    assert "timestamp" in native
    assert "request_id" not in outside


def test_console_format_is_readable_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "console")
    logging.getLogger("offerhub.test").warning("hello", extra={"password": "hunter2"})
    out = capsys.readouterr().out
    assert "hello" in out and "hunter2" not in out
    configure_logging("INFO", "json")

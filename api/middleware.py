"""Outermost ASGI layer: X-Request-ID on every response, the 1 MiB body limit, and a
last-resort 500 envelope that never leaks a stack trace."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response, internal_error
from models.errors import ErrorCode, OfferhubError

log = logging.getLogger("offerhub.api")

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}$")


class PayloadTooLarge(OfferhubError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.PAYLOAD_TOO_LARGE, "The request body exceeds 1 MiB", {"max_bytes": MAX_BODY_BYTES})


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID_PATTERN.fullmatch(text):
                return text
    return "req_" + secrets.token_urlsafe(12)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        response_started = False
        status_holder: dict[str, Any] = {"status": 500}

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        declared = _content_length(scope["headers"])
        # every log line of this request carries its request_id (cli/logs.py merges the context)
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                if declared is not None and declared > MAX_BODY_BYTES:
                    await _drain_and_send(error_response(PayloadTooLarge()), scope, receive, send_with_id)
                    return
                await self.app(scope, _limited(receive), send_with_id)
            except PayloadTooLarge as exc:
                if not response_started:
                    await error_response(exc)(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled error", extra={"request_id": request_id})
                if not response_started:
                    await error_response(internal_error(request_id))(scope, receive, send_with_id)
            finally:
                log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status_holder["status"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limited(receive: Receive) -> Receive:
    """Count streamed body bytes too: a chunked body has no Content-Length to refuse early."""
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise PayloadTooLarge()
        return message

    return wrapped


async def _drain_and_send(response: Any, scope: Scope, receive: Receive, send: Send) -> None:
    # Answer at once without reading a huge body into memory; the server discards the rest.
    await response(scope, receive, send)

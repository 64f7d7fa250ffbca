"""The error envelope for every failure, and the mapping of framework errors into it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import ErrorCode, OfferhubError
from models.money import SUPPORTED_CURRENCIES

log = logging.getLogger("offerhub.api")

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


class ApiJSONResponse(JSONResponse):
    media_type = JSON_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(error: OfferhubError) -> ApiJSONResponse:
    return ApiJSONResponse(error.body(), status_code=error.status, headers=error.headers)


def internal_error(request_id: str | None) -> OfferhubError:
    return OfferhubError(ErrorCode.INTERNAL_ERROR, "An unexpected error occurred", {"request_id": request_id})


def _field_path(loc: Sequence[Any]) -> str:
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or (str(loc[0]) if loc else "body")


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "field required",
    "json_invalid": "body is not valid JSON",
}


def validation_error(errors: Sequence[Any]) -> OfferhubError:
    """Pydantic errors -> VALIDATION_ERROR, or the money codes when an amount/currency is at fault."""
    fields = []
    kinds = set()
    for err in errors:
        kind = err.get("type", "")
        kinds.add(kind)
        fields.append(
            {"field": _field_path(err.get("loc", ())), "message": _MESSAGES.get(kind, err.get("msg", "invalid"))}
        )
    if "invalid_amount_format" in kinds:
        money = [f for f, e in zip(fields, errors, strict=True) if e.get("type") == "invalid_amount_format"]
        return OfferhubError(
            ErrorCode.INVALID_AMOUNT_FORMAT, 'Amounts must be strings like "120.00", above 0.00', {"fields": money}
        )
    if "invalid_currency" in kinds:
        bad = next(f for f, e in zip(fields, errors, strict=True) if e.get("type") == "invalid_currency")
        return OfferhubError(
            ErrorCode.INVALID_CURRENCY,
            "Only USD is supported",
            {"field": bad["field"], "supported": list(SUPPORTED_CURRENCIES), "fields": [bad]},
        )
    return OfferhubError(ErrorCode.VALIDATION_ERROR, "The request is invalid", {"fields": fields})


async def handle_offerhub_error(request: Request, exc: Exception) -> ApiJSONResponse:
    assert isinstance(exc, OfferhubError)
    return error_response(exc)


async def handle_validation_error(request: Request, exc: Exception) -> ApiJSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(exc.errors()))


async def handle_http_exception(request: Request, exc: Exception) -> ApiJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error = OfferhubError(ErrorCode.NOT_FOUND, f"No route for {request.method} {request.url.path}")
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        methods = [m.strip() for m in allow.split(",") if m.strip()]
        error = OfferhubError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed here",
            {"allowed_methods": methods},
            headers={"Allow": allow},
        )
    elif exc.status_code == 413:
        error = OfferhubError(ErrorCode.PAYLOAD_TOO_LARGE, "The request body exceeds 1 MiB")
    elif exc.status_code < 500:
        error = OfferhubError(ErrorCode.VALIDATION_ERROR, str(exc.detail))
    else:
        error = internal_error(getattr(request.state, "request_id", None))
    return error_response(error)


def provider_failure(exc: Exception, resource: dict[str, str] | None = None) -> OfferhubError:
    """A synchronous provider read that failed: 504 on a timeout, else 502 (api.md §8.3)."""
    from providers.errors import ProviderError, ProviderTimeout

    provider = exc.provider if isinstance(exc, ProviderError) else "unknown"
    if isinstance(exc, ProviderTimeout):
        return OfferhubError(
            ErrorCode.PROVIDER_TIMEOUT,
            f"{provider} did not answer in time",
            {"provider": provider, "timeout_ms": 15000, **(resource or {})},
        )
    return OfferhubError(
        ErrorCode.PROVIDER_ERROR,
        f"{provider} could not serve the request",
        {"provider": provider, "provider_message": str(exc)[:200], **(resource or {})},
    )

"""`offerhub codec-server`: the remote codec the Temporal UI (and `temporal --codec-endpoint`)
calls to show payloads the payload codec encrypted, and to encrypt what an operator types.

Protocol (Temporal's codec server): `POST /decode` and `POST /encode` (also under a
`/{namespace}/` prefix, for the CLI's endpoint templating), body and answer
`{"payloads": [{"metadata": {...}, "data": "<base64>"}]}` (proto3 JSON of `Payloads`; the UI
sends `X-Namespace`, and `Authorization` when told to pass its access token). CORS only for
the UI's origins. Bound to loopback by default; bound elsewhere it requires
`Authorization: Bearer <TEMPORAL_CODEC_SERVER_TOKEN>` (also checked on loopback when set).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from google.protobuf import json_format
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from api.payload_codec import EncryptionCodec, PayloadKeyError

DEFAULT_PORT = 8081
DEFAULT_UI_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")  # the embedded Temporal UI
MAX_BODY_BYTES = 8 * 1024 * 1024  # a page of history payloads; Temporal caps one payload at 2 MB


class CodecServerSettings(BaseSettings):
    """The three variables the codec server needs (not the whole server's settings: support
    staff run it beside their browser with nothing else configured)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    temporal_payload_encryption_key: SecretStr | None = None
    temporal_payload_encryption_previous_keys: SecretStr | None = None
    temporal_codec_server_token: SecretStr | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_codec_app(codec: PayloadCodec, *, origins: Sequence[str], token: str | None) -> Starlette:
    async def apply(request: Request) -> Response:
        if token is not None and not _authorized(request, token):
            return _error(401, "UNAUTHORIZED", "Authorization: Bearer <TEMPORAL_CODEC_SERVER_TOKEN> required")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
        try:
            payloads = list(json_format.Parse(bytes(body), Payloads()).payloads)
        except (json_format.ParseError, UnicodeDecodeError):
            return _error(400, "VALIDATION_ERROR", 'expected {"payloads": [{"metadata": {...}, "data": "..."}]}')
        coding = codec.encode if request.url.path.endswith("/encode") else codec.decode
        try:
            result = await coding(payloads)
        except PayloadKeyError as exc:
            return _error(400, "PAYLOAD_KEY_UNKNOWN", str(exc))
        return Response(json_format.MessageToJson(Payloads(payloads=result)), media_type="application/json")

    paths = ("/encode", "/decode", "/{namespace}/encode", "/{namespace}/decode")
    return Starlette(
        routes=[Route(path, apply, methods=["POST"]) for path in paths],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(origins),
                allow_methods=["POST"],
                allow_headers=["content-type", "x-namespace", "authorization"],
                allow_credentials=True,
                max_age=600,
            )
        ],
    )


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def build(host: str, origins: Sequence[str]) -> tuple[Starlette, EncryptionCodec, bool]:
    """The app for these settings, or ValueError saying which variable is missing or wrong."""
    try:
        config = CodecServerSettings()
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    if config.temporal_payload_encryption_key is None:
        raise ValueError("TEMPORAL_PAYLOAD_ENCRYPTION_KEY is not set: there is nothing to decode")
    previous = config.temporal_payload_encryption_previous_keys
    try:
        codec = EncryptionCodec.from_hex(
            config.temporal_payload_encryption_key.get_secret_value(),
            previous.get_secret_value() if previous is not None else None,
        )
    except ValueError as exc:
        raise ValueError(f"TEMPORAL_PAYLOAD_ENCRYPTION_KEY / _PREVIOUS_KEYS: {exc}") from None
    token = config.temporal_codec_server_token.get_secret_value() if config.temporal_codec_server_token else None
    if token is not None and len(token) < 32:
        raise ValueError("TEMPORAL_CODEC_SERVER_TOKEN must be at least 32 characters")
    if token is None and not is_loopback(host):
        raise ValueError(f"binding {host} (off loopback) requires TEMPORAL_CODEC_SERVER_TOKEN")
    return create_codec_app(codec, origins=origins, token=token), codec, token is not None

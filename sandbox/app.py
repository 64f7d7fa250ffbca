"""The local provider sandbox (providers.md §5): one FastAPI server speaking Horizon,
Trustless Work and Airtm, plus its control API, with fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import airtm, control, horizon, trustless
from sandbox.airtm import AirtmDesk
from sandbox.core import Sandbox, SandboxConfig
from sandbox.faults import FaultMiddleware


class ControlTokenMiddleware:
    """With SANDBOX_CONTROL_TOKEN set, /_sandbox needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token and scope["type"] == "http" and scope["path"].startswith("/_sandbox/"):
            supplied = dict(scope["headers"]).get(b"authorization", b"").decode()
            if supplied != f"Bearer {self.token}":
                body = json.dumps(
                    {"error": {"code": "UNAUTHORIZED", "message": "control token required", "details": {}}}
                ).encode()
                await send(
                    {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def load_faults(spec: str | None) -> dict[str, object] | None:
    if not spec:
        return None
    text = Path(spec[1:]).read_text() if spec.startswith("@") else spec
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else None


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    config = config or SandboxConfig.from_env()
    sandbox = Sandbox(config)
    desk = AirtmDesk(sandbox)
    initial_faults = load_faults(config.faults)
    if initial_faults:
        sandbox.faults.configure(initial_faults)
        hooks = initial_faults.get("webhooks")
        sandbox.outbox.set_faults(hooks if isinstance(hooks, dict) else {}, sandbox.faults.config["seed"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        delivery = asyncio.create_task(sandbox.outbox.run())
        try:
            yield
        finally:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery

    app = FastAPI(
        title="OFFER-HUB provider sandbox",
        version="sandbox-1",
        lifespan=lifespan,
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = sandbox
    app.include_router(control.build_router(sandbox, desk))
    app.include_router(horizon.build_router(sandbox))
    app.include_router(trustless.build_router(sandbox))
    app.include_router(airtm.build_router(sandbox, desk))
    app.add_middleware(FaultMiddleware, faults=sandbox.faults)
    app.add_middleware(ControlTokenMiddleware, token=config.control_token)
    return app

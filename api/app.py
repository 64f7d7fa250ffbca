"""FastAPI app factory: routers under /api/v1, the error envelope, request context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from api import metrics, openapi
from api.errors import ApiJSONResponse, handle_http_exception, handle_offerhub_error, handle_validation_error
from api.metrics import ApiMetrics, RequestMetricsMiddleware
from api.middleware import RequestContextMiddleware
from api.policy import API_PREFIX, Access, route_policy
from api.routers import (
    admin,
    audit,
    auth,
    disputes,
    events,
    health,
    instance,
    orders,
    topups,
    users,
    webhook_endpoints,
    webhooks,
    withdrawals,
)
from api.services import Services
from models.errors import OfferhubError
from settings import VERSION, Settings

DESCRIPTION = """Payments orchestrator for marketplaces: balances, top-ups, orders paid into
non-custodial escrow (Trustless Work on Stellar), milestones, disputes and withdrawals.

Authenticate with `Authorization: Bearer <API key or token>`. Errors always use
`{"error": {"code", "message", "details"}}`. Send an `Idempotency-Key` on every POST."""


# the order the OpenAPI document shows the resources in
DOCUMENTED_ORDER = (
    health.router,
    instance.router,
    auth.router,
    admin.router,
    users.router,
    topups.router,
    orders.router,
    disputes.router,
    audit.router,
    events.router,
    withdrawals.router,
    webhooks.router,
    webhook_endpoints.router,
)
# the order requests are matched in: a request is tried against each route in turn until one
# matches, so the busiest resources come first (no two routers share a first path segment)
BUSIEST = (orders.router, users.router, events.router)
MATCH_ORDER = (*BUSIEST, *(r for r in DOCUMENTED_ORDER if r not in BUSIEST))


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings)
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="OFFER-HUB Orchestrator",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=ApiJSONResponse,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    for router in MATCH_ORDER:
        app.include_router(router, prefix=API_PREFIX)
    app.add_exception_handler(OfferhubError, handle_offerhub_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_middleware(RequestContextMiddleware)
    app.state.metrics = ApiMetrics()
    app.include_router(metrics.router)  # operational: outside /api/v1 (README of the spec)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, built without a running stack (`offerhub openapi`, the fuzz test)."""
    placeholder = Settings(  # documentation needs no real secrets
        offerhub_master_key="x" * 32,
        wallet_encryption_key="0" * 64,
        trustless_work_api_key="-",
        trustless_work_webhook_secret="-",
    )
    return create_app(placeholder).openapi()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """Document the bearer scheme, each route's credential, scope and idempotency, and what it
    answers (response models and error envelopes: `api.openapi`)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    documented = (API_PREFIX + route.path for router in DOCUMENTED_ORDER for route in _api_routes(router.routes))
    position = {path: n for n, path in enumerate(dict.fromkeys(documented))}
    schema["paths"] = dict(sorted(schema["paths"].items(), key=lambda item: position.get(item[0], len(position))))
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "API key, token or (for /auth, /admin) master key",
        }
    }
    rules = {
        route.operation_id: route_policy(route.endpoint)
        for route in _api_routes(app.routes)
        if route.operation_id and hasattr(route.endpoint, "__offerhub_policy__")
    }
    for operations in schema["paths"].values():
        for operation in operations.values():
            rule = rules.get(operation.get("operationId"))
            if rule is None:
                continue
            if rule.access is not Access.PUBLIC:
                operation["security"] = [{"bearer": []}]
            notes = [f"Credential: {rule.access.value}" + (f" (scope `{rule.scope}`)" if rule.scope else "")]
            if rule.retention is not None:
                notes.append(f"Idempotency-Key retention: {rule.retention.value}")
            operation["description"] = (operation.get("description") or "") + "\n\n" + ". ".join(notes) + "."
    openapi.document(schema, rules)
    app.openapi_schema = schema
    return schema


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI keeps them behind a wrapper)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)

"""Calling a simple handler without FastAPI's per-request machinery.

Some handlers (`GET /orders/{order_id}`, the busiest read, and actions without a body such as
`POST /orders/{order_id}/escrow`) take only string path parameters and the project's own two
dependencies (the services, the request context), and return a finished response. For them
FastAPI's request handler still solves the dependency graph and validates each parameter,
about a sixth of the API's CPU on that read. `direct_call` recognises these handlers when the
app is built and calls them with the same arguments, straight from the request; any other
handler (a query, a body, a header parameter, a constrained path parameter, another
dependency, a result that is not a Response) keeps FastAPI's handler.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from typing import Any, cast, get_type_hints

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant

Call = Callable[[Request], Awaitable[Response]]
Provide = Callable[[Request], Awaitable[Any]]


def direct_call(dependant: Dependant, endpoint: Callable[..., Any], plain: Collection[Provide]) -> Call | None:
    """A call of `endpoint` from the request, or None when FastAPI must solve its parameters.
    `plain` are the dependencies that may be called directly, with the request alone."""
    if not inspect.iscoroutinefunction(endpoint) or not _returns_response(endpoint):
        return None
    d = dependant
    special = (
        d.request_param_name,
        d.websocket_param_name,
        d.http_connection_param_name,
        d.response_param_name,
        d.background_tasks_param_name,
        d.security_scopes_param_name,
    )
    if d.query_params or d.header_params or d.cookie_params or d.body_params or any(special):
        return None
    if not all(f.field_info.annotation is str and not f.field_info.metadata for f in d.path_params):
        return None
    if not all(sub.call in plain and sub.name and not sub.dependencies for sub in d.dependencies):
        return None
    path = [(f.name, f.alias) for f in d.path_params]
    dependencies = [(str(sub.name), cast(Provide, sub.call)) for sub in d.dependencies]  # one of `plain`

    async def call(request: Request) -> Response:
        arguments: dict[str, Any] = {name: request.path_params[alias] for name, alias in path}
        for name, provide in dependencies:
            arguments[name] = await provide(request)
        response: Response = await endpoint(**arguments)
        return response

    return call


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(returned, type) and issubclass(returned, Response)

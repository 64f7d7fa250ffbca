"""Every route's cross-cutting rules, applied in the spec's order by one route class.

route -> authentication (401) -> scope (403) -> rate limit (429) -> maintenance (503)
-> idempotency (409 / replay) -> request validation (400) -> the handler.

Handlers declare their rules with `@policy(...)`; `GuardedRoute` enforces them before
FastAPI parses the body, so an unauthenticated or replayed request never reaches it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import auth
from api.auth import EVERYONE, Audience, Credential
from api.direct_calls import direct_call
from api.errors import ApiJSONResponse, error_response, internal_error, validation_error
from api.idempotency import KEY_PATTERN, Execute, IdempotencyStore, StoredResponse, fingerprint, validate_key
from api.outages import RETRY_AFTER_SECONDS, service_unavailable, unreachable_dependency
from api.repositories.locations import at_location
from api.schemas import field_error
from api.services import Services
from models.errors import ErrorCode, OfferhubError
from models.hostile_input import CONTROL_MESSAGE, HostileInput, has_control, parse_json_document
from models.ids import IdPrefix, new_id

log = logging.getLogger("offerhub.api")

API_PREFIX = "/api/v1"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Access(StrEnum):
    PUBLIC = "public"  # no credential (health, provider webhooks, top-up callback)
    ANY_KEY = "any_key"  # an API key or token, whatever its scopes (GET /me)
    SCOPED = "scoped"  # an API key or token holding `scope`
    MASTER = "master"  # the master key only (/auth/api-keys, /admin)
    MASTER_OR_KEY = "master_or_key"  # POST /auth/token: master key, or an API key minting for itself


class Retention(StrEnum):
    SHORT = "short"  # 24 h
    LONG = "long"  # 7 days
    FOREVER = "forever"


@dataclass(frozen=True)
class RoutePolicy:
    access: Access
    scope: str | None = None
    retention: Retention | None = None  # state-changing routes: how long an Idempotency-Key holds
    creates: IdPrefix | None = None  # a create allocates its ID in the idempotency record
    secret_fields: tuple[str, ...] = ()  # blanked in the stored response (shown once)
    maintenance_exempt: bool = False
    mode: str | None = None  # PAYMENT_PROVIDER the endpoint needs (else 409 PROVIDER_NOT_ENABLED)
    query_token: bool = False  # a token may come as `?access_token=` (EventSource cannot set headers)
    raw_body: bool = False  # the handler reads the raw body itself (signed provider webhooks: verified before parsing)
    # a user-bound token may call it: the handler narrows what it reads to the token's user
    # (`RequestContext.audience`); every other scoped route refuses such a token with 403
    user_reads: bool = False


F = TypeVar("F", bound=Callable[..., Any])


def policy(
    access: Access,
    scope: str | None = None,
    *,
    retention: Retention | None = None,
    creates: IdPrefix | None = None,
    secret_fields: tuple[str, ...] = (),
    maintenance_exempt: bool = False,
    mode: str | None = None,
    query_token: bool = False,
    raw_body: bool = False,
    user_reads: bool = False,
) -> Callable[[F], F]:
    rule = RoutePolicy(
        access, scope, retention, creates, secret_fields, maintenance_exempt, mode, query_token, raw_body, user_reads
    )

    def attach(endpoint: F) -> F:
        endpoint.__offerhub_policy__ = rule  # type: ignore[attr-defined]
        return endpoint

    return attach


@dataclass(frozen=True)
class RequestContext:
    """What handlers need to know about the caller, for audit entries and events."""

    credential: Credential | None
    request_id: str
    idempotency_key: str | None
    ip: str | None
    user_agent: str | None
    allocated_id: str | None

    def new_resource_id(self, prefix: IdPrefix) -> str:
        return self.allocated_id or new_id(prefix)

    @property
    def actor(self) -> tuple[str, str | None]:
        return self.credential.actor if self.credential else ("system", None)

    @property
    def audience(self) -> Audience:
        """Whose data the caller reads (everyone's, unless it holds a user-bound token)."""
        return self.credential.audience if self.credential else EVERYONE


# dependencies are coroutines: FastAPI runs a plain function in a worker thread (two thread
# hand-offs per request for these two, most of a read's CPU beside the handler itself)
async def _context(request: Request) -> RequestContext:
    state = request.state
    return RequestContext(
        credential=getattr(state, "credential", None),
        request_id=getattr(state, "request_id", ""),
        idempotency_key=getattr(state, "idempotency_key", None),
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        allocated_id=getattr(state, "allocated_id", None),
    )


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _services_dependency(request: Request) -> Services:
    return _services(request)


ContextDep = Annotated[RequestContext, Depends(_context)]
ServicesDep = Annotated[Services, Depends(_services_dependency)]


async def authenticate(rule: RoutePolicy, request: Request, services: Services) -> Credential | None:
    if rule.access is Access.PUBLIC:
        return None
    header = request.headers.get("authorization")
    in_query = request.query_params.get("access_token") if rule.query_token and not header else None
    credential = await auth.resolve(services, in_query if in_query else auth.bearer_secret(header))
    if in_query and credential.type != "token":  # a URL ends up in logs: never an API key there
        raise OfferhubError(ErrorCode.INVALID_API_KEY, "access_token takes a token from POST /auth/token")
    master_only = rule.access is Access.MASTER
    if credential.is_master and rule.access not in (Access.MASTER, Access.MASTER_OR_KEY):
        raise OfferhubError(ErrorCode.INVALID_API_KEY, "The master key is accepted only on /auth and /admin")
    if master_only and not credential.is_master:
        raise OfferhubError(ErrorCode.INVALID_API_KEY, "This endpoint requires the master key")
    if rule.access is Access.MASTER_OR_KEY and credential.type == "token":
        raise OfferhubError(ErrorCode.INVALID_API_KEY, "A token cannot mint tokens; use its API key")
    if rule.access is Access.SCOPED and rule.scope not in credential.scopes:
        raise OfferhubError(
            ErrorCode.INSUFFICIENT_SCOPE,
            f"This endpoint requires the `{rule.scope}` scope",
            {"required_scope": rule.scope, "current_scopes": list(credential.scopes)},
        )
    if rule.access is Access.SCOPED and credential.audience.bound and not rule.user_reads:
        raise OfferhubError(
            ErrorCode.INSUFFICIENT_SCOPE,
            "A user-bound token reads only its user's data; this endpoint needs an unbound credential",
            {"required_scope": rule.scope, "current_scopes": list(credential.scopes)},
        )
    return credential


async def _json_object_body(request: Request) -> None:
    """A body must be a JSON object sent as application/json (README conventions)."""
    raw = await request.body()
    if not raw.strip():
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "The body must be sent as Content-Type: application/json",
            {"fields": [{"field": "body", "message": "Content-Type must be application/json"}]},
        )
    try:
        parsed = parse_json_document(raw)
    except HostileInput as exc:
        raise field_error(exc.field, exc.message) from None
    if not isinstance(parsed, dict):
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "The body must be a JSON object",
            {"fields": [{"field": "body", "message": "must be a JSON object"}]},
        )


def _hostile_url(request: Request) -> None:
    """Control characters in a path segment or a query parameter (api.md §1.2)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and has_control(value):
            raise field_error(name, CONTROL_MESSAGE)
    for name, value in request.query_params.multi_items():
        if has_control(name) or has_control(value):
            raise field_error(name if not has_control(name) else "query", CONTROL_MESSAGE)


def _unknown_query(request: Request, allowed: frozenset[str]) -> None:
    unknown = sorted({name for name in request.query_params if name not in allowed})
    if unknown:
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "Unknown query parameters",
            {"fields": [{"field": name, "message": "unknown query parameter"} for name in unknown]},
        )


def _retention_seconds(services: Services, retention: Retention | None) -> int | None:
    settings = services.settings
    if retention is Retention.LONG:
        return settings.idempotency_long_retention_seconds
    if retention is Retention.FOREVER:
        return None
    return settings.idempotency_short_retention_seconds


def _response_body(response: Response) -> Any:
    try:
        return json.loads(bytes(response.body)) if response.body else None
    except ValueError:
        return None


def _without_secrets(body: Any, secret_fields: tuple[str, ...]) -> Any:
    if isinstance(body, dict):
        return {name: (None if name in secret_fields else value) for name, value in body.items()}
    return body


def _echoed_key(request: Request) -> str | None:
    """The Idempotency-Key every answer to a keyed request echoes (a malformed one is not echoed)."""
    value = request.headers.get("idempotency-key")
    if request.method in STATE_CHANGING and value is not None and KEY_PATTERN.fullmatch(value):
        return value
    return None


def route_policy(endpoint: Callable[..., Any]) -> RoutePolicy:
    """The rules a handler declared with `@policy` (public and unkeyed when it declared none)."""
    rule = getattr(endpoint, "__offerhub_policy__", None)
    return rule if isinstance(rule, RoutePolicy) else RoutePolicy(Access.PUBLIC)


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        rule = route_policy(self.endpoint)
        allowed_query = frozenset(_query_names(self.dependant))
        # a simple read is called with its arguments taken straight from the request (api/direct_calls.py)
        run = direct_call(self.dependant, self.endpoint, (_services_dependency, _context))

        async def execute(request: Request) -> Response:
            try:
                mode = _services(request).settings.payment_provider
                if rule.mode is not None and rule.mode != mode:
                    raise OfferhubError(
                        ErrorCode.PROVIDER_NOT_ENABLED,
                        f"This endpoint needs PAYMENT_PROVIDER={rule.mode}",
                        {"payment_provider": mode, "required_provider": rule.mode},
                    )
                _unknown_query(request, allowed_query)
                return await (run or original)(request)
            except RequestValidationError as exc:
                return error_response(validation_error(exc.errors()))
            except OfferhubError as exc:
                return error_response(exc)

        async def handler(request: Request) -> Response:
            services = _services(request)
            limit_headers: dict[str, str] = {}
            try:
                credential = await authenticate(rule, request, services)
                request.state.credential = credential
                scope, identity, limit = self._limit(services, request, credential)
                status = await services.rate_limits.hit(scope=scope, identity=identity, limit=limit)
                limit_headers = status.headers()
                if request.method in STATE_CHANGING and not rule.maintenance_exempt:
                    state = await services.maintenance.current(services)
                    if state.enabled:
                        raise state.refusal()
                # hostile input is refused before anything is recorded, even an idempotency key
                _hostile_url(request)
                if request.method in STATE_CHANGING and not rule.raw_body:
                    await _json_object_body(request)
                key_header = request.headers.get("idempotency-key")
                if credential is not None and request.method in STATE_CHANGING and key_header is not None:
                    response = await self._keyed(request, services, credential, validate_key(key_header), execute)
                else:
                    if rule.creates is not None:
                        request.state.allocated_id = new_id(rule.creates)
                    response = await execute(request)
            except OfferhubError as exc:
                response = error_response(exc)
                limit_headers = {**limit_headers, **exc.headers}
            except StarletteHTTPException:
                raise  # the framework's own errors keep their handler
            except Exception as exc:
                request_id = getattr(request.state, "request_id", None)
                dependency = unreachable_dependency(exc)
                if dependency is not None:  # an outage: 503, nothing changed, retried as it is
                    log.warning("dependency unreachable", extra={"request_id": request_id, "error": repr(exc)[:300]})
                    response = error_response(service_unavailable(dependency))
                    limit_headers = {**limit_headers, "Retry-After": str(RETRY_AFTER_SECONDS)}
                else:  # the middleware's last-resort 500, answered here so a keyed request's echo is kept
                    log.exception("unhandled error", extra={"request_id": request_id})
                    response = error_response(internal_error(request_id))
            for name, value in limit_headers.items():
                response.headers.setdefault(name, value)
            echoed = _echoed_key(request)
            if echoed is not None:
                response.headers["X-Idempotency-Key"] = echoed
            return response

        return handler

    def _limit(self, services: Services, request: Request, credential: Credential | None) -> tuple[str, str, int]:
        """(scope, identity, limit) of the rate limit this request counts against."""
        settings = services.settings
        if credential is None:
            ip = request.client.host if request.client else "unknown"
            return "ip", ip, settings.rate_limit_unauthenticated_per_ip_per_minute
        return "api_key", credential.namespace, settings.rate_limit_per_key_per_minute

    async def _keyed(
        self,
        request: Request,
        services: Services,
        credential: Credential,
        key: str,
        execute: Callable[[Request], Coroutine[Any, Any, Response]],
    ) -> Response:
        rule = route_policy(self.endpoint)
        store = IdempotencyStore(services)
        path = request.url.path.removeprefix(API_PREFIX)
        retention = _retention_seconds(services, rule.retention)
        fp = fingerprint(credential.namespace, request.method, path, await request.body())
        request.state.idempotency_key = key
        outcome = await store.begin(
            namespace=credential.namespace,
            key=key,
            fingerprint=fp,
            method=request.method,
            path=path,
            retention_seconds=retention,
            new_resource_id=new_id(rule.creates) if rule.creates else None,
        )
        if isinstance(outcome, StoredResponse):
            status, body = await self._replayed(services, outcome, rule)
            headers = {"Idempotent-Replayed": "true", "X-Idempotency-Key": key}
            if outcome.location:
                headers["Location"] = outcome.location
            return ApiJSONResponse(body, status_code=status, headers=headers)
        assert isinstance(outcome, Execute)
        request.state.allocated_id = outcome.resource_id
        try:
            async with store.lease(credential.namespace, key):
                response = await execute(request)
        except BaseException:
            await store.finish(
                namespace=credential.namespace,
                key=key,
                fingerprint=fp,
                response=StoredResponse(500, None, None),
                retention_seconds=retention,
            )
            raise
        body = _without_secrets(_response_body(response), rule.secret_fields)
        stored = StoredResponse(response.status_code, body, response.headers.get("location"), outcome.resource_id)
        await store.finish(
            namespace=credential.namespace, key=key, fingerprint=fp, response=stored, retention_seconds=retention
        )
        response.headers["X-Idempotency-Key"] = key
        return response

    async def _replayed(self, services: Services, stored: StoredResponse, rule: RoutePolicy) -> tuple[int, Any]:
        """The stored answer; a stored `202` is the resource at its Location as it is now."""
        if stored.status != 202 or not stored.location:
            return stored.status, stored.body
        async with services.sessions() as session:
            current = await at_location(session, stored.location, stored.resource_id)
        if current is None:  # not recorded yet (a dispute whose opening is still queued)
            return 202, stored.body
        return (200 if current.finished else 202), _without_secrets(current.body, rule.secret_fields)

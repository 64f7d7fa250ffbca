"""Request field types shared by routers: metadata, e-mail, external IDs, time filters."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from models.errors import ErrorCode, OfferhubError
from models.hostile_input import MAX_URL_LENGTH, web_url_problem
from models.timefmt import parse_query_time

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")
VISIBLE = re.compile(r"^[\x21-\x7e]+$")


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > 20:
        raise ValueError("at most 20 keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 40:
            raise ValueError(f"key {key[:40]!r} must be 1-40 characters")
        if not isinstance(item, str) or len(item) > 500:
            raise ValueError(f"value of {key!r} must be a string of at most 500 characters")
    return value


def _email(value: str) -> str:
    if len(value) > 254 or not EMAIL_PATTERN.fullmatch(value):
        raise ValueError("must be a valid e-mail address")
    return value


def _visible(value: str) -> str:
    if not VISIBLE.fullmatch(value):
        raise ValueError("must be visible ASCII characters without spaces")
    return value


def _web_url(value: str) -> str:
    problem = web_url_problem(value, "test")  # `live` also refuses http: require_web_urls
    if problem is not None:
        raise ValueError(problem)
    return value


def require_web_urls(environment: str, **urls: str | list[str] | None) -> None:
    """400 naming the first URL the environment refuses (`http` in `live`, any other scheme
    everywhere): `require_web_urls(env, return_url=..., evidence=[...])`."""
    for field, given in urls.items():
        named = [(f"{field}[{i}]", url) for i, url in enumerate(given)] if isinstance(given, list) else [(field, given)]
        for name, url in named:
            problem = web_url_problem(url, environment) if url is not None else None
            if problem is not None:
                raise field_error(name, problem)


Metadata = Annotated[dict[str, Any], AfterValidator(_metadata), Field(default_factory=dict)]
Email = Annotated[str, AfterValidator(_email)]
# a link shown to people (dispute evidence, Airtm return pages): https, or http outside `live`
WebUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_web_url)]
ExternalId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_visible)]


def query_time(name: str, value: str | None) -> datetime | None:
    """`created_after`/`created_before`: ISO 8601 with a timezone, or a bare date."""
    if value is None:
        return None
    try:
        return parse_query_time(value)
    except ValueError:
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            f"{name} must be an ISO 8601 time with a timezone, or a date",
            {"fields": [{"field": name, "message": "invalid timestamp"}]},
        ) from None


def time_range(
    after: str | None, before: str | None, names: tuple[str, str] = ("created_after", "created_before")
) -> tuple[datetime | None, datetime | None]:
    first, last = names
    start, end = query_time(first, after), query_time(last, before)
    if start is not None and end is not None and start > end:
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            f"{first} is later than {last}",
            {"fields": [{"field": first, "message": f"after {last}"}]},
        )
    return start, end


def field_error(field: str, message: str) -> OfferhubError:
    """400 VALIDATION_ERROR about one field (a query parameter or a rule beyond the schema)."""
    return OfferhubError(ErrorCode.VALIDATION_ERROR, message, {"fields": [{"field": field, "message": message}]})

"""Temporal search attributes of every workflow (architecture.md, Temporal conventions)."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

SEARCH_ATTRIBUTES: dict[str, str] = {
    "OfferhubResourceType": "Keyword",
    "OfferhubStatus": "Keyword",
    "OfferhubUserIds": "KeywordList",
    "OfferhubAmountCents": "Int",
}

RESOURCE_TYPE = SearchAttributeKey.for_keyword("OfferhubResourceType")
STATUS = SearchAttributeKey.for_keyword("OfferhubStatus")
USER_IDS = SearchAttributeKey.for_keyword_list("OfferhubUserIds")
AMOUNT_CENTS = SearchAttributeKey.for_int("OfferhubAmountCents")


def attributes(
    resource_type: str, status: str, user_ids: list[str], amount_cents: int | None = None
) -> TypedSearchAttributes:
    """The search attributes a workflow starts with; transitions upsert `STATUS`."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RESOURCE_TYPE, resource_type),
        SearchAttributePair(STATUS, status),
        SearchAttributePair(USER_IDS, user_ids),
    ]
    if amount_cents is not None:
        pairs.append(SearchAttributePair(AMOUNT_CENTS, amount_cents))
    return TypedSearchAttributes(pairs)

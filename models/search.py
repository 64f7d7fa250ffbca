"""Temporal search attributes of every workflow (architecture.md, Temporal conventions)."""

from __future__ import annotations

SEARCH_ATTRIBUTES: dict[str, str] = {
    "OfferhubResourceType": "Keyword",
    "OfferhubStatus": "Keyword",
    "OfferhubUserIds": "KeywordList",
    "OfferhubAmountCents": "Int",
}

"""Input and output of RetentionWorkflow (domain.md §5.2, §7.5, §2.18)."""

from __future__ import annotations

from pydantic import BaseModel


class RetentionInput(BaseModel):
    batch_size: int = 5000


class PurgeReport(BaseModel):
    """Rows deleted by one purge pass; `more` when a table still had rows past retention."""

    events: int = 0
    idempotency_keys: int = 0
    inbound_webhooks: int = 0
    more: bool = False

"""What an inbound provider webhook becomes once verified and deduplicated (api.md §12): the
payload of the Signal sent to the workflow it routes to. The provider's own field names are
kept in `data`; the workflow re-reads the provider before it acts on the news."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

AIRTM_PAYIN_SIGNAL = "airtm_payin_event"  # on TopUpWorkflow <topup_id>
AIRTM_PAYOUT_SIGNAL = "airtm_payout_event"  # on WithdrawalWorkflow <wd_id>
TRUSTLESS_WORK_SIGNAL = "trustless_work_event"  # on OrderWorkflow <ord_id> or MilestoneWorkflow <ms_id>


class ProviderEvent(BaseModel):
    provider: str  # "airtm" | "trustless_work"
    event_id: str  # the dedupe key (svix-id, event_id)
    type: str  # e.g. "payin.confirmed", "escrow.funded"
    data: dict[str, Any] = Field(default_factory=dict)
    received_at: str | None = None

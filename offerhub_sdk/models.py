"""The API's resources as pydantic models (api.md §2). Money stays a string (`"120.00"`), as
the API speaks it; timestamps are timezone-aware; fields a newer server adds are kept in
`model_extra`. Nullable fields default to `None` so an older server's answer still parses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class OfferHubModel(BaseModel):
    """Base of every result: unknown fields kept; `.accepted` (the API answered `202`) and
    `.replayed` (`Idempotent-Replayed: true`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    _status_code: int = PrivateAttr(default=200)
    _replayed: bool = PrivateAttr(default=False)

    @property
    def accepted(self) -> bool:
        """True when the API answered `202`: the operation continues (see `wait`)."""
        return self._status_code == 202

    @property
    def replayed(self) -> bool:
        return self._replayed


class Resource(OfferHubModel):
    id: str
    created_at: datetime
    updated_at: datetime | None = None


# users, balances, wallets ------------------------------------------------------------------


class UserWallet(OfferHubModel):
    id: str
    public_key: str | None = None
    status: str


class BalanceSummary(OfferHubModel):
    available: str
    reserved: str
    currency: str = "USD"


class User(Resource):
    external_user_id: str
    email: str | None = None
    type: str
    status: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    airtm_user_id: str | None = None
    airtm_linked_at: datetime | None = None
    wallet: UserWallet | None = None
    balance: BalanceSummary | None = None


class Balance(OfferHubModel):
    """`GET /users/{id}/balance`; `verify` and `sync` add the provider comparison."""

    user_id: str
    currency: str
    available: str
    reserved: str
    total: str
    updated_at: datetime | None = None
    provider_balance: str | None = None
    discrepancy: str | None = None
    provider_verified: bool | None = None
    checked_at: datetime | None = None
    deposits_found: int | None = None


class Wallet(Resource):
    user_id: str
    public_key: str
    type: str
    provider: str
    network: str
    status: str
    is_primary: bool = True
    is_active: bool = True
    usdc_trustline: bool = False
    onchain_balances: dict[str, str] | None = None


class Asset(OfferHubModel):
    code: str
    issuer: str | None = None


class DepositInstructions(OfferHubModel):
    user_id: str
    provider: str
    method: str
    address: str | None = None
    memo: str | None = None
    asset: Asset | None = None
    network: str | None = None
    ready: bool
    instructions: str | None = None


class WalletTransaction(OfferHubModel):
    """A chain record (not an orchestrator resource)."""

    id: str
    type: str
    direction: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    amount: str | None = None
    asset_code: str | None = None
    asset_issuer: str | None = None
    transaction_hash: str | None = None
    memo: str | None = None
    successful: bool | None = None
    created_at: datetime


# top-ups, orders, escrow, milestones, disputes, withdrawals ----------------------------------


class TopUp(Resource):
    user_id: str
    provider: str
    status: str
    amount: str
    currency: str
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    confirmation_uri: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    expires_at: datetime | None = None
    airtm_payin_id: str | None = None
    stellar_transaction_hash: str | None = None
    stellar_operation_id: str | None = None
    source_address: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    completed_at: datetime | None = None


class Escrow(Resource):
    order_id: str
    status: str
    type: str
    amount: str
    released_amount: str = "0.00"
    refunded_amount: str = "0.00"
    trustless_contract_id: str | None = None
    network: str | None = None
    deploy_tx_hash: str | None = None
    fund_tx_hash: str | None = None
    funded_at: datetime | None = None
    released_at: datetime | None = None
    refunded_at: datetime | None = None


class Milestone(Resource):
    order_id: str
    milestone_ref: str
    position: int
    title: str
    amount: str
    status: str
    completion_note: str | None = None
    completed_at: datetime | None = None
    approved_at: datetime | None = None
    released_at: datetime | None = None
    release_tx_hash: str | None = None


class OrderDispute(OfferHubModel):
    id: str
    status: str
    opened_by: str | None = None
    reason: str | None = None
    resolution_decision: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class LastError(OfferHubModel):
    operation: str | None = None
    code: str | None = None
    message: str | None = None
    occurred_at: datetime | None = None


class Order(Resource):
    client_order_ref: str | None = None
    buyer_id: str
    seller_id: str
    title: str
    description: str | None = None
    amount: str
    currency: str
    status: str
    released_amount: str = "0.00"
    refunded_amount: str = "0.00"
    amount_in_escrow: str = "0.00"
    close_reason: str | None = None
    cancel_reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    escrow: Escrow | None = None
    milestones: list[Milestone] = Field(default_factory=list)
    dispute: OrderDispute | None = None
    last_error: LastError | None = None
    closed_at: datetime | None = None


class Dispute(Resource):
    order_id: str
    buyer_id: str | None = None
    seller_id: str | None = None
    status: str
    opened_by: str
    reason: str
    description: str | None = None
    evidence: list[str] = Field(default_factory=list)
    disputed_amount: str | None = None
    assigned_to: str | None = None
    assigned_at: datetime | None = None
    assignment_note: str | None = None
    resolution_decision: str | None = None
    release_amount: str | None = None
    refund_amount: str | None = None
    decision_note: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


class Comment(Resource):
    dispute_id: str
    author_type: str
    author_id: str | None = None
    message: str
    evidence: list[str] = Field(default_factory=list)
    visibility: str = "PUBLIC"


class Withdrawal(Resource):
    user_id: str
    amount: str
    currency: str
    fee: str | None = None
    destination_type: str
    destination_ref: str
    memo: str | None = None
    status: str
    committed: bool = False
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    airtm_payout_id: str | None = None
    stellar_transaction_hash: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    expires_at: datetime | None = None
    committed_at: datetime | None = None
    completed_at: datetime | None = None


# events, webhooks, audit, credentials ------------------------------------------------------


class EventResource(OfferHubModel):
    type: str
    id: str


class EventActor(OfferHubModel):
    type: str
    id: str | None = None


class Event(Resource):
    type: str
    occurred_at: datetime
    resource: EventResource
    user_ids: list[str] = Field(default_factory=list)
    actor: EventActor | None = None
    request_id: str | None = None
    correlation_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class WebhookEndpoint(Resource):
    url: str
    event_types: list[str]
    description: str | None = None
    status: str
    secret: str | None = None
    secret_hint: str | None = None
    deleted_at: datetime | None = None


class Delivery(Resource):
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_response_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    succeeded_at: datetime | None = None


class AuditEntry(Resource):
    occurred_at: datetime
    action: str
    resource_type: str
    resource_id: str | None = None
    user_id: str | None = None
    actor_type: str | None = None
    actor_id: str | None = None
    result: str
    payload_before: dict[str, Any] | None = None
    payload_after: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


class ApiKey(Resource):
    name: str
    scopes: list[str]
    status: str
    key: str | None = None
    key_hint: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Token(OfferHubModel):
    token: str
    token_type: str = "Bearer"
    api_key_id: str
    scopes: list[str]
    user_id: str | None = None
    expires_at: datetime
    created_at: datetime


class Credential(OfferHubModel):
    type: str
    id: str
    name: str | None = None
    scopes: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    user_id: str | None = None


class Me(OfferHubModel):
    marketplace_id: str
    credential: Credential
    environment: str
    payment_provider: str
    maintenance: bool
    version: str


class Config(OfferHubModel):
    version: str
    environment: str
    payment_provider: str
    currencies: list[str] = Field(default_factory=list)
    limits: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, Any] = Field(default_factory=dict)
    providers: dict[str, Any] = Field(default_factory=dict)
    timeouts: dict[str, Any] = Field(default_factory=dict)
    rate_limits: dict[str, Any] = Field(default_factory=dict)


class HealthCheck(OfferHubModel):
    status: str
    latency_ms: int | None = None
    error: str | None = None


class Health(OfferHubModel):
    """`GET /health`; a degraded instance answers `503` with this body, returned, not raised."""

    status: str
    version: str
    environment: str
    payment_provider: str
    maintenance: bool = False
    checks: dict[str, HealthCheck] = Field(default_factory=dict)
    timestamp: datetime | None = None


class MaintenanceStatus(OfferHubModel):
    enabled: bool
    message: str | None = None
    retry_after_seconds: int | None = None
    enabled_at: datetime | None = None
    enabled_by: str | None = None
    updated_at: datetime | None = None


class ReconciliationRun(OfferHubModel):
    id: int  # operations.md §2: the run id is an integer
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)
    findings: list[dict[str, Any]] = Field(default_factory=list)
    error: Any = None


__all__ = [
    "ApiKey",
    "AuditEntry",
    "Balance",
    "Comment",
    "Config",
    "Delivery",
    "DepositInstructions",
    "Dispute",
    "Escrow",
    "Event",
    "Health",
    "Me",
    "Milestone",
    "OfferHubModel",
    "Order",
    "ReconciliationRun",
    "Token",
    "TopUp",
    "User",
    "Wallet",
    "WalletTransaction",
    "WebhookEndpoint",
    "Withdrawal",
]

"""The OpenAPI document: the representations of api.md §2 as models, and what each route can answer.

Routes return plain dicts (`ApiJSONResponse`) so their JSON stays exactly as written; the models
here only document it. `document()` replaces every operation's `responses` with the success
statuses of `OPERATIONS` (schema + example) and every error status the route can answer, each
with the error envelope and an example per code: the common ones derived from the route's
`RoutePolicy` (api.md §1.8) plus the ones api.md lists for the endpoint. FastAPI's own `422`
validation response is dropped: the API answers `400 VALIDATION_ERROR` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from api.policy import API_PREFIX, Access, RoutePolicy
from api.routers.webhooks import WebhookAckPublic
from models.errors import HTTP_STATUS, ErrorCode
from models.states import (
    DisputeStatus,
    EscrowStatus,
    MilestoneStatus,
    OrderStatus,
    TopupStatus,
    WithdrawalStatus,
)

REF = "#/components/schemas/{model}"
Amount = Annotated[str, Field(pattern=r"^\d+\.\d{2}$", examples=["120.00"])]
SignedAmount = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$", examples=["0.00"])]
ChainAmount = Annotated[str, Field(pattern=r"^\d+\.\d{7}$", examples=["270.0000000"])]
Time = Annotated[datetime, Field(examples=["2026-01-12T10:00:00.000Z"])]
Json = dict[str, Any]


class Public(BaseModel):
    """Every documented field is always present (nullable ones as null); nothing else appears."""

    model_config = ConfigDict(extra="forbid")


# errors and lists -------------------------------------------------------------------------------


class ErrorBody(Public):
    code: str = Field(description="UPPER_SNAKE code of the error catalog (domain.md §8)", examples=["ORDER_NOT_FOUND"])
    message: str = Field(description="human text; never a stack trace, SQL or secret")
    details: Json = Field(description="object, empty when there is nothing to add")


class ErrorEnvelope(Public):
    """Every failure, whatever its status."""

    error: ErrorBody


class Pagination(Public):
    has_more: bool
    next_cursor: str | None = Field(description="`cursor` of the next page: the id of the last item")


# users, balances, wallets (api.md §2.1, §5) -----------------------------------------------------


class BalanceAmounts(Public):
    available: Amount | Literal["0.00"]
    reserved: Amount | Literal["0.00"]
    currency: Literal["USD"]


class WalletRef(Public):
    id: str
    public_key: str
    status: str = Field(examples=["READY"])


class UserPublic(Public):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "usr_sF1CPgfHs3xMuooJADQ3n",
                "external_user_id": "buyer-4821",
                "email": "ana@example.com",
                "type": "BUYER",
                "status": "ACTIVE",
                "metadata": {"plan": "pro"},
                "airtm_user_id": None,
                "airtm_linked_at": None,
                "wallet": {
                    "id": "wal_dgp9GJ3piALjGMSM6hJPW",
                    "public_key": "GDOU4XFR2YCD34QS3WORCA4JRVSBG2XKPI24TIPXOEF4UOKU5OOWL7W3",
                    "status": "READY",
                },
                "balance": {"available": "150.00", "reserved": "120.00", "currency": "USD"},
                "created_at": "2026-01-12T10:00:00.000Z",
                "updated_at": "2026-01-12T10:00:07.214Z",
            }
        }
    )
    id: str
    external_user_id: str
    email: str | None
    type: Literal["BUYER", "SELLER", "BOTH"]
    status: Literal["ACTIVE", "SUSPENDED", "PENDING_VERIFICATION"]
    metadata: dict[str, str]
    airtm_user_id: str | None
    airtm_linked_at: Time | None
    wallet: WalletRef | None = Field(description="crypto mode; null in airtm mode")
    balance: BalanceAmounts
    created_at: Time
    updated_at: Time


class UsersPublic(Public):
    data: list[UserPublic]
    pagination: Pagination


class BalancePublic(Public):
    user_id: str
    currency: Literal["USD"]
    available: str
    reserved: str
    total: str
    updated_at: Time


class BalanceVerificationPublic(BalancePublic):
    provider_balance: str
    discrepancy: SignedAmount = Field(description="provider_balance - total, may be negative")
    provider_verified: bool
    checked_at: Time


class BalanceSyncPublic(BalanceVerificationPublic):
    deposits_found: int


class OnchainBalances(Public):
    usdc: ChainAmount
    xlm: str


class WalletPublic(Public):
    id: str
    user_id: str
    public_key: str
    type: str = Field(examples=["INVISIBLE"])
    provider: str = Field(examples=["STELLAR"])
    network: Literal["testnet", "mainnet"]
    status: str = Field(examples=["READY"])
    is_primary: bool
    is_active: bool
    usdc_trustline: bool
    onchain_balances: OnchainBalances | None
    created_at: Time
    updated_at: Time


class Asset(Public):
    code: str
    issuer: str | None


class DepositInstructionsPublic(Public):
    user_id: str
    provider: Literal["crypto", "airtm"]
    method: Literal["stellar_address", "redirect_uri"]
    address: str | None
    memo: str | None
    asset: Asset | None
    network: str | None
    ready: bool
    instructions: str


class ChainTransaction(Public):
    """A Horizon payment operation of the wallet (a chain record, not an orchestrator resource)."""

    model_config = ConfigDict(populate_by_name=True)
    id: str
    type: str = Field(examples=["payment"])
    direction: Literal["in", "out"]
    from_: str | None = Field(alias="from")
    to: str | None
    amount: str | None
    asset_code: str | None
    asset_issuer: str | None
    transaction_hash: str | None
    memo: str | None
    successful: bool
    created_at: Time | None


class ChainTransactionsPublic(Public):
    data: list[ChainTransaction]
    pagination: Pagination


# top-ups (api.md §2.2) --------------------------------------------------------------------------


class TopUpPublic(Public):
    id: str
    user_id: str
    provider: Literal["airtm", "crypto"]
    status: TopupStatus
    amount: Amount
    currency: Literal["USD"]
    description: str | None
    metadata: dict[str, str]
    confirmation_uri: str | None
    return_url: str | None
    cancel_url: str | None
    expires_at: Time | None
    airtm_payin_id: str | None
    stellar_transaction_hash: str | None
    stellar_operation_id: str | None
    source_address: str | None
    failure_code: str | None
    failure_reason: str | None
    completed_at: Time | None
    created_at: Time
    updated_at: Time


class TopUpsPublic(Public):
    data: list[TopUpPublic]
    pagination: Pagination


# orders, escrow, milestones (api.md §2.3) -------------------------------------------------------


class EscrowPublic(Public):
    id: str
    order_id: str
    status: EscrowStatus
    type: Literal["SINGLE_RELEASE", "MULTI_RELEASE"]
    amount: Amount
    released_amount: str
    refunded_amount: str
    trustless_contract_id: str | None
    network: Literal["testnet", "mainnet"]
    deploy_tx_hash: str | None
    fund_tx_hash: str | None
    funded_at: Time | None
    released_at: Time | None
    refunded_at: Time | None
    created_at: Time
    updated_at: Time


class MilestonePublic(Public):
    id: str
    order_id: str
    milestone_ref: str
    position: int
    title: str
    amount: Amount
    status: MilestoneStatus
    completion_note: str | None
    completed_at: Time | None
    approved_at: Time | None
    released_at: Time | None
    release_tx_hash: str | None
    created_at: Time
    updated_at: Time


class MilestonesPublic(Public):
    data: list[MilestonePublic]
    pagination: Pagination


class OrderDisputeSummary(Public):
    id: str
    status: DisputeStatus
    opened_by: Literal["BUYER", "SELLER"]
    reason: str
    resolution_decision: str | None
    created_at: Time
    updated_at: Time


class LastError(BaseModel):
    operation: str
    code: str
    message: str
    occurred_at: Time | None


ORDER_EXAMPLE: Json = {
    "id": "ord_zlH3qP6lmtcsZmfb0alyI",
    "client_order_ref": "MKT-10001",
    "buyer_id": "usr_sF1CPgfHs3xMuooJADQ3n",
    "seller_id": "usr_f3caUxcX5NWM0ilq1fF75",
    "title": "Logo design",
    "description": "Two concepts and a final vector file",
    "amount": "120.00",
    "currency": "USD",
    "status": "FUNDS_RESERVED",
    "released_amount": "0.00",
    "refunded_amount": "0.00",
    "amount_in_escrow": "0.00",
    "close_reason": None,
    "cancel_reason": None,
    "metadata": {"category": "design"},
    "escrow": None,
    "milestones": [],
    "dispute": None,
    "last_error": None,
    "closed_at": None,
    "created_at": "2026-01-12T10:00:00.000Z",
    "updated_at": "2026-01-12T10:01:00.004Z",
}


class OrderPublic(Public):
    model_config = ConfigDict(json_schema_extra={"example": ORDER_EXAMPLE})
    id: str
    client_order_ref: str | None
    buyer_id: str
    seller_id: str
    title: str
    description: str | None
    amount: Amount
    currency: Literal["USD"]
    status: OrderStatus
    released_amount: str = Field(description="paid to the seller so far")
    refunded_amount: str = Field(description="returned to the buyer so far")
    amount_in_escrow: str = Field(description="funded - released - refunded")
    close_reason: Literal["CANCELED", "RELEASED", "REFUNDED", "SPLIT"] | None
    cancel_reason: str | None
    metadata: dict[str, str]
    escrow: EscrowPublic | None
    milestones: list[MilestonePublic] = Field(description="by position; [] for single-release orders")
    dispute: OrderDisputeSummary | None
    last_error: LastError | None
    closed_at: Time | None
    created_at: Time
    updated_at: Time


class OrdersPublic(Public):
    data: list[OrderPublic]
    pagination: Pagination


# disputes (api.md §2.4) -------------------------------------------------------------------------


class DisputePublic(Public):
    id: str
    order_id: str
    buyer_id: str
    seller_id: str
    status: DisputeStatus
    opened_by: Literal["BUYER", "SELLER"]
    reason: Literal["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"]
    description: str | None
    evidence: list[str]
    disputed_amount: str
    assigned_to: str | None
    assigned_at: Time | None
    assignment_note: str | None
    resolution_decision: Literal["FULL_RELEASE", "FULL_REFUND", "SPLIT"] | None
    release_amount: str | None
    refund_amount: str | None
    decision_note: str | None
    resolved_by: str | None
    resolved_at: Time | None
    created_at: Time
    updated_at: Time


class DisputesPublic(Public):
    data: list[DisputePublic]
    pagination: Pagination


class CommentPublic(Public):
    id: str
    dispute_id: str
    author_type: Literal["BUYER", "SELLER", "SUPPORT"]
    author_id: str | None
    message: str
    evidence: list[str]
    visibility: Literal["PUBLIC", "INTERNAL"]
    created_at: Time
    updated_at: Time


class CommentsPublic(Public):
    data: list[CommentPublic]
    pagination: Pagination


# withdrawals (api.md §2.5) ----------------------------------------------------------------------


class WithdrawalPublic(Public):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "wd_JaJqR7wKaL9dTcJfJjv6l",
                "user_id": "usr_f3caUxcX5NWM0ilq1fF75",
                "amount": "40.00",
                "currency": "USD",
                "fee": None,
                "destination_type": "crypto",
                "destination_ref": "GD2XCMITUWGF6T2Y5FWOUAMQC36H3KJ4A45RZ3SPJ3LUX5BPCMSJW76A",
                "memo": "acct-7731",
                "status": "WITHDRAWAL_COMPLETED",
                "committed": True,
                "description": "Payout January",
                "metadata": {},
                "airtm_payout_id": None,
                "stellar_transaction_hash": "c0ffee4154b486d8e28860811b61313fb24d4464106165f1c3232b18f60a8875",
                "failure_code": None,
                "failure_reason": None,
                "expires_at": None,
                "committed_at": "2026-01-16T12:00:00.210Z",
                "completed_at": "2026-01-16T12:00:06.988Z",
                "created_at": "2026-01-16T12:00:00.100Z",
                "updated_at": "2026-01-16T12:00:06.988Z",
            }
        }
    )
    id: str
    user_id: str
    amount: Amount
    currency: Literal["USD"]
    fee: str | None
    destination_type: Literal["crypto", "bank", "airtm_balance"]
    destination_ref: str
    memo: str | None
    status: WithdrawalStatus
    committed: bool
    description: str | None
    metadata: dict[str, str]
    airtm_payout_id: str | None
    stellar_transaction_hash: str | None
    failure_code: str | None
    failure_reason: str | None
    expires_at: Time | None
    committed_at: Time | None
    completed_at: Time | None
    created_at: Time
    updated_at: Time


class WithdrawalsPublic(Public):
    data: list[WithdrawalPublic]
    pagination: Pagination


# events (api.md §2.6) ---------------------------------------------------------------------------


class ResourceRef(Public):
    type: str = Field(examples=["order"])
    id: str | None


class ActorRef(Public):
    type: str = Field(examples=["api_key"])
    id: str | None


class EventPublic(Public):
    id: str
    type: str = Field(examples=["order.funds_reserved"])
    occurred_at: Time
    resource: ResourceRef
    user_ids: list[str]
    actor: ActorRef
    request_id: str | None
    correlation_id: str | None
    data: Json = Field(description="payload per type (domain.md Events)")
    created_at: Time
    updated_at: Time


class EventsPublic(Public):
    data: list[EventPublic]
    pagination: Pagination


# API keys, tokens, webhook endpoints, deliveries, audit (api.md §2.7) ---------------------------


class ApiKeyPublic(Public):
    id: str
    name: str
    scopes: list[Literal["read", "write", "support"]]
    status: Literal["ACTIVE", "REVOKED"]
    key: str | None = Field(description="the secret: only in the 201 of creation")
    key_hint: str
    last_used_at: Time | None
    revoked_at: Time | None
    created_at: Time
    updated_at: Time


class ApiKeysPublic(Public):
    data: list[ApiKeyPublic]
    pagination: Pagination


class TokenPublic(Public):
    token: str
    token_type: Literal["Bearer"]
    api_key_id: str
    scopes: list[Literal["read", "write", "support"]]
    expires_at: Time
    created_at: Time
    user_id: str | None = Field(description="the user a bound token reads (null when unbound)")


class WebhookEndpointPublic(Public):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    status: Literal["ACTIVE", "DELETED"]
    secret: str | None = Field(description="whsec_...: only in create and rotate answers")
    secret_hint: str | None
    deleted_at: Time | None
    created_at: Time
    updated_at: Time


class WebhookEndpointsPublic(Public):
    data: list[WebhookEndpointPublic]
    pagination: Pagination


class WebhookDeliveryPublic(Public):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: Literal["PENDING", "SUCCEEDED", "FAILED"]
    attempts: int
    last_attempt_at: Time | None
    last_response_status: int | None
    last_error: str | None
    next_attempt_at: Time | None
    succeeded_at: Time | None
    attempt_log: list[Json]
    created_at: Time
    updated_at: Time


class WebhookDeliveriesPublic(Public):
    data: list[WebhookDeliveryPublic]
    pagination: Pagination


class AuditEntryPublic(Public):
    id: str
    occurred_at: Time
    action: str = Field(examples=["FUNDS_RESERVED"])
    resource_type: str
    resource_id: str | None
    user_id: str | None
    actor_type: str
    actor_id: str | None
    result: Literal["SUCCESS", "FAILURE"]
    payload_before: Json | None
    payload_after: Json | None
    error: Json | None
    request_id: str | None
    idempotency_key: str | None
    correlation_id: str | None
    ip: str | None
    user_agent: str | None
    created_at: Time
    updated_at: Time


class AuditEntriesPublic(Public):
    data: list[AuditEntryPublic]
    pagination: Pagination


# instance views (api.md §3) ---------------------------------------------------------------------


class HealthCheck(Public):
    status: Literal["ok", "error", "skipped"]
    latency_ms: int | None
    error: str | None


class HealthPublic(Public):
    status: Literal["healthy", "degraded"]
    version: str
    environment: Literal["test", "live"]
    payment_provider: Literal["crypto", "airtm"]
    maintenance: bool
    checks: dict[str, HealthCheck]
    timestamp: Time


class LivePublic(Public):
    status: Literal["ok"]
    timestamp: Time


class CredentialView(Public):
    type: Literal["api_key", "token"]
    id: str
    name: str | None
    scopes: list[str]
    expires_at: Time | None
    user_id: str | None = Field(default=None, description="tokens only: the bound user or null")


class MePublic(Public):
    marketplace_id: str
    credential: CredentialView
    environment: Literal["test", "live"]
    payment_provider: Literal["crypto", "airtm"]
    maintenance: bool
    version: str


class ConfigPublic(Public):
    version: str
    environment: Literal["test", "live"]
    payment_provider: Literal["crypto", "airtm"]
    currencies: list[str]
    limits: Json
    features: Json
    providers: Json
    timeouts: Json
    rate_limits: Json


class MaintenanceStatusPublic(Public):
    enabled: bool
    message: str | None
    retry_after_seconds: int | None
    enabled_at: Time | None
    enabled_by: str | None
    updated_at: Time | None


class ReconciliationRunPublic(Public):
    id: int = Field(examples=[42])  # operations.md §2: the run id is an integer
    status: str = Field(examples=["FINDINGS"])
    started_at: Time | None
    finished_at: Time | None
    checks: Any
    findings: Any
    error: Any
    created_at: Time
    updated_at: Time


class ReconciliationRunsPublic(Public):
    data: list[ReconciliationRunPublic]
    pagination: Pagination


# per-operation declarations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """What one operation answers besides the common errors: success statuses and model, and the
    endpoint's own error codes (api.md §3-§13)."""

    model: type[BaseModel] | None
    success: tuple[int, ...] = (200,)
    errors: tuple[ErrorCode, ...] = ()
    money: bool = False  # takes money in its body: INVALID_AMOUNT_FORMAT / INVALID_CURRENCY
    extra: dict[int, Json] = field(default_factory=dict)  # statuses documented by hand


E = ErrorCode
PROVIDER = (E.PROVIDER_ERROR, E.PROVIDER_TIMEOUT)
CREATED = (200, 201, 202)  # 200: an existing resource returned (users, client_order_ref); 202: still running
ACTION = (200, 202)

OPERATIONS: dict[str, Op] = {
    "health-check": Op(HealthPublic, extra={503: {"description": "degraded: same body, `status: degraded`"}}),
    "health-live": Op(LivePublic),
    "me-get": Op(MePublic),
    "config-get": Op(ConfigPublic),
    "maintenance-status": Op(MaintenanceStatusPublic),
    "maintenance-enable": Op(MaintenanceStatusPublic),
    "maintenance-disable": Op(MaintenanceStatusPublic),
    "reconciliation-run": Op(ReconciliationRunPublic, (202,)),
    "reconciliation-runs-list": Op(ReconciliationRunsPublic),
    "reconciliation-runs-get": Op(ReconciliationRunPublic, errors=(E.NOT_FOUND,)),
    "api-keys-create": Op(ApiKeyPublic, (201,)),
    "api-keys-list": Op(ApiKeysPublic),
    "api-keys-revoke": Op(ApiKeyPublic, errors=(E.API_KEY_NOT_FOUND,)),
    "tokens-create": Op(TokenPublic, (201,), (E.API_KEY_NOT_FOUND, E.USER_NOT_FOUND, E.INVALID_STATE)),
    "users-create": Op(UserPublic, (200, 201)),
    "users-list": Op(UsersPublic),
    "users-get": Op(UserPublic, errors=(E.USER_NOT_FOUND,)),
    "users-balance": Op(BalancePublic, errors=(E.USER_NOT_FOUND,)),
    "users-balance-verify": Op(BalanceVerificationPublic, errors=(E.USER_NOT_FOUND, E.WALLET_NOT_READY, *PROVIDER)),
    "users-balance-sync": Op(BalanceSyncPublic, errors=(E.USER_NOT_FOUND, E.WALLET_NOT_READY, *PROVIDER)),
    "users-wallet": Op(WalletPublic, errors=(E.USER_NOT_FOUND, *PROVIDER)),
    "users-deposit": Op(DepositInstructionsPublic, errors=(E.USER_NOT_FOUND,)),
    "users-wallet-transactions": Op(ChainTransactionsPublic, errors=(E.USER_NOT_FOUND, *PROVIDER)),
    "users-airtm-link": Op(
        UserPublic, errors=(E.USER_NOT_FOUND, E.AIRTM_USER_INVALID, E.AIRTM_USER_ALREADY_LINKED, *PROVIDER)
    ),
    "topups-create": Op(
        TopUpPublic,
        (201, 202),
        (E.USER_NOT_FOUND, E.INVALID_AMOUNT, E.AIRTM_USER_NOT_LINKED, E.AIRTM_USER_INVALID, *PROVIDER),
        money=True,
    ),
    "topups-list": Op(TopUpsPublic),
    "topups-get": Op(TopUpPublic, errors=(E.TOPUP_NOT_FOUND,)),
    "topups-refresh": Op(TopUpPublic, ACTION, (E.TOPUP_NOT_FOUND, *PROVIDER)),
    "topups-cancel": Op(TopUpPublic, ACTION, (E.TOPUP_NOT_FOUND, E.INVALID_STATE, *PROVIDER)),
    "topups-callback": Op(
        None,
        (),
        (E.TOPUP_NOT_FOUND,),
        extra={
            302: {
                "description": "redirect to the top-up's return_url or cancel_url",
                "headers": {"Location": {"$ref": "#/components/headers/Location"}},
            }
        },
    ),
    "orders-create": Op(OrderPublic, CREATED, (E.INVALID_AMOUNT, E.USER_NOT_FOUND, E.ORDER_ALREADY_EXISTS), money=True),
    "orders-list": Op(OrdersPublic),
    "orders-get": Op(OrderPublic, errors=(E.ORDER_NOT_FOUND,)),
    "orders-reserve": Op(
        OrderPublic,
        ACTION,
        (E.ORDER_NOT_FOUND, E.FUNDS_ALREADY_RESERVED, E.INVALID_STATE, E.RESERVE_MISMATCH_AMOUNT, E.INSUFFICIENT_FUNDS),
        money=True,
    ),
    "orders-cancel": Op(OrderPublic, ACTION, (E.ORDER_NOT_FOUND, E.INVALID_STATE)),
    "orders-escrow-create": Op(
        OrderPublic,
        ACTION,
        (E.ORDER_NOT_FOUND, E.ESCROW_ALREADY_EXISTS, E.INVALID_STATE, E.WALLET_NOT_READY, *PROVIDER),
    ),
    "orders-escrow-fund": Op(
        OrderPublic,
        ACTION,
        (E.ORDER_NOT_FOUND, E.ESCROW_NOT_READY, E.ESCROW_ALREADY_FUNDED, E.INVALID_STATE, E.ESCROW_FUNDING_FAILED),
    ),
    "orders-release": Op(OrderPublic, ACTION, (E.ORDER_NOT_FOUND, E.DISPUTE_ALREADY_OPEN, E.INVALID_STATE, *PROVIDER)),
    "orders-refund": Op(OrderPublic, ACTION, (E.ORDER_NOT_FOUND, E.DISPUTE_ALREADY_OPEN, E.INVALID_STATE, *PROVIDER)),
    "milestones-list": Op(MilestonesPublic, errors=(E.ORDER_NOT_FOUND,)),
    "milestones-get": Op(MilestonePublic, errors=(E.ORDER_NOT_FOUND, E.MILESTONE_NOT_FOUND)),
    "milestones-complete": Op(
        MilestonePublic, ACTION, (E.ORDER_NOT_FOUND, E.MILESTONE_NOT_FOUND, E.INVALID_STATE, *PROVIDER)
    ),
    "milestones-approve": Op(
        MilestonePublic, ACTION, (E.ORDER_NOT_FOUND, E.MILESTONE_NOT_FOUND, E.INVALID_STATE, *PROVIDER)
    ),
    "orders-dispute": Op(DisputePublic, (201, 202), (E.ORDER_NOT_FOUND, E.DISPUTE_ALREADY_OPEN, E.INVALID_STATE)),
    "disputes-list": Op(DisputesPublic),
    "disputes-get": Op(DisputePublic, errors=(E.DISPUTE_NOT_FOUND,)),
    "disputes-assign": Op(DisputePublic, ACTION, (E.DISPUTE_NOT_FOUND, E.INVALID_STATE)),
    "disputes-resolve": Op(
        DisputePublic, ACTION, (E.DISPUTE_NOT_FOUND, E.INVALID_STATE, E.INVALID_AMOUNT, *PROVIDER), money=True
    ),
    "disputes-comment": Op(CommentPublic, (201,), (E.DISPUTE_NOT_FOUND, E.INVALID_STATE)),
    "disputes-comments": Op(CommentsPublic, errors=(E.DISPUTE_NOT_FOUND,)),
    "audit-logs-list": Op(AuditEntriesPublic),
    "events-list": Op(EventsPublic),
    "withdrawals-create": Op(
        WithdrawalPublic,
        (201, 202),
        (
            E.USER_NOT_FOUND,
            E.INVALID_AMOUNT,
            E.INSUFFICIENT_FUNDS,
            E.WITHDRAWAL_DESTINATION_INVALID,
            E.WALLET_NOT_READY,
            E.AIRTM_USER_NOT_LINKED,
            E.AIRTM_USER_INVALID,
            *PROVIDER,
        ),
        money=True,
    ),
    "withdrawals-list": Op(WithdrawalsPublic),
    "withdrawals-get": Op(WithdrawalPublic, errors=(E.WITHDRAWAL_NOT_FOUND,)),
    "withdrawals-commit": Op(
        WithdrawalPublic,
        ACTION,
        (E.WITHDRAWAL_NOT_FOUND, E.WITHDRAWAL_NOT_COMMITTABLE, E.AIRTM_USER_INVALID, *PROVIDER),
    ),
    "withdrawals-refresh": Op(WithdrawalPublic, ACTION, (E.WITHDRAWAL_NOT_FOUND, *PROVIDER)),
    "withdrawals-cancel": Op(WithdrawalPublic, ACTION, (E.WITHDRAWAL_NOT_FOUND, E.INVALID_STATE)),
    "webhooks-airtm": Op(WebhookAckPublic, errors=(E.WEBHOOK_SIGNATURE_INVALID,)),
    "webhooks-trustless-work": Op(WebhookAckPublic, errors=(E.WEBHOOK_SIGNATURE_INVALID,)),
    "webhook-endpoints-create": Op(WebhookEndpointPublic, (201,), (E.WEBHOOK_ENDPOINT_LIMIT_REACHED,)),
    "webhook-endpoints-list": Op(WebhookEndpointsPublic),
    "webhook-endpoints-get": Op(WebhookEndpointPublic, errors=(E.WEBHOOK_ENDPOINT_NOT_FOUND,)),
    "webhook-endpoints-delete": Op(WebhookEndpointPublic, errors=(E.WEBHOOK_ENDPOINT_NOT_FOUND,)),
    "webhook-endpoints-rotate-secret": Op(WebhookEndpointPublic, errors=(E.WEBHOOK_ENDPOINT_NOT_FOUND,)),
    "webhook-endpoints-deliveries": Op(WebhookDeliveriesPublic, errors=(E.WEBHOOK_ENDPOINT_NOT_FOUND,)),
}

MODELS: tuple[type[BaseModel], ...] = (ErrorEnvelope, *{op.model for op in OPERATIONS.values() if op.model})

SUCCESS_TEXT = {
    200: "OK",
    201: "Created (`Location` names it)",
    202: "Accepted: the provider step goes on durably; the resource as recorded now (api.md §1.3)",
}

MESSAGES: dict[ErrorCode, tuple[str, Json]] = {
    E.UNAUTHORIZED: ("Authorization header missing", {}),
    E.INVALID_API_KEY: ("The credential is unknown, revoked or expired", {}),
    E.INSUFFICIENT_SCOPE: (
        "This endpoint needs the write scope",
        {"required_scope": "write", "current_scopes": ["read"]},
    ),
    E.VALIDATION_ERROR: ("The request is invalid", {"fields": [{"field": "title", "message": "field required"}]}),
    E.INVALID_AMOUNT_FORMAT: (
        'Amounts must be strings like "120.00", above 0.00',
        {"fields": [{"field": "amount", "message": "invalid amount"}]},
    ),
    E.INVALID_CURRENCY: ("Only USD is supported", {"field": "currency", "supported": ["USD"]}),
    E.RATE_LIMITED: (
        "Too many requests",
        {"limit": 100, "window_seconds": 60, "retry_after": 12, "scope": "api_key"},
    ),
    E.IDEMPOTENCY_KEY_REUSED: ("This Idempotency-Key was used with a different request", {}),
    E.IDEMPOTENCY_KEY_IN_PROGRESS: ("A request with this Idempotency-Key is still running", {}),
    E.MAINTENANCE: (
        "System maintenance in progress",
        {"message": "Database upgrade", "retry_after_seconds": 600, "enabled_at": "2026-01-20T02:00:00.000Z"},
    ),
    E.SERVICE_UNAVAILABLE: ("A dependency is unreachable; nothing changed", {"retry_after_seconds": 5}),
    E.INTERNAL_ERROR: ("An unexpected error occurred", {"request_id": "req-5b1e0c"}),
    E.PROVIDER_NOT_ENABLED: (
        "Not available with this payment provider",
        {"payment_provider": "crypto", "required_provider": "airtm"},
    ),
    E.INVALID_STATE: (
        "The order cannot do that in its current state",
        {"order_id": "ord_zlH3qP6lmtcsZmfb0alyI", "current_state": "CLOSED", "allowed_states": ["IN_PROGRESS"]},
    ),
    E.INSUFFICIENT_FUNDS: (
        "Insufficient available balance",
        {"available": "20.00", "requested": "120.00", "currency": "USD"},
    ),
    E.PROVIDER_ERROR: ("trustless_work could not serve the request", {"provider": "trustless_work"}),
    E.PROVIDER_TIMEOUT: (
        "stellar_horizon did not answer in time",
        {"provider": "stellar_horizon", "timeout_ms": 15000},
    ),
    E.PAYLOAD_TOO_LARGE: ("The request body exceeds 1 MiB", {}),
}

HEADERS: dict[str, Json] = {
    "X-Request-ID": {"description": "echoed or generated; on every response", "schema": {"type": "string"}},
    "Location": {"description": "the resource's URL", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}},
    "X-RateLimit-Limit": {"description": "requests allowed per window", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "requests left in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Unix seconds when the window resets", "schema": {"type": "integer"}},
    "Idempotent-Replayed": {"description": "`true` on a replayed response", "schema": {"type": "string"}},
    "X-Idempotency-Key": {"description": "echo of the request's Idempotency-Key", "schema": {"type": "string"}},
}
IDEMPOTENCY_PARAMETER: Json = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-255 visible ASCII characters (send a UUID v4); replays the stored answer (api.md §1.5)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _header_refs(*names: str) -> Json:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def common_errors(rule: RoutePolicy, method: str, path: str) -> list[ErrorCode]:
    """The errors of api.md §1.8 that this route can answer, from its policy."""
    codes = [E.VALIDATION_ERROR, E.RATE_LIMITED, E.INTERNAL_ERROR, E.SERVICE_UNAVAILABLE]
    if rule.access is not Access.PUBLIC:
        codes += [E.UNAUTHORIZED, E.INVALID_API_KEY]
    if rule.access in (Access.SCOPED, Access.MASTER_OR_KEY):
        codes.append(E.INSUFFICIENT_SCOPE)
    writes = method in ("POST", "PUT", "PATCH", "DELETE")
    if writes:
        codes.append(E.PAYLOAD_TOO_LARGE)
    if rule.retention is not None:
        codes += [E.IDEMPOTENCY_KEY_REUSED, E.IDEMPOTENCY_KEY_IN_PROGRESS]
    configuration = path.startswith((f"{API_PREFIX}/auth/", f"{API_PREFIX}/admin/"))
    if writes and not rule.maintenance_exempt and not configuration:
        codes.append(E.MAINTENANCE)
    if rule.mode is not None:
        codes.append(E.PROVIDER_NOT_ENABLED)
    return codes


def _error_example(code: ErrorCode) -> Json:
    message, details = MESSAGES.get(code, (code.replace("_", " ").capitalize(), {}))
    return {"error": {"code": code.value, "message": message, "details": details}}


def _error_responses(codes: list[ErrorCode]) -> dict[str, Json]:
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(HTTP_STATUS[code], []).append(code)
    responses: dict[str, Json] = {}
    for status in sorted(by_status):
        group = by_status[status]
        response: Json = {
            "description": ", ".join(f"`{code.value}`" for code in group),
            "headers": _header_refs("X-Request-ID"),
            "content": {
                "application/json": {
                    "schema": {"$ref": REF.format(model="ErrorEnvelope")},
                    "examples": {code.value: {"value": _error_example(code)} for code in group},
                }
            },
        }
        if status in (429, 503) or E.IDEMPOTENCY_KEY_IN_PROGRESS in group:
            response["headers"] |= _header_refs("Retry-After")
        responses[str(status)] = response
    return responses


def _success(op: Op, status: int) -> Json:
    assert op.model is not None
    name = op.model.__name__
    headers = _header_refs("X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
    if status in (201, 202):
        headers |= _header_refs("Location")
    response: Json = {
        "description": SUCCESS_TEXT.get(status, "OK"),
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=name)}}},
    }
    example = (op.model.model_config.get("json_schema_extra") or {}).get("example")  # type: ignore[union-attr]
    if example is not None:
        response["content"]["application/json"]["example"] = example
    return response


def responses_for(operation_id: str, rule: RoutePolicy, method: str, path: str) -> dict[str, Json]:
    op = OPERATIONS[operation_id]
    answers: dict[str, Json] = {str(status): _success(op, status) for status in op.success}
    codes = common_errors(rule, method, path) + list(op.errors)
    if op.money:
        codes += [E.INVALID_AMOUNT_FORMAT, E.INVALID_CURRENCY]
    answers |= _error_responses(codes)
    for status, extra in op.extra.items():
        if op.model is not None and "content" not in extra:
            answers[str(status)] = _success(op, status) | extra
        else:
            answers[str(status)] = extra
    if operation_id == "events-list":
        answers["200"]["content"]["text/event-stream"] = {
            "schema": {"type": "string", "description": "SSE frames; each `data:` is an Event (api.md §10)"}
        }
    return dict(sorted(answers.items()))


def component_schemas() -> dict[str, Json]:
    _, top = models_json_schema([(model, "serialization") for model in MODELS], ref_template=REF)
    schemas: dict[str, Json] = top.get("$defs", {})
    return schemas


def document(schema: Json, rules: dict[str, RoutePolicy]) -> Json:
    """Post-process FastAPI's document in place (`rules`: each operation id's policy): responses,
    headers, the Idempotency-Key parameter, and no FastAPI 422 anywhere."""
    components = schema.setdefault("components", {})
    stored = components.setdefault("schemas", {})
    for name, definition in component_schemas().items():
        stored.setdefault(name, definition)
    for name in ("HTTPValidationError", "ValidationError"):
        stored.pop(name, None)
    components["headers"] = HEADERS
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            operation_id = operation.get("operationId")
            rule = rules.get(operation_id)
            if rule is None or operation_id not in OPERATIONS:
                operation.get("responses", {}).pop("422", None)
                continue
            operation["responses"] = responses_for(operation_id, rule, method.upper(), path)
            if rule.access is Access.SCOPED:
                operation["description"] = (operation.get("description") or "") + (
                    " A user-bound token reads only its user's data here (api.md §4)."
                    if rule.user_reads
                    else " Refused to a user-bound token (403 INSUFFICIENT_SCOPE)."
                )
            if rule.retention is not None:
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
    return schema

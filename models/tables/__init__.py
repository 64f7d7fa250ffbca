"""SQLModel tables of domain.md §2. Importing this package registers every table."""

from models.tables.accounts import LEDGER_ENTRY_TYPES, LEDGER_SIGNS, Balance, LedgerEntry, User, Wallet
from models.tables.flows import Dispute, DisputeComment, Escrow, Milestone, Order, Topup, Withdrawal
from models.tables.platform import SCOPES, ApiKey, IdempotencyRecord, Marketplace
from models.tables.records import (
    AuditLog,
    ChainTransaction,
    Event,
    InboundWebhookEvent,
    ReconciliationRun,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "LEDGER_ENTRY_TYPES",
    "LEDGER_SIGNS",
    "SCOPES",
    "ApiKey",
    "AuditLog",
    "Balance",
    "ChainTransaction",
    "Dispute",
    "DisputeComment",
    "Escrow",
    "Event",
    "IdempotencyRecord",
    "InboundWebhookEvent",
    "LedgerEntry",
    "Marketplace",
    "Milestone",
    "Order",
    "ReconciliationRun",
    "Topup",
    "User",
    "Wallet",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Withdrawal",
]

"""Starting resource workflows from the API and the worker (idempotent: workflow ID = resource ID)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from models.search import attributes
from models.tables import Wallet
from models.workflow_io import WalletSetupInput
from settings import Settings


async def start_wallet_setup(client: Client, settings: Settings, wallet: Wallet) -> None:
    """Idempotent: the workflow ID is the wallet ID."""
    await client.start_workflow(
        "WalletSetupWorkflow",
        WalletSetupInput(wallet_id=wallet.id),
        id=wallet.id,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=attributes("wallet", wallet.status, [wallet.user_id] if wallet.user_id else []),
        static_summary=f"Wallet {wallet.id} ({wallet.purpose} {wallet.user_id or ''}) {wallet.public_key}",
    )

"""Deposit detection (providers.md §2.6): Horizon payments of each wallet, from its persisted
cursor, become crypto top-ups (one per operation ID) in the same transaction that advances
the cursor; the top-up workflows then credit them with key `deposit:<operation id>`."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.context import WorkerContext, provider_errors
from models import steps
from models.audit import audit_entry
from models.events import new_event
from models.ids import IdPrefix, new_id
from models.money import format_cents, stellar_amount_to_stroops, stroops_to_cents_floor
from models.search import attributes
from models.tables import Topup, Wallet
from models.timefmt import utcnow
from models.workflow_io import DepositPage, DepositScan, TopUpInput

log = logging.getLogger("offerhub.deposits")
PAGE = 200
DEPOSIT_TYPES = ("payment", "path_payment_strict_send", "path_payment_strict_receive")


def deposit_of(record: dict[str, Any], wallet: str, code: str, issuer: str) -> tuple[int, int] | None:
    """(cents, dust stroops) if this payment record is a creditable USDC deposit, else None."""
    if record.get("type") not in DEPOSIT_TYPES or record.get("to") != wallet:
        return None
    if not record.get("transaction_successful", False) or record.get("from") == wallet:
        return None
    if record.get("asset_type") == "native" or record.get("asset_code") != code or record.get("asset_issuer") != issuer:
        return None
    floored = stroops_to_cents_floor(stellar_amount_to_stroops(str(record["amount"])))
    return (floored.cents, floored.dust_stroops) if floored.cents >= 1 else None


def ignored_foreign_asset(record: dict[str, Any], wallet: str, code: str, issuer: str) -> bool:
    """An incoming payment in another asset (or issuer): never credited, audited and alerted."""
    return (
        record.get("type") in DEPOSIT_TYPES
        and record.get("to") == wallet
        and record.get("from") != wallet
        and record.get("asset_type") != "native"
        and (record.get("asset_code"), record.get("asset_issuer")) != (code, issuer)
    )


class DepositActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @activity.defn(name=steps.DEPOSITS_SCAN.name)
    @provider_errors
    async def deposits_scan(self, req: DepositScan) -> DepositPage:
        wallets = await self._due_wallets(req)
        page = DepositPage(wallets_scanned=len(wallets))
        for wallet in wallets:
            found, more = await self._scan_wallet(wallet, req.max_pages)
            page.deposits_found += found
            page.more = page.more or more
            activity.heartbeat(wallet.id)
        page.topup_ids = await self._uncredited([w.user_id for w in wallets if w.user_id])
        return page

    @activity.defn(name=steps.TOPUPS_START.name)
    async def topups_start(self, topup_ids: list[str]) -> int:
        """Start one TopUpWorkflow per top-up (workflow ID = top-up ID: a repeat is a no-op)."""
        client = self.ctx.temporal
        assert client is not None
        started = 0
        for topup_id in topup_ids:
            async with self.ctx.sessions() as session:
                topup = await session.get(Topup, topup_id)
            if topup is None:
                continue
            try:
                await client.start_workflow(
                    "TopUpWorkflow",
                    TopUpInput(topup_id=topup_id, provider=topup.provider),
                    id=topup_id,
                    task_queue=self.ctx.settings.temporal_task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    search_attributes=attributes("topup", topup.status, [topup.user_id], topup.amount),
                    static_summary=f"Top-up {topup_id}: {format_cents(topup.amount)} USD to {topup.user_id} "
                    f"({topup.provider})",
                )
                started += 1
            except WorkflowAlreadyStartedError:
                pass  # finished earlier: its effect is recorded
        return started

    async def _due_wallets(self, req: DepositScan) -> list[Wallet]:
        settings = self.ctx.settings
        now = utcnow()
        async with self.ctx.sessions() as session:
            query = select(Wallet).where(
                col(Wallet.purpose) == "USER", col(Wallet.status) == "READY", col(Wallet.is_active).is_(True)
            )
            if req.wallet_ids is not None:
                query = query.where(col(Wallet.id).in_(req.wallet_ids))
            wallets = list((await session.execute(query)).scalars().all())
            if req.force:
                return wallets
            recent = {
                row[0]
                for row in (
                    await session.execute(
                        select(col(Topup.user_id)).where(col(Topup.created_at) > now - timedelta(days=1)).distinct()
                    )
                ).all()
            }
        due = []
        for wallet in wallets:
            active = wallet.created_at > now - timedelta(days=1) or wallet.user_id in recent
            interval = settings.deposit_poll_interval_seconds if active else settings.deposit_idle_poll_interval_seconds
            if wallet.last_sync_at is None or (now - wallet.last_sync_at).total_seconds() >= interval * 0.9:
                due.append(wallet)
        return due

    async def _scan_wallet(self, wallet: Wallet, max_pages: int) -> tuple[int, bool]:
        code, issuer = self.ctx.usdc_code, self.ctx.usdc_issuer
        cursor = wallet.deposit_cursor
        found = 0
        for _ in range(max_pages):
            records = await self.ctx.horizon.payments(wallet.public_key, cursor=cursor, order="asc", limit=PAGE)
            async with self.ctx.sessions() as session, session.begin():
                for record in records:
                    found += await self._record(session, wallet, record, code, issuer)
                last = records[-1]["paging_token"] if records else cursor
                await session.execute(
                    update(Wallet)
                    .where(col(Wallet.id) == wallet.id)
                    .values(deposit_cursor=last, last_sync_at=func.now(), updated_at=func.now())
                )
            cursor = last
            if len(records) < PAGE:
                return found, False
        return found, True

    async def _record(self, session: Any, wallet: Wallet, record: dict[str, Any], code: str, issuer: str) -> int:
        assert wallet.user_id is not None
        deposit = deposit_of(record, wallet.public_key, code, issuer)
        if deposit is None:
            if ignored_foreign_asset(record, wallet.public_key, code, issuer):
                log.warning(
                    "deposit in a foreign asset ignored",
                    extra={"wallet_id": wallet.id, "operation_id": record.get("id")},
                )
                session.add(
                    audit_entry(
                        action="DEPOSIT_IGNORED",
                        resource_type="wallet",
                        resource_id=wallet.id,
                        user_id=wallet.user_id,
                        actor=("system", "deposit-monitor"),
                        result="FAILURE",
                        correlation_id=wallet.user_id,
                        error={"code": "FOREIGN_ASSET", "message": "only USDC of the configured issuer is credited"},
                        after={
                            "operation_id": record.get("id"),
                            "asset_code": record.get("asset_code"),
                            "asset_issuer": record.get("asset_issuer"),
                            "amount": record.get("amount"),
                        },
                    )
                )
            return 0
        cents, dust = deposit
        topup_id = new_id(IdPrefix.TOPUP)
        now = utcnow()
        memo = (record.get("transaction") or {}).get("memo")
        inserted = await session.execute(
            insert(Topup)
            .values(
                id=topup_id,
                user_id=wallet.user_id,
                provider="crypto",
                status="TOPUP_CREATED",
                amount=cents,
                currency="USD",
                description="On-chain USDC deposit",
                **{"metadata": {"memo": memo} if memo else {}},
                stellar_transaction_hash=record.get("transaction_hash"),
                stellar_operation_id=str(record["id"]),
                source_address=record.get("from"),
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["stellar_operation_id"])
            .returning(col(Topup.id))
        )
        if inserted.first() is None:
            return 0  # seen before: one top-up per operation ID
        actor = ("system", "deposit-monitor")
        session.add(
            new_event(
                type="topup.created",
                resource=("topup", topup_id),
                user_ids=[wallet.user_id],
                actor=actor,
                correlation_id=topup_id,
                payload={
                    "topup_id": topup_id,
                    "user_id": wallet.user_id,
                    "provider": "crypto",
                    "amount": format_cents(cents),
                    "currency": "USD",
                    "status": "TOPUP_CREATED",
                    "stellar_transaction_hash": record.get("transaction_hash"),
                },
            )
        )
        session.add(
            audit_entry(
                action="TOPUP_CREATED",
                resource_type="topup",
                resource_id=topup_id,
                user_id=wallet.user_id,
                actor=actor,
                correlation_id=topup_id,
                after={
                    "status": "TOPUP_CREATED",
                    "amount": format_cents(cents),
                    "stellar_operation_id": str(record["id"]),
                    "dust_stroops": dust,
                },
            )
        )
        return 1

    async def _uncredited(self, user_ids: list[str]) -> list[str]:
        if not user_ids:
            return []
        async with self.ctx.sessions() as session:
            rows = await session.execute(
                select(col(Topup.id))
                .where(
                    col(Topup.provider) == "crypto",
                    col(Topup.status) == "TOPUP_CREATED",
                    col(Topup.user_id).in_(user_ids),
                )
                .order_by(col(Topup.created_at))
            )
            return [row[0] for row in rows.all()]

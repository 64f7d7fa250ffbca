"""`offerhub demo`: a narrated tour of a running stack (what `make dev` starts), written with
the SDK a marketplace backend would use (`offerhub_sdk`): users funded from the sandbox
faucet, an order paid milestone by milestone, a disputed order settled by a split, a
withdrawal to a Stellar account outside the product, the balances, the Temporal UI link of
every workflow, then the ledger invariants. Exit 0 when every step and the check pass, 1
when one fails, 3 when the API or the sandbox cannot be reached."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from offerhub_sdk import APIConnectionError, OfferHub, OfferHubError
from offerhub_sdk.models import Order, User

DEFAULT_TEMPORAL_UI = "http://127.0.0.1:8233"
FUNDING = "300.00"
WAIT = 90.0  # seconds a slow step (202) may take before the demo calls it failed


class DemoFailed(Exception):
    """A step did not end as the demo expects."""


@dataclass
class Narrator:
    echo: Callable[[str], None]
    temporal_ui: str
    workflows: list[str] = field(default_factory=list)

    def step(self, text: str) -> None:
        self.echo(f"\n== {text}")

    def say(self, text: str) -> None:
        self.echo(f"   {text}")

    def workflow(self, workflow_id: str, label: str) -> None:
        self.workflows.append(workflow_id)
        self.say(f"{label:10} {self.temporal_ui}/namespaces/default/workflows/{workflow_id}")


def master_key_from_data_dir(root: Path) -> str | None:
    """The master key `make dev` keeps in `.data/secrets.env` (when the environment has none)."""
    path = root / ".data" / "secrets.env"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "OFFERHUB_MASTER_KEY" and value.strip():
            return value.strip()
    return None


def run_demo(
    api_url: str,
    master_key: str | None,
    sandbox_url: str,
    *,
    database_url: str | None = None,
    temporal_ui: str | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    master_key = master_key or master_key_from_data_dir(Path.cwd())
    if not master_key:
        echo("a master key is required: set OFFERHUB_MASTER_KEY (or run from the directory of `make dev`)")
        return 2
    narrator = Narrator(echo, (temporal_ui or os.environ.get("TEMPORAL_UI_URL") or DEFAULT_TEMPORAL_UI).rstrip("/"))
    try:
        Demo(api_url, master_key, sandbox_url.rstrip("/"), narrator).run()
    except APIConnectionError as exc:
        echo(f"\nFAILED: cannot reach the API at {api_url}: {exc}")
        return 3
    except httpx.TransportError as exc:
        echo(f"\nFAILED: cannot reach the sandbox at {sandbox_url}: {type(exc).__name__}")
        return 3
    except OfferHubError as exc:
        echo(f"\nFAILED: {exc.code}: {exc.message} (request {exc.request_id})")
        return 1
    except (DemoFailed, TimeoutError) as exc:
        echo(f"\nFAILED: {exc}")
        return 1
    return 0 if ledger_check(database_url or os.environ.get("DATABASE_URL") or dev_database_url(), narrator) else 1


def dev_database_url(root: Path | None = None) -> str | None:
    """The embedded PostgreSQL of the `make dev` running from this directory, if any."""
    from cli.dev import DATABASE_URL_FILE

    path = (root or Path.cwd()) / ".data" / DATABASE_URL_FILE
    return path.read_text().strip() if path.exists() else None


def ledger_check(database_url: str | None, narrator: Narrator) -> bool:
    """`offerhub ledger check` (domain.md §3.5) when the database is reachable from here."""
    narrator.step("ledger check (domain.md §3.5)")
    if not database_url:
        narrator.say("skipped: no DATABASE_URL and no `make dev` here (run `offerhub ledger check` beside the stack)")
        return True
    from sqlalchemy.ext.asyncio import create_async_engine

    from activities.ledger_check import LedgerReport, check_ledger

    async def run() -> LedgerReport:
        engine = create_async_engine(database_url)
        try:
            return await check_ledger(engine)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    for check in report.checks:
        narrator.say(f"{check.name:28} {'ok' if check.ok else f'VIOLATED {check.violations}'}")
    narrator.echo("\nledger check passed" if report.ok else "\nFAILED: ledger check found violations")
    return report.ok


class Demo:
    def __init__(self, api_url: str, master_key: str, sandbox_url: str, narrator: Narrator) -> None:
        self.api_url = api_url
        self.master_key = master_key
        self.sandbox = sandbox_url
        self.n = narrator
        self.tag = secrets.token_hex(3)

    def run(self) -> None:
        n = self.n
        with OfferHub(api_key=self.master_key, base_url=self.api_url) as master:
            n.step(f"instance at {self.api_url}")
            health = master.health()
            n.say(f"health {health.status}, version {health.version}, {health.payment_provider} mode")
            backend = master.api_keys.create(name=f"demo-backend-{self.tag}", scopes=["read", "write"])
            support = master.api_keys.create(name=f"demo-support-{self.tag}", scopes=["read", "support"])
            n.say(f"API key for the marketplace backend {backend.id} (read, write)")
            n.say(f"API key for support staff          {support.id} (read, support)")
        assert backend.key is not None and support.key is not None
        with (
            OfferHub(api_key=backend.key, base_url=self.api_url) as client,
            OfferHub(api_key=support.key, base_url=self.api_url) as agent,
        ):
            config = client.config()
            if config.payment_provider != "crypto":
                raise DemoFailed(f"the demo runs in crypto mode; this instance is in {config.payment_provider} mode")
            buyer, seller = self.users(client)
            self.milestone_order(client, buyer, seller)
            self.disputed_order(client, agent, buyer, seller)
            self.withdrawal(client, seller)
            self.balances(client, buyer, seller)

    # steps -------------------------------------------------------------------------------

    def users(self, client: OfferHub) -> tuple[User, User]:
        n = self.n
        n.step("users")
        buyer = client.users.create(external_user_id=f"demo-buyer-{self.tag}", type="BUYER", email="ana@example.com")
        seller = client.users.create(external_user_id=f"demo-seller-{self.tag}", type="SELLER")
        for role, user in (("buyer", buyer), ("seller", seller)):
            assert user.wallet is not None
            n.say(f"{role:6} {user.id} ({user.external_user_id}), wallet {user.wallet.id} {user.wallet.status}")
            n.workflow(user.wallet.id, "wallet")
        buyer = client.users.wait_for_wallet(buyer.id, timeout=WAIT)
        seller = client.users.wait_for_wallet(seller.id, timeout=WAIT)
        assert buyer.wallet is not None and seller.wallet is not None
        n.say(f"wallets READY on Stellar: {buyer.wallet.public_key} / {seller.wallet.public_key}")

        n.step(f"fund the buyer with {FUNDING} USDC from the sandbox faucet")
        deposit = client.users.deposit_instructions(buyer.id)
        self.sandbox_post("/_sandbox/faucet/usdc", {"address": deposit.address, "amount": FUNDING})
        self.until(lambda: client.users.balance(buyer.id).available == FUNDING, "the deposit was never credited")
        topup = client.topups.list(user_id=buyer.id, limit=1).data[0]
        n.say(f"deposit seen on chain and credited once: {topup.id} {topup.status} {topup.amount} {topup.currency}")
        n.workflow(topup.id, "top-up")
        self.balance_line(client, "buyer", buyer.id)
        return buyer, seller

    def milestone_order(self, client: OfferHub, buyer: User, seller: User) -> None:
        n = self.n
        n.step("an order paid milestone by milestone")
        order = client.orders.create(
            buyer_id=buyer.id,
            seller_id=seller.id,
            amount="120.00",
            title="Logo design",
            client_order_ref=f"DEMO-{self.tag}-1",
            milestones=[
                {"milestone_ref": "concepts", "title": "Two concepts", "amount": "60.00"},
                {"milestone_ref": "final", "title": "Final vector file", "amount": "60.00"},
            ],
        )
        n.say(f"order {order.id} {order.amount} {order.currency}: {order.status}")
        n.workflow(order.id, "order")
        order = self.fund(client, order)
        for milestone in order.milestones:
            n.workflow(milestone.id, "milestone")
            done = client.orders.milestones.complete(order.id, milestone.milestone_ref, note="delivered")
            n.say(f"seller completed {milestone.milestone_ref}: {done.status}")
            paid = client.orders.milestones.approve(order.id, milestone.milestone_ref)
            if paid.accepted:
                paid = client.orders.milestones.wait(order.id, milestone.id, "RELEASED", timeout=WAIT)
            n.say(f"buyer approved {milestone.milestone_ref}: {paid.status} {paid.amount} to the seller")
        order = client.orders.wait(order.id, "CLOSED", timeout=WAIT)
        self.expect(order.close_reason == "RELEASED", f"order {order.id} closed as {order.close_reason}")
        n.say(f"order {order.status} ({order.close_reason}), released {order.released_amount}")
        self.event_trail(client, order.id)

    def disputed_order(self, client: OfferHub, agent: OfferHub, buyer: User, seller: User) -> None:
        n = self.n
        n.step("a disputed order, settled by a split")
        order = client.orders.create(
            buyer_id=buyer.id,
            seller_id=seller.id,
            amount="80.00",
            title="Website copy",
            client_order_ref=f"DEMO-{self.tag}-2",
        )
        n.say(f"order {order.id} {order.amount} {order.currency}: {order.status}")
        n.workflow(order.id, "order")
        order = self.fund(client, order)
        dispute = client.orders.open_dispute(
            order.id, opened_by="BUYER", reason="QUALITY_ISSUE", description="Only half of the pages were delivered"
        )
        n.say(f"buyer opened dispute {dispute.id} over {dispute.disputed_amount}: {dispute.status}")
        n.workflow(dispute.id, "dispute")
        client.disputes.add_comment(
            dispute.id, author_type="SELLER", author_id=seller.id, message="Half of the pages are done"
        )
        dispute = agent.disputes.assign(dispute.id, assigned_to="agent-demo", note="demo")
        n.say(f"support assigned it to {dispute.assigned_to}: {dispute.status}")
        dispute = agent.disputes.resolve(
            dispute.id, decision="SPLIT", release_amount="50.00", refund_amount="30.00", note="Half delivered"
        )
        if dispute.accepted:
            dispute = agent.disputes.wait(dispute.id, "RESOLVED", timeout=WAIT)
        n.say(
            f"support resolved it: {dispute.resolution_decision}, {dispute.release_amount} to the seller, "
            f"{dispute.refund_amount} back to the buyer ({dispute.status})"
        )
        order = client.orders.wait(order.id, "CLOSED", timeout=WAIT)
        self.expect(order.close_reason == "SPLIT", f"order {order.id} closed as {order.close_reason}")
        n.say(f"order {order.status} ({order.close_reason})")
        self.event_trail(client, order.id)

    def withdrawal(self, client: OfferHub, seller: User) -> None:
        n = self.n
        n.step("a withdrawal to a Stellar account outside the product")
        outside = self.outside_account()
        n.say(f"outside account {outside} (XLM from the sandbox faucet, USDC trustline)")
        withdrawal = client.withdrawals.create(
            user_id=seller.id, amount="40.00", destination_type="crypto", destination_ref=outside, memo="demo payout"
        )
        n.workflow(withdrawal.id, "withdrawal")
        if withdrawal.status != "WITHDRAWAL_COMPLETED":
            withdrawal = client.withdrawals.wait(withdrawal.id, timeout=WAIT)
        self.expect(withdrawal.status == "WITHDRAWAL_COMPLETED", f"withdrawal ended {withdrawal.status}")
        n.say(f"withdrawal {withdrawal.id} {withdrawal.amount}: {withdrawal.status}")
        n.say(f"Stellar transaction {withdrawal.stellar_transaction_hash}")
        n.say(f"the outside account now holds {self.usdc_at(outside)} USDC")

    def balances(self, client: OfferHub, buyer: User, seller: User) -> None:
        self.n.step("balances")
        buyer_balance = self.balance_line(client, "buyer", buyer.id)
        seller_balance = self.balance_line(client, "seller", seller.id)
        # 300 - 120 - 80 + 30 for the buyer; 120 + 50 - 40 for the seller
        self.expect(buyer_balance.available == "130.00", f"buyer holds {buyer_balance.available}, not 130.00")
        self.expect(seller_balance.available == "130.00", f"seller holds {seller_balance.available}, not 130.00")
        verified = client.users.verify_balance(seller.id)
        self.n.say(f"seller on chain {verified.provider_balance}, discrepancy {verified.discrepancy}")
        self.expect(bool(verified.provider_verified), "the seller's wallet disagrees with the ledger")

    # helpers -----------------------------------------------------------------------------

    def fund(self, client: OfferHub, order: Order) -> Order:
        """Reserve, deploy the escrow, fund it: the order ends `IN_PROGRESS`."""
        order = client.orders.reserve(order.id)
        self.n.say(f"buyer's funds reserved: {order.status}")
        order = client.orders.create_escrow(order.id)
        if order.accepted:
            order = client.orders.wait(order.id, "ESCROW_FUNDING", timeout=WAIT)
        assert order.escrow is not None
        self.n.say(f"escrow {order.escrow.id} deployed on Trustless Work: {order.escrow.trustless_contract_id}")
        order = client.orders.fund_escrow(order.id)
        if order.accepted:
            order = client.orders.wait(order.id, "IN_PROGRESS", timeout=WAIT)
        self.expect(order.status == "IN_PROGRESS", f"order {order.id} is {order.status} after funding")
        assert order.escrow is not None
        self.n.say(f"escrow funded with {order.escrow.amount}: {order.status}")
        return order

    def event_trail(self, client: OfferHub, order_id: str) -> None:
        events = client.events.list(resource_id=order_id, resource_type="order", order="asc", limit=100)
        self.n.say("events: " + " → ".join(event.type.removeprefix("order.") for event in events))

    def balance_line(self, client: OfferHub, role: str, user_id: str) -> Any:
        balance = client.users.balance(user_id)
        self.n.say(f"{role:6} available {balance.available:>8}  reserved {balance.reserved:>8}  {balance.currency}")
        return balance

    def outside_account(self) -> str:
        """A fresh Stellar account with XLM and a USDC trustline (signed here, sent to the sandbox's Horizon)."""
        from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

        info = self.sandbox_get("/_sandbox/info")
        keypair = Keypair.random()
        self.sandbox_post("/_sandbox/faucet/xlm", {"address": keypair.public_key, "amount": "100"})
        horizon = info["urls"]["horizon"]
        with httpx.Client(base_url=horizon, timeout=30) as http:
            sequence = int(http.get(f"/accounts/{keypair.public_key}").json()["sequence"])
            tx = (
                TransactionBuilder(Account(keypair.public_key, sequence), info["network_passphrase"], base_fee=100)
                .append_change_trust_op(Asset(info["usdc"]["code"], info["usdc"]["issuer"]))
                .set_timeout(60)
                .build()
            )
            tx.sign(keypair)
            sent = http.post("/transactions", data={"tx": tx.to_xdr()})
        if sent.status_code != 200:
            raise DemoFailed(f"the trustline transaction was refused: {sent.text[:200]}")
        return str(keypair.public_key)

    def usdc_at(self, address: str) -> str:
        account = self.sandbox_get(f"/_sandbox/accounts/{address}")
        for line in account.get("balances", []):
            if line.get("asset_code") == "USDC":
                return str(line["balance"])
        return "0"

    def sandbox_get(self, path: str) -> Any:
        response = httpx.get(self.sandbox + path, timeout=30)
        if response.status_code != 200:
            raise DemoFailed(f"sandbox GET {path}: {response.status_code} {response.text[:200]}")
        return response.json()

    def sandbox_post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(self.sandbox + path, json=body, timeout=30)
        if response.status_code != 200:
            raise DemoFailed(f"sandbox POST {path}: {response.status_code} {response.text[:200]}")
        return response.json()

    @staticmethod
    def until(probe: Callable[[], bool], failure: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                raise DemoFailed(failure)
            time.sleep(0.5)

    @staticmethod
    def expect(condition: bool, failure: str) -> None:
        if not condition:
            raise DemoFailed(failure)

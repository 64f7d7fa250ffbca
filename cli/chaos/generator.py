"""Random but valid marketplace activity, through the SDK a marketplace backend uses.

Users (funded by crypto deposits from the sandbox faucet, or Airtm top-ups confirmed at the
sandbox), orders with and without milestones, milestone completion and approval, releases,
refunds, cancellations, disputes settled by every decision, withdrawals on the active rail.
Several actors run at once; each draws every choice from its own `random.Random`, seeded
from the run's seed, so a seed replays the same plan (the interleaving, set by timing, may
differ). The generator also remembers what it moved in and out from the outside (faucet
payments, confirmed pay-ins), which the checks compare with the books.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cli.chaos.clients import ClientPool, Refused
from offerhub_sdk import AsyncOfferHub
from offerhub_sdk.models import Dispute, Order, User

WAIT_SECONDS = 90.0
DECISIONS = ("FULL_RELEASE", "FULL_REFUND", "SPLIT")
SCENARIOS = {  # scenario -> weight
    "deposit": 2,
    "order_release": 3,
    "order_refund": 2,
    "order_cancel": 1,
    "milestone_order": 3,
    "dispute": 3,
    "withdrawal": 2,
}


def money(cents: int) -> str:
    cents = int(cents)  # PostgreSQL sums arrive as Decimal
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def cents(amount: str) -> int:
    whole, _, fraction = amount.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


@dataclass
class Member:
    id: str
    address: str | None = None  # crypto: the wallet's Stellar address
    airtm_email: str | None = None


@dataclass
class Activity:
    """Everything the run created and moved, from the outside."""

    users: list[Member] = field(default_factory=list)
    orders: set[str] = field(default_factory=set)
    disputes: dict[str, str] = field(default_factory=dict)  # order id -> dispute id
    withdrawals: set[str] = field(default_factory=set)
    topups: set[str] = field(default_factory=set)
    faucet_sent: dict[str, int] = field(default_factory=dict)  # user id -> cents paid to the wallet
    payins_confirmed: dict[str, int] = field(default_factory=dict)  # user id -> cents confirmed at Airtm
    outside_accounts: list[str] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)

    def add(self, book: dict[str, int], user_id: str, amount: int) -> None:
        book[user_id] = book.get(user_id, 0) + amount


@dataclass
class Generator:
    provider: str
    pool: ClientPool
    sandbox: httpx.AsyncClient  # the sandbox's control API and Horizon (base: the sandbox root)
    passphrase: str
    usdc_issuer: str
    activity: Activity = field(default_factory=Activity)
    budget: int = 400  # operations (requests that change state) at most
    deadline: float = 0.0  # time.monotonic() after which no new scenario starts

    @property
    def exhausted(self) -> bool:
        return self.pool.tally.total >= self.budget or time.monotonic() >= self.deadline

    # setup -------------------------------------------------------------------------------

    async def setup(self, rng: random.Random, users: int) -> None:
        seeds = [random.Random(rng.getrandbits(64)) for _ in range(users)]
        self.activity.users = list(await asyncio.gather(*(self.new_user(r) for r in seeds)))
        if self.provider == "crypto":
            self.activity.outside_accounts = [await self.outside_account(rng) for _ in range(2)]
            # users start with money: their first deposits are credited before the actors start,
            # so a short run still reserves orders on a loaded machine (the deposit monitor polls)
            await asyncio.gather(*(self.first_deposit_credited(member) for member in self.activity.users))

    async def first_deposit_credited(self, member: Member) -> None:
        """Until the member's balance holds what the faucet sent (bounded by WAIT_SECONDS). Polls
        draw from a generator of their own: how many it takes must not shift the seeded run."""
        polls = random.Random(member.id)
        expected = self.activity.faucet_sent.get(member.id, 0)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            balance = await self.pool.read(polls, lambda c: c.users.balance(member.id))
            if cents(balance.available) >= expected:
                return
            await asyncio.sleep(0.5)

    async def fund_treasury(self, address: str, amount: int) -> None:
        """Airtm mode: the platform's USDC float, which funds escrows on chain (providers.md §2.1),
        as an operator provides it; outside the users' books."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            paid = await self.sandbox.post("/_sandbox/faucet/usdc", json={"address": address, "amount": money(amount)})
            if paid.status_code == 200 or time.monotonic() > deadline:
                paid.raise_for_status()
                return
            await asyncio.sleep(1)  # the treasury's trustline is not there yet

    async def new_user(self, rng: random.Random) -> Member:
        tag = f"{rng.getrandbits(48):012x}"
        email = f"chaos-{tag}@example.com"
        user: User = await self.pool.call(
            "user.create",
            rng,
            lambda c, k: c.users.create(external_user_id=f"chaos-{tag}", email=email, idempotency_key=k),
        )
        if self.provider == "crypto":
            ready = await self.pool.read(rng, lambda c: c.users.wait_for_wallet(user.id, timeout=WAIT_SECONDS))
            assert ready.wallet is not None and ready.wallet.public_key is not None
            member = Member(user.id, address=ready.wallet.public_key)
        else:
            made = await self.sandbox.post("/_sandbox/airtm/users", json={"email": email, "balance": "100000.00"})
            made.raise_for_status()
            await self.pool.call(
                "user.link_airtm", rng, lambda c, k: c.users.link_airtm(user.id, email=email, idempotency_key=k)
            )
            member = Member(user.id, airtm_email=email)
        await self.deposit(rng, member, rng.randint(300, 600) * 100)
        return member

    async def outside_account(self, rng: random.Random) -> str:
        """A Stellar account outside the product with a USDC trustline (withdrawals go there)."""
        from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

        keypair = Keypair.from_raw_ed25519_seed(rng.getrandbits(256).to_bytes(32, "big"))
        made = await self.sandbox.post("/_sandbox/faucet/xlm", json={"address": keypair.public_key, "amount": "100"})
        made.raise_for_status()
        account = (await self.sandbox.get(f"/horizon/accounts/{keypair.public_key}")).json()
        tx = (
            TransactionBuilder(Account(keypair.public_key, int(account["sequence"])), self.passphrase, base_fee=100)
            .append_change_trust_op(Asset("USDC", self.usdc_issuer))
            .set_timeout(60)
            .build()
        )
        tx.sign(keypair)
        sent = await self.sandbox.post("/horizon/transactions", data={"tx": tx.to_xdr()})
        sent.raise_for_status()
        return str(keypair.public_key)

    # the actors --------------------------------------------------------------------------

    async def actor(self, rng: random.Random) -> None:
        kinds, weights = zip(*SCENARIOS.items(), strict=True)
        while not self.exhausted:
            kind = rng.choices(kinds, weights)[0]
            try:
                await getattr(self, kind)(rng)
            except Refused:
                pass  # a business refusal (or a call that never got through): the next scenario
            except TimeoutError:
                pass  # a flow slower than the wait: the drain at the end follows it up

    def two_users(self, rng: random.Random) -> tuple[Member, Member]:
        buyer, seller = rng.sample(self.activity.users, 2)
        return buyer, seller

    # scenarios ---------------------------------------------------------------------------

    async def deposit(self, rng: random.Random, member: Member | None = None, amount: int | None = None) -> None:
        member = member or rng.choice(self.activity.users)
        amount = amount or rng.randint(20, 200) * 100 + rng.choice((0, 1, 50, 99))
        if self.provider == "crypto":
            assert member.address is not None
            self.pool.tally.operations["deposit.faucet"] += 1
            paid = await self.sandbox.post(
                "/_sandbox/faucet/usdc", json={"address": member.address, "amount": money(amount)}
            )
            paid.raise_for_status()
            self.activity.add(self.activity.faucet_sent, member.id, amount)
            return
        topup = await self.pool.call(
            "topup.create",
            rng,
            lambda c, k: c.topups.create(user_id=member.id, amount=money(amount), idempotency_key=k),
        )
        self.activity.topups.add(topup.id)
        if rng.random() < 0.1:  # the user gives up at Airtm's page
            self.pool.tally.operations["topup.cancel_at_airtm"] += 1
            await self.sandbox.post(f"/_sandbox/airtm/payins/{topup.id}/cancel")
            return
        await self.confirm_payin(member, topup.id, amount)
        await self.pool.read(rng, lambda c: c.topups.wait(topup.id, timeout=WAIT_SECONDS))

    async def confirm_payin(self, member: Member, topup_id: str, amount: int) -> None:
        self.pool.tally.operations["topup.confirm_at_airtm"] += 1
        confirmed = await self.sandbox.post(
            f"/_sandbox/airtm/payins/{topup_id}/confirm", json={"email": member.airtm_email}
        )
        if confirmed.status_code == 200:
            self.activity.add(self.activity.payins_confirmed, member.id, amount)

    async def funded_order(self, rng: random.Random, buyer: Member, seller: Member, milestones: int = 0) -> Order:
        amount = rng.randint(5, 60) * 100 + rng.choice((0, 1, 25, 99))
        parts: list[dict[str, Any]] | None = None
        if milestones:
            shares = [amount // milestones] * milestones
            shares[-1] += amount - sum(shares)
            parts = [
                {"milestone_ref": f"m{i + 1}", "title": f"Part {i + 1}", "amount": money(share)}
                for i, share in enumerate(shares)
            ]
        title = f"Chaos job {rng.getrandbits(32):08x}"
        order: Order = await self.pool.call(
            "order.create",
            rng,
            lambda c, k: c.orders.create(
                buyer_id=buyer.id,
                seller_id=seller.id,
                amount=money(amount),
                title=title,
                milestones=parts,
                idempotency_key=k,
            ),
        )
        self.activity.orders.add(order.id)
        await self.pool.call("order.reserve", rng, lambda c, k: c.orders.reserve(order.id, idempotency_key=k))
        await self.pool.call(
            "order.create_escrow", rng, lambda c, k: c.orders.create_escrow(order.id, idempotency_key=k)
        )
        order = await self.wait_order(rng, order.id)
        if order.status != "ESCROW_FUNDING":
            raise Refused("order.create_escrow", order.status)
        await self.pool.call("order.fund_escrow", rng, lambda c, k: c.orders.fund_escrow(order.id, idempotency_key=k))
        order = await self.wait_order(rng, order.id)
        if order.status != "IN_PROGRESS":
            raise Refused("order.fund_escrow", order.status)
        return order

    async def wait_order(self, rng: random.Random, order_id: str, status: str | None = None) -> Order:
        return await self.pool.read(rng, lambda c: c.orders.wait(order_id, status, timeout=WAIT_SECONDS))

    async def order_release(self, rng: random.Random) -> None:
        order = await self.funded_order(rng, *self.two_users(rng))
        await self.pool.call("order.release", rng, lambda c, k: c.orders.release(order.id, idempotency_key=k))
        await self.wait_order(rng, order.id, "CLOSED")

    async def order_refund(self, rng: random.Random) -> None:
        order = await self.funded_order(rng, *self.two_users(rng), milestones=rng.choice((0, 0, 2)))
        await self.pool.call(
            "order.refund", rng, lambda c, k: c.orders.refund(order.id, reason="chaos refund", idempotency_key=k)
        )
        await self.wait_order(rng, order.id, "CLOSED")

    async def order_cancel(self, rng: random.Random) -> None:
        buyer, seller = self.two_users(rng)
        amount = money(rng.randint(2, 40) * 100)
        order: Order = await self.pool.call(
            "order.create",
            rng,
            lambda c, k: c.orders.create(
                buyer_id=buyer.id, seller_id=seller.id, amount=amount, title="Chaos cancel", idempotency_key=k
            ),
        )
        self.activity.orders.add(order.id)
        if rng.random() < 0.7:
            await self.pool.call("order.reserve", rng, lambda c, k: c.orders.reserve(order.id, idempotency_key=k))
        await self.pool.call("order.cancel", rng, lambda c, k: c.orders.cancel(order.id, idempotency_key=k))

    async def milestone_order(self, rng: random.Random) -> None:
        order = await self.funded_order(rng, *self.two_users(rng), milestones=rng.randint(2, 3))
        for milestone in order.milestones:
            ref = milestone.milestone_ref
            await self.pool.call(
                "milestone.complete",
                rng,
                lambda c, k, ref=ref: c.orders.milestones.complete(order.id, ref, idempotency_key=k),  # type: ignore[misc]
            )
            if rng.random() < 0.2:
                break  # the buyer never approves this one: the order is settled at the end
            await self.pool.call(
                "milestone.approve",
                rng,
                lambda c, k, ref=ref: c.orders.milestones.approve(order.id, ref, idempotency_key=k),  # type: ignore[misc]
            )
            await self.pool.read(
                rng,
                lambda c, ms=milestone.id: c.orders.milestones.wait(order.id, ms, "RELEASED", timeout=WAIT_SECONDS),  # type: ignore[misc]
            )
        await self.wait_order(rng, order.id)

    async def dispute(self, rng: random.Random) -> None:
        order = await self.funded_order(rng, *self.two_users(rng), milestones=rng.choice((0, 0, 2)))
        opened_by = rng.choice(("BUYER", "SELLER"))
        reason = rng.choice(("NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"))
        dispute: Dispute = await self.pool.call(
            "dispute.open",
            rng,
            lambda c, k: c.orders.open_dispute(order.id, opened_by=opened_by, reason=reason, idempotency_key=k),
        )
        self.activity.disputes[order.id] = dispute.id
        await self.resolve(rng, dispute, rng.choice(DECISIONS))

    async def resolve(self, rng: random.Random, dispute: Dispute, decision: str) -> None:
        if dispute.status == "OPEN":
            await self.pool.call(
                "dispute.assign",
                rng,
                lambda c, k: c.disputes.assign(dispute.id, assigned_to="agent-chaos", idempotency_key=k),
            )
        disputed = cents(dispute.disputed_amount or "0.00")
        release = refund = None
        if decision == "SPLIT":
            if disputed < 2:
                decision = "FULL_REFUND"
            else:
                part = rng.randint(1, disputed - 1)
                release, refund = money(part), money(disputed - part)
        self.activity.decisions[decision] = self.activity.decisions.get(decision, 0) + 1
        await self.pool.call(
            f"dispute.resolve.{decision}",
            rng,
            lambda c, k: c.disputes.resolve(
                dispute.id, decision=decision, release_amount=release, refund_amount=refund, idempotency_key=k
            ),
        )
        await self.pool.read(rng, lambda c: c.disputes.wait(dispute.id, "RESOLVED", timeout=WAIT_SECONDS))
        await self.wait_order(rng, dispute.order_id, "CLOSED")

    async def withdrawal(self, rng: random.Random) -> None:
        member = rng.choice(self.activity.users)
        amount = money(rng.randint(10, 60) * 100)
        if self.provider == "crypto":
            destination_type, destination = "crypto", rng.choice(self.activity.outside_accounts)
        else:
            destination_type, destination = rng.choice(
                (("bank", "ES9121000418450200057731"), ("airtm_balance", member.airtm_email or ""))
            )
        withdrawal = await self.pool.call(
            f"withdrawal.create.{destination_type}",
            rng,
            lambda c, k: c.withdrawals.create(
                user_id=member.id,
                amount=amount,
                destination_type=destination_type,
                destination_ref=destination,
                idempotency_key=k,
            ),
        )
        self.activity.withdrawals.add(withdrawal.id)
        if withdrawal.status == "WITHDRAWAL_CREATED" and self.provider == "airtm":
            if rng.random() < 0.15:
                await self.pool.call(
                    "withdrawal.cancel", rng, lambda c, k: c.withdrawals.cancel(withdrawal.id, idempotency_key=k)
                )
                return
            await self.pool.call(
                "withdrawal.commit", rng, lambda c, k: c.withdrawals.commit(withdrawal.id, idempotency_key=k)
            )
        await self.pool.read(rng, lambda c: c.withdrawals.wait(withdrawal.id, timeout=WAIT_SECONDS))

    # the drain: every flow the run started brought to an end, faults off ---------------

    async def drain(self, rng: random.Random) -> None:
        """Settle what the actors left half-way (an unapproved milestone, an order whose wait
        timed out, an uncommitted payout): each flow ends terminal, or the checks say which did not."""
        await asyncio.gather(
            *(self.settle_order(random.Random(f"{rng.random()}"), o) for o in sorted(self.activity.orders))
        )
        await asyncio.gather(*(self.settle_topup(rng, t) for t in sorted(self.activity.topups)))
        await asyncio.gather(*(self.settle_withdrawal(rng, w) for w in sorted(self.activity.withdrawals)))

    async def settle_order(self, rng: random.Random, order_id: str) -> None:
        steps: dict[str, Callable[[AsyncOfferHub, str], Awaitable[Any]]] = {
            "ORDER_CREATED": lambda c, k: c.orders.cancel(order_id, idempotency_key=k),
            "FUNDS_RESERVED": lambda c, k: c.orders.cancel(order_id, idempotency_key=k),
            "ESCROW_FUNDING": lambda c, k: c.orders.fund_escrow(order_id, idempotency_key=k),
            # a refund is always allowed (a release needs every milestone completed)
            "ESCROW_FUNDED": lambda c, k: c.orders.refund(order_id, reason="chaos drain", idempotency_key=k),
            "IN_PROGRESS": lambda c, k: c.orders.refund(order_id, reason="chaos drain", idempotency_key=k),
        }
        for _ in range(4):
            try:
                order = await self.wait_order(rng, order_id)
            except (TimeoutError, Refused):
                return  # still moving: the checks report it
            if order.status == "CLOSED":
                return
            try:
                if order.status == "DISPUTED":
                    dispute_id = self.activity.disputes.get(order_id) or (order.dispute.id if order.dispute else None)
                    if dispute_id is None:
                        return
                    dispute = await self.pool.read(rng, lambda c, d=dispute_id: c.disputes.retrieve(d))  # type: ignore[misc]
                    if dispute.status != "RESOLVED":
                        await self.resolve(rng, dispute, "FULL_REFUND")
                elif order.status in steps:
                    await self.pool.call(f"drain.order.{order.status}", rng, steps[order.status])
                else:
                    return
            except (Refused, TimeoutError):
                await asyncio.sleep(1)

    async def settle_topup(self, rng: random.Random, topup_id: str) -> None:
        try:
            topup = await self.pool.read(rng, lambda c: c.topups.retrieve(topup_id))
            if topup.status == "TOPUP_AWAITING_USER_CONFIRMATION":
                self.pool.tally.operations["drain.topup.cancel_at_airtm"] += 1
                await self.sandbox.post(f"/_sandbox/airtm/payins/{topup_id}/cancel")
            await self.pool.read(rng, lambda c: c.topups.wait(topup_id, timeout=WAIT_SECONDS))
        except (TimeoutError, Refused):
            return

    async def settle_withdrawal(self, rng: random.Random, withdrawal_id: str) -> None:
        try:
            withdrawal = await self.pool.read(rng, lambda c: c.withdrawals.retrieve(withdrawal_id))
            if withdrawal.status == "WITHDRAWAL_CREATED":
                await self.pool.call(
                    "drain.withdrawal.cancel", rng, lambda c, k: c.withdrawals.cancel(withdrawal_id, idempotency_key=k)
                )
            await self.pool.read(rng, lambda c: c.withdrawals.wait(withdrawal_id, timeout=WAIT_SECONDS))
        except (TimeoutError, Refused):
            return

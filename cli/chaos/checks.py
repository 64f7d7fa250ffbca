"""The end-of-run checks. Each finding is a `Violation` naming the user (or the resource and
its user) it concerns; the run fails on any.

- every flow terminal: orders closed, disputes resolved, top-ups and withdrawals terminal;
- `offerhub ledger check` (domain.md §3.5, run as the command) and a reconciliation run
  (`offerhub reconcile --wait`) clean;
- every ledger key is its business key (domain.md §3.4): a key that is not can apply twice;
- per user, the balance is what the user's resources say: succeeded top-ups − completed
  withdrawals − what left in escrows as buyer + what was released as seller;
- the outside agrees with the books: what the faucet paid into each wallet (or the pay-ins
  confirmed at Airtm) was credited once, each wallet's USDC is its balance, payouts on the
  outside are the completed withdrawals, escrow contracts are empty, the sandbox's own
  invariants hold; money conserved: deposits + top-ups − withdrawals = balances + escrows;
- every outbound event was delivered to every endpoint (one delivery record, received);
- no secret in the API's or workers' logs or in an error body the run received.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from cli.chaos.generator import Activity, money
from cli.chaos.receiver import Receiver

TERMINAL = {
    "orders": "status = 'CLOSED'",
    "disputes": "status = 'RESOLVED'",
    "topups": "status IN ('TOPUP_SUCCEEDED', 'TOPUP_FAILED', 'TOPUP_CANCELED')",
    "withdrawals": "status IN ('WITHDRAWAL_COMPLETED', 'WITHDRAWAL_FAILED', 'WITHDRAWAL_CANCELED')",
}
USER_OF = {
    "orders": "buyer_id",
    "disputes": "(SELECT buyer_id FROM orders o WHERE o.id = t.order_id)",
    "topups": "user_id",
    "withdrawals": "user_id",
}
KEY_SUFFIX = {
    "ORDER_RESERVE": "reserve",
    "ORDER_RESERVE_RELEASE": "cancel_reservation",
    "ESCROW_FUND": "escrow_fund",
    "ESCROW_RELEASE": "release",
    "ESCROW_REFUND": "refund",
    "WITHDRAWAL_HOLD": "hold",
    "WITHDRAWAL_HOLD_RELEASE": "release_hold",
    "WITHDRAWAL_PAYOUT": "payout",
}
STELLAR_SECRET_SEED = re.compile(r"\bS[A-Z2-7]{55}\b")
SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str  # the user (usr_…) or the resource and its user
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.detail}"


@dataclass
class Findings:
    violations: list[Violation] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, check: str, subject: str, detail: str) -> None:
        self.violations.append(Violation(check, subject, detail))


@dataclass
class Checker:
    database_url: str
    env: dict[str, str]
    api_url: str
    sandbox: httpx.AsyncClient
    provider: str
    activity: Activity
    receiver: Receiver
    endpoints: dict[str, str]  # endpoint id -> receiver path
    secrets: list[str]
    logs: Path
    error_bodies: list[str]
    findings: Findings = field(default_factory=Findings)

    async def run(self) -> Findings:
        engine = create_async_engine(self.database_url)
        try:
            await self.wait_settled(engine)
            async with engine.connect() as conn:
                await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                await self.flows_terminal(conn)
                await self.ledger_keys(conn)
                await self.users_balanced(conn)
                if self.provider == "crypto":
                    await self.chain_agrees(conn)
                else:
                    await self.airtm_agrees(conn)
                await self.conserved(conn)
                await self.webhooks_delivered(conn)
                await conn.rollback()
        finally:
            await engine.dispose()
        await asyncio.to_thread(self.ledger_check_command)
        await asyncio.to_thread(self.reconciliation_command)
        await self.sandbox_invariants()
        self.no_secrets()
        return self.findings

    async def wait_settled(self, engine: Any) -> None:
        """Until deposits are credited and outbound deliveries done (bounded): the outbox and the
        deposit monitor work asynchronously after the last flow ends."""
        deadline = time.monotonic() + SETTLE_SECONDS
        expected_in = sum(self.activity.faucet_sent.values()) + sum(self.activity.payins_confirmed.values())
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                credited = await conn.scalar(
                    text("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'DEPOSIT'")
                )
                pending = await conn.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status <> 'SUCCEEDED') "
                        "+ (SELECT count(*) FROM events WHERE relayed_at IS NULL)"
                    )
                )
            if credited >= expected_in and pending == 0:
                return
            await asyncio.sleep(1)

    async def rows(self, conn: AsyncConnection, query: str, **params: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in (await conn.execute(text(query), params)).mappings().all()]

    # flows -------------------------------------------------------------------------------

    async def flows_terminal(self, conn: AsyncConnection) -> None:
        counts: Counter[str] = Counter()
        for table, terminal in TERMINAL.items():
            for row in await self.rows(conn, f"SELECT t.id, t.status, {USER_OF[table]} AS user_id FROM {table} t"):
                counts[f"{table}:{row['status']}"] += 1
                done = await conn.scalar(text(f"SELECT {terminal} FROM {table} WHERE id = :id"), {"id": row["id"]})
                if not done:
                    self.findings.add("flows_terminal", f"{row['user_id']} ({row['id']})", f"left in {row['status']}")
        self.findings.figures["flows"] = dict(sorted(counts.items()))

    # the ledger --------------------------------------------------------------------------

    async def ledger_keys(self, conn: AsyncConnection) -> None:
        entries = await self.rows(
            conn,
            "SELECT l.id, l.idempotency_key, l.entry_type, l.user_id, l.source_type, l.source_id, "
            "t.stellar_operation_id FROM ledger_entries l "
            "LEFT JOIN topups t ON l.source_type = 'topup' AND t.id = l.source_id ORDER BY l.id",
        )
        for entry in entries:
            if entry["entry_type"] == "DEPOSIT":
                expected = (
                    f"deposit:{entry['stellar_operation_id']}"
                    if entry["stellar_operation_id"]
                    else f"topup:{entry['source_id']}:credit"
                )
            else:
                expected = f"{entry['source_type']}:{entry['source_id']}:{KEY_SUFFIX[entry['entry_type']]}"
            if entry["idempotency_key"] != expected:
                self.findings.add(
                    "ledger_keys",
                    entry["user_id"],
                    f"entry {entry['id']} ({entry['entry_type']} of {entry['source_id']}) is keyed "
                    f"{entry['idempotency_key']!r}, not its business key {expected!r}: a retry would apply it again",
                )

    async def users_balanced(self, conn: AsyncConnection) -> None:
        """Per user: available + reserved = top-ups − payouts − funded escrows kept + released to them."""
        rows = await self.rows(
            conn,
            """
            SELECT u.id AS user_id, b.available, b.reserved,
              (SELECT coalesce(sum(amount), 0) FROM topups t
                 WHERE t.user_id = u.id AND t.status = 'TOPUP_SUCCEEDED') AS topped_up,
              (SELECT coalesce(sum(amount), 0) FROM withdrawals w
                 WHERE w.user_id = u.id AND w.status = 'WITHDRAWAL_COMPLETED') AS withdrawn,
              (SELECT coalesce(sum(o.amount - o.refunded_amount), 0) FROM orders o
                 JOIN escrows e ON e.order_id = o.id AND e.discarded_at IS NULL AND e.funded_at IS NOT NULL
                 WHERE o.buyer_id = u.id) AS spent,
              (SELECT coalesce(sum(o.released_amount), 0) FROM orders o WHERE o.seller_id = u.id) AS earned
            FROM users u JOIN balances b ON b.user_id = u.id ORDER BY u.id""",
        )
        for row in rows:
            expected = row["topped_up"] - row["withdrawn"] - row["spent"] + row["earned"]
            held = row["available"] + row["reserved"]
            if held != expected:
                self.findings.add(
                    "user_balanced",
                    row["user_id"],
                    f"holds {money(held)} (available {money(row['available'])}, reserved {money(row['reserved'])}) "
                    f"but the user's resources say {money(expected)}: top-ups {money(row['topped_up'])} "
                    f"− withdrawals {money(row['withdrawn'])} − escrows {money(row['spent'])} "
                    f"+ releases {money(row['earned'])}",
                )

    # the outside agrees with the books ---------------------------------------------------

    async def credited_topups(self, conn: AsyncConnection) -> dict[str, int]:
        """Cents credited per user by succeeded top-ups (crypto deposits or Airtm pay-ins)."""
        query = "SELECT user_id, sum(amount) AS total FROM topups WHERE status = 'TOPUP_SUCCEEDED' GROUP BY user_id"
        return {row["user_id"]: int(row["total"]) for row in await self.rows(conn, query)}

    async def chain_agrees(self, conn: AsyncConnection) -> None:
        credited = await self.credited_topups(conn)
        balances = {
            row["user_id"]: row["available"] + row["reserved"]
            for row in await self.rows(conn, "SELECT user_id, available, reserved FROM balances")
        }
        for member in self.activity.users:
            sent = self.activity.faucet_sent.get(member.id, 0)
            if credited.get(member.id, 0) != sent:
                self.findings.add(
                    "deposits_credited",
                    member.id,
                    f"the faucet paid {money(sent)} into the wallet, {money(credited.get(member.id, 0))} credited",
                )
            assert member.address is not None
            on_chain = await self.usdc_cents(member.address)
            books = balances.get(member.id, 0)
            if on_chain != books:
                self.findings.add(
                    "wallet_on_chain",
                    member.id,
                    f"wallet {member.address} holds {money(on_chain)} USDC, the books {money(books)}",
                )
        outside = sum([await self.usdc_cents(address) for address in self.activity.outside_accounts])
        paid_out = await conn.scalar(
            text("SELECT coalesce(sum(amount), 0) FROM withdrawals WHERE status = 'WITHDRAWAL_COMPLETED'")
        )
        self.findings.figures["withdrawn_on_chain"] = money(outside)
        if outside != paid_out:
            self.findings.add(
                "withdrawals_on_chain",
                "outside accounts",
                f"hold {money(outside)} USDC, completed withdrawals {money(paid_out)}",
            )
        await self.escrows_empty(conn)

    async def escrows_empty(self, conn: AsyncConnection) -> None:
        contracts = {c["contractId"]: c for c in (await self.sandbox.get("/_sandbox/tw/escrows")).json()}
        for row in await self.rows(
            conn,
            "SELECT e.trustless_contract_id AS contract, e.amount - e.released_amount - e.refunded_amount AS held, "
            "o.buyer_id, o.id AS order_id FROM escrows e JOIN orders o ON o.id = e.order_id "
            "WHERE e.discarded_at IS NULL AND e.trustless_contract_id IS NOT NULL",
        ):
            contract = contracts.get(row["contract"])
            balance = round(Decimal(str(contract["balance"])) * 100) if contract else 0
            expected = row["held"] if contract else 0
            if balance != expected:
                self.findings.add(
                    "escrow_on_chain",
                    f"{row['buyer_id']} ({row['order_id']})",
                    f"contract {row['contract']} holds {money(int(balance))}, the books {money(expected)}",
                )

    async def usdc_cents(self, address: str) -> int:
        account = (await self.sandbox.get(f"/_sandbox/accounts/{address}")).json()
        for line in account.get("balances", []):
            if line.get("asset_code") == "USDC":
                return int(Decimal(line["balance"]) * 100)  # floored to cents (domain.md §3.1)
        return 0

    async def airtm_agrees(self, conn: AsyncConnection) -> None:
        topups = await self.credited_topups(conn)
        for member in self.activity.users:
            confirmed = self.activity.payins_confirmed.get(member.id, 0)
            if topups.get(member.id, 0) != confirmed:
                self.findings.add(
                    "topups_credited",
                    member.id,
                    f"{money(confirmed)} confirmed at Airtm, {money(topups.get(member.id, 0))} credited",
                )
        payouts = {p["code"]: p for p in (await self.sandbox.get("/_sandbox/airtm/payouts")).json() if p.get("code")}
        for row in await self.rows(conn, "SELECT id, user_id, status, amount FROM withdrawals ORDER BY id"):
            payout = payouts.get(row["id"])
            paid = payout is not None and payout.get("status") == "COMPLETED"
            if paid != (row["status"] == "WITHDRAWAL_COMPLETED"):
                self.findings.add(
                    "payouts_at_airtm",
                    f"{row['user_id']} ({row['id']})",
                    f"withdrawal {row['status']}, Airtm payout {payout.get('status') if payout else 'absent'}",
                )

    async def conserved(self, conn: AsyncConnection) -> None:
        """deposits + top-ups − withdrawals = balances + escrows (outside figures against the books)."""
        came_in = sum(self.activity.faucet_sent.values()) + sum(self.activity.payins_confirmed.values())
        went_out = await conn.scalar(
            text("SELECT coalesce(sum(amount), 0) FROM withdrawals WHERE status = 'WITHDRAWAL_COMPLETED'")
        )
        held = await conn.scalar(text("SELECT coalesce(sum(available + reserved), 0) FROM balances"))
        escrowed = await conn.scalar(
            text(
                "SELECT coalesce(sum(amount - released_amount - refunded_amount), 0) FROM escrows "
                "WHERE discarded_at IS NULL AND funded_at IS NOT NULL"
            )
        )
        self.findings.figures["money"] = (
            f"in {money(came_in)} − out {money(went_out)} = balances {money(held)} + escrows {money(escrowed)}"
        )
        if came_in - went_out != held + escrowed:
            self.findings.add(
                "money_conserved",
                "all users",
                f"in {money(came_in)} − out {money(went_out)} ≠ balances {money(held)} + escrows {money(escrowed)}",
            )

    # events --------------------------------------------------------------------------------

    async def webhooks_delivered(self, conn: AsyncConnection) -> None:
        redelivered = 0
        for endpoint_id, path in self.endpoints.items():
            received = self.receiver.counts.get(path, Counter())
            events = await self.rows(
                conn,
                "SELECT e.id, e.type, e.user_ids, d.status AS delivery FROM events e "
                "LEFT JOIN webhook_deliveries d ON d.event_id = e.id AND d.endpoint_id = :endpoint "
                "WHERE e.occurred_at >= (SELECT created_at FROM webhook_endpoints WHERE id = :endpoint) ORDER BY e.seq",
                endpoint=endpoint_id,
            )
            for event in events:
                subject = f"{(event['user_ids'] or ['-'])[0]} ({event['id']} {event['type']})"
                if event["delivery"] != "SUCCEEDED" or received[event["id"]] == 0:
                    self.findings.add(
                        "webhooks_delivered",
                        subject,
                        f"endpoint {endpoint_id}: delivery {event['delivery'] or 'never started'}, "
                        f"received {received[event['id']]} time(s)",
                    )
                redelivered += max(received[event["id"]] - 1, 0)
            self.findings.figures[f"events_to_{endpoint_id}"] = len(events)
        # at-least-once on the wire (an attempt whose answer was lost is sent again, same event
        # ID): the receiver deduplicates; one delivery record per (event, endpoint) is the rule
        self.findings.figures["webhooks_received_twice"] = redelivered

    # the commands --------------------------------------------------------------------------

    def ledger_check_command(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "ledger", "check", "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.findings.figures["ledger_check_exit"] = done.returncode
        if done.returncode != 0:
            try:
                report = json.loads(done.stdout)
            except json.JSONDecodeError:
                self.findings.add(
                    "ledger_check", "offerhub ledger check", f"exit {done.returncode}: {done.stderr[-300:]}"
                )
                return
            for check in report["checks"]:
                for row in check["violations"]:
                    subject = str(row.get("user_id") or row.get("id") or row.get("what") or row.get("escrow_id") or "-")
                    self.findings.add("ledger_check", subject, f"{check['name']}: {row}")

    def reconciliation_command(self) -> None:
        env = {**self.env, "OFFERHUB_API_URL": self.api_url}
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "reconcile", "--wait", "--json", "--timeout", "300"],
            env=env,
            capture_output=True,
            text=True,
            timeout=330,
        )
        try:
            run = json.loads(done.stdout)
        except json.JSONDecodeError:
            self.findings.add("reconciliation", "offerhub reconcile", f"exit {done.returncode}: {done.stderr[-300:]}")
            return
        self.findings.figures["reconciliation"] = f"run {run['id']} {run['status']}"
        if run["status"] != "OK":
            if run.get("error"):
                self.findings.add("reconciliation", f"run {run['id']}", str(run["error"]))
            for finding in run["findings"]:
                self.findings.add(
                    "reconciliation",
                    f"{finding['resource_type']} {finding['resource_id']}",
                    f"{finding['check']}: expected {finding['expected']}, actual {finding['actual']}",
                )

    async def sandbox_invariants(self) -> None:
        report = (await self.sandbox.get("/_sandbox/invariants")).json()
        for check in report["checks"]:
            if not check["ok"]:
                self.findings.add("sandbox_invariants", check["name"], str(check.get("detail")))

    # secrets -------------------------------------------------------------------------------

    def no_secrets(self) -> None:
        sources = {path.name: path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log"))}
        sources = {name: body for name, body in sources.items() if name.startswith(("api", "worker"))}
        sources["error bodies"] = "\n".join(self.error_bodies)
        for name, body in sources.items():
            for secret in self.secrets:
                if secret and secret in body:
                    self.findings.add("no_secrets", name, f"contains a secret ({secret[:6]}…)")
            seed = STELLAR_SECRET_SEED.search(body)
            if seed:
                self.findings.add("no_secrets", name, f"contains a Stellar secret seed ({seed.group(0)[:4]}…)")
            if "Traceback" in body and name == "error bodies":
                self.findings.add("no_secrets", name, "an error body carries a stack trace")

"""The ledger invariants of domain.md §3.5 (1-7), checked in one REPEATABLE READ snapshot.

Used by `offerhub ledger check`, by reconciliation, and by every test scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

R_ORD = "('FUNDS_RESERVED', 'ESCROW_CREATING', 'ESCROW_FUNDING')"
R_WD = "('WITHDRAWAL_CREATED', 'WITHDRAWAL_COMMITTED', 'WITHDRAWAL_PENDING', 'WITHDRAWAL_PENDING_USER_ACTION')"

# Each query returns the rows that violate its invariant (no rows: the invariant holds).
CHECKS: dict[str, str] = {
    "1_conservation": f"""
        WITH t AS (
          SELECT
            (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'DEPOSIT') AS in_,
            (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'WITHDRAWAL_PAYOUT') AS out_,
            (SELECT coalesce(sum(CASE WHEN entry_type = 'ESCROW_FUND' THEN amount ELSE -amount END), 0)
               FROM ledger_entries WHERE entry_type IN ('ESCROW_FUND', 'ESCROW_RELEASE', 'ESCROW_REFUND')) AS esc,
            (SELECT coalesce(sum(available), 0) FROM balances) AS a,
            (SELECT coalesce(sum(amount), 0) FROM orders WHERE status IN {R_ORD}) AS r_ord,
            (SELECT coalesce(sum(amount), 0) FROM withdrawals WHERE status IN {R_WD}) AS r_wd,
            (SELECT coalesce(sum(reserved), 0) FROM balances) AS r)
        SELECT * FROM t WHERE in_ <> a + r_ord + esc + r_wd + out_ OR r <> r_ord + r_wd""",
    "2_double_entry": """
        SELECT escrow_id, sum(CASE WHEN entry_type = 'ESCROW_FUND' THEN amount ELSE -amount END) AS held
        FROM ledger_entries WHERE entry_type IN ('ESCROW_FUND', 'ESCROW_RELEASE', 'ESCROW_REFUND')
        GROUP BY escrow_id HAVING sum(CASE WHEN entry_type = 'ESCROW_FUND' THEN amount ELSE -amount END) < 0""",
    "3_balances_are_the_ledger": """
        WITH sums AS (
          SELECT user_id, sum(delta_available) AS a, sum(delta_reserved) AS r FROM ledger_entries GROUP BY user_id),
        latest AS (
          SELECT DISTINCT ON (user_id) user_id, available_after, reserved_after
          FROM ledger_entries ORDER BY user_id, id DESC)
        SELECT b.user_id, b.available, b.reserved, s.a, s.r, l.available_after, l.reserved_after
        FROM balances b LEFT JOIN sums s USING (user_id) LEFT JOIN latest l USING (user_id)
        WHERE b.available <> coalesce(s.a, 0) OR b.reserved <> coalesce(s.r, 0)
           OR b.available < 0 OR b.reserved < 0
           OR (l.user_id IS NOT NULL AND (b.available <> l.available_after OR b.reserved <> l.reserved_after))""",
    "4_reserved_is_explained": f"""
        WITH expected AS (
          SELECT u.id AS user_id,
            (SELECT coalesce(sum(amount), 0) FROM orders o WHERE o.buyer_id = u.id AND o.status IN {R_ORD})
          + (SELECT coalesce(sum(amount), 0) FROM withdrawals w WHERE w.user_id = u.id AND w.status IN {R_WD})
            AS reserved
          FROM users u)
        SELECT b.user_id, b.reserved, e.reserved AS expected
        FROM balances b JOIN expected e USING (user_id) WHERE b.reserved <> e.reserved""",
    "5_resources_agree": """
        SELECT 'IN' AS what,
               (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'DEPOSIT') AS ledger,
               (SELECT coalesce(sum(amount), 0) FROM topups WHERE status = 'TOPUP_SUCCEEDED') AS resources
        WHERE (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'DEPOSIT')
           <> (SELECT coalesce(sum(amount), 0) FROM topups WHERE status = 'TOPUP_SUCCEEDED')
        UNION ALL
        SELECT 'OUT', (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'WITHDRAWAL_PAYOUT'),
               (SELECT coalesce(sum(amount), 0) FROM withdrawals WHERE status = 'WITHDRAWAL_COMPLETED')
        WHERE (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'WITHDRAWAL_PAYOUT')
           <> (SELECT coalesce(sum(amount), 0) FROM withdrawals WHERE status = 'WITHDRAWAL_COMPLETED')
        UNION ALL
        SELECT 'ESC', (SELECT coalesce(sum(CASE WHEN entry_type = 'ESCROW_FUND' THEN amount ELSE -amount END), 0)
                         FROM ledger_entries WHERE entry_type IN ('ESCROW_FUND', 'ESCROW_RELEASE', 'ESCROW_REFUND')),
               (SELECT coalesce(sum(amount - released_amount - refunded_amount), 0) FROM escrows
                 WHERE discarded_at IS NULL AND funded_at IS NOT NULL)
        WHERE (SELECT coalesce(sum(CASE WHEN entry_type = 'ESCROW_FUND' THEN amount ELSE -amount END), 0)
                 FROM ledger_entries WHERE entry_type IN ('ESCROW_FUND', 'ESCROW_RELEASE', 'ESCROW_REFUND'))
           <> (SELECT coalesce(sum(amount - released_amount - refunded_amount), 0) FROM escrows
                 WHERE discarded_at IS NULL AND funded_at IS NOT NULL)
        UNION ALL
        SELECT 'topup ' || t.id, count(l.id), CASE WHEN t.status = 'TOPUP_SUCCEEDED' THEN 1 ELSE 0 END
        FROM topups t LEFT JOIN ledger_entries l ON l.source_type = 'topup' AND l.source_id = t.id
          AND l.entry_type = 'DEPOSIT'
        GROUP BY t.id, t.status HAVING count(l.id) <> CASE WHEN t.status = 'TOPUP_SUCCEEDED' THEN 1 ELSE 0 END
        UNION ALL
        SELECT 'withdrawal ' || w.id,
               count(*) FILTER (WHERE l.entry_type = 'WITHDRAWAL_HOLD') * 100
             + count(*) FILTER (WHERE l.entry_type = 'WITHDRAWAL_PAYOUT') * 10
             + count(*) FILTER (WHERE l.entry_type = 'WITHDRAWAL_HOLD_RELEASE'),
               100 + CASE w.status WHEN 'WITHDRAWAL_COMPLETED' THEN 10
                                   WHEN 'WITHDRAWAL_FAILED' THEN 1 WHEN 'WITHDRAWAL_CANCELED' THEN 1 ELSE 0 END
        FROM withdrawals w LEFT JOIN ledger_entries l ON l.source_type = 'withdrawal' AND l.source_id = w.id
        GROUP BY w.id, w.status
        HAVING count(*) FILTER (WHERE l.entry_type = 'WITHDRAWAL_HOLD') * 100
             + count(*) FILTER (WHERE l.entry_type = 'WITHDRAWAL_PAYOUT') * 10
             + count(*) FILTER (WHERE l.entry_type = 'WITHDRAWAL_HOLD_RELEASE')
            <> 100 + CASE w.status WHEN 'WITHDRAWAL_COMPLETED' THEN 10
                                   WHEN 'WITHDRAWAL_FAILED' THEN 1 WHEN 'WITHDRAWAL_CANCELED' THEN 1 ELSE 0 END""",
    "6_escrows": """
        WITH paid AS (
          SELECT escrow_id,
                 coalesce(sum(amount) FILTER (WHERE entry_type = 'ESCROW_RELEASE'), 0) AS released,
                 coalesce(sum(amount) FILTER (WHERE entry_type = 'ESCROW_REFUND'), 0) AS refunded
          FROM ledger_entries WHERE escrow_id IS NOT NULL GROUP BY escrow_id)
        SELECT e.id, e.amount, e.released_amount, e.refunded_amount, o.amount AS order_amount,
               o.released_amount AS order_released, o.refunded_amount AS order_refunded
        FROM escrows e JOIN orders o ON o.id = e.order_id LEFT JOIN paid p ON p.escrow_id = e.id
        WHERE e.discarded_at IS NULL AND (
              e.released_amount + e.refunded_amount > e.amount OR e.amount <> o.amount
           OR (e.status IN ('RELEASED', 'REFUNDED') AND e.released_amount + e.refunded_amount <> e.amount)
           OR e.released_amount <> coalesce(p.released, 0) OR e.refunded_amount <> coalesce(p.refunded, 0)
           OR e.released_amount <> o.released_amount OR e.refunded_amount <> o.refunded_amount)""",
    "7_orders": """
        SELECT o.id, o.status, o.close_reason
        FROM orders o
        WHERE (o.status = 'CLOSED' AND o.close_reason = 'CANCELED' AND (
                 EXISTS (SELECT 1 FROM ledger_entries l WHERE l.order_id = o.id AND l.entry_type = 'ESCROW_FUND')
              OR (EXISTS (SELECT 1 FROM ledger_entries l WHERE l.order_id = o.id AND l.entry_type = 'ORDER_RESERVE'))
                 <> (EXISTS (SELECT 1 FROM ledger_entries l WHERE l.order_id = o.id
                             AND l.entry_type = 'ORDER_RESERVE_RELEASE'))))
           OR (EXISTS (SELECT 1 FROM milestones m WHERE m.order_id = o.id)
               AND o.released_amount <> (SELECT coalesce(sum(m.amount), 0) FROM milestones m
                                         WHERE m.order_id = o.id AND m.status = 'RELEASED')
                   + coalesce((SELECT d.release_amount FROM disputes d
                               WHERE d.order_id = o.id AND d.status = 'RESOLVED'), 0))""",
}


@dataclass
class Check:
    name: str
    violations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class LedgerReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def summary(self) -> str:
        return "; ".join(f"{c.name}: {'ok' if c.ok else c.violations}" for c in self.checks)


async def check_ledger(engine: AsyncEngine) -> LedgerReport:
    async with engine.connect() as conn:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        report = await run_checks(conn)
        await conn.rollback()
    return report


async def run_checks(conn: AsyncConnection) -> LedgerReport:
    checks = []
    for name, query in CHECKS.items():
        rows = (await conn.execute(text(query))).mappings().all()
        checks.append(Check(name, [dict(row) for row in rows]))
    return LedgerReport(checks)

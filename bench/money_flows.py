"""Crypto withdrawals and Airtm top-ups per second vs no-op baselines of the same shape, same run.

A crypto withdrawal is what POST /withdrawals starts (commit at creation): one `created`
Update that checks the destination on Stellar, records the hold, commits, pays with one USDC
payment from the user's wallet (signed and confirmed on the sandbox) and records the payout.
An Airtm top-up is the `created` Update (record, create the pay-in at Airtm, record it),
then the payer confirms on the sandbox's Airtm, whose `payin.confirmed` webhook reaches the
airtm-mode API, which Signals the workflow; the workflow reads the pay-in and credits it.
Both are driven through the Temporal client as the API drives them (32 users round robin);
an item ends when the withdrawal answers WITHDRAWAL_COMPLETED / the top-up workflow ends
credited.

The baselines are ShapeBaselineWorkflow (bench/baseline.py) with the same Updates, Signals
and local/regular activities in the same order, doing nothing; the top-up baseline's Signal
is sent by the bench where the product's comes from a webhook. Product and baseline
alternate at each concurrency (BENCH_CONCURRENCY, default 1,8,32), each point the median of
BENCH_REPEATS runs (default 3). Loopback only; bounded; stops by itself. The figures are
saved to bench/results/money_flows.json.

Run: `python bench/money_flows.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvloop
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench import cpu
from bench.baseline import ShapeBaselineWorkflow, noop
from bench.lifecycle import CONCURRENCY, REPEATS, case, cpu_per_item, history_shape, rate, shaped
from bench.results_file import save
from bench.stacks import BENCH_STACK, deposits_credited
from bench.starts import created_with_start
from models.ids import IdPrefix, new_id
from models.orders_io import Caller
from models.topups_io import TopUpCreated, TopUpOutcome, TopUpStart, topup_start_options
from models.withdrawals_io import WithdrawalCreated, WithdrawalInput, WithdrawalOutcome, withdrawal_start_options
from models.workflow_io import TopUpResult

USERS = 32
DESTINATIONS = 4  # external Stellar accounts the withdrawals pay to
WITHDRAWAL = 1_000  # cents: the smallest withdrawal allowed
TOPUP = 100  # cents: the smallest top-up allowed
CALLER = Caller(actor_type="system", actor_id="bench")
# the shapes of the product's workflows (workflows/withdrawal.py, workflows/topup.py), step by step
WITHDRAWAL_SHAPE = ["update:RLLRL"]  # check destination; create; commit; pay; apply
TOPUP_SHAPE = ["update:LRL", "signal:RL"]  # create, start pay-in, apply; read pay-in, apply


async def withdrawal(client: Client, queue: str, user_id: str, destination: str) -> str:
    wd = WithdrawalInput(
        id=new_id(IdPrefix.WITHDRAWAL),
        user_id=user_id,
        amount=WITHDRAWAL,
        destination_type="crypto",
        destination_ref=destination,
        commit=True,
    )
    outcome = await created_with_start(
        client,
        "WithdrawalWorkflow",
        wd,
        workflow_id=wd.id,
        queue=queue,
        options=withdrawal_start_options(wd),
        created=WithdrawalCreated(caller=CALLER),
        result_type=WithdrawalOutcome,
    )
    assert outcome.status == "WITHDRAWAL_COMPLETED", outcome
    return wd.id


async def topup(client: Client, queue: str, control: httpx.AsyncClient, user_id: str, email: str) -> str:
    topup = TopUpStart(
        topup_id=new_id(IdPrefix.TOPUP),
        provider="airtm",
        user_id=user_id,
        amount=TOPUP,
        return_url="https://market.example/wallet/ok",
        cancel_url="https://market.example/wallet/cancel",
    )
    outcome = await created_with_start(
        client,
        "TopUpWorkflow",
        topup,
        workflow_id=topup.topup_id,
        queue=queue,
        options=topup_start_options(topup),
        created=TopUpCreated(caller=CALLER),
        result_type=TopUpOutcome,
    )
    assert outcome.status == "TOPUP_AWAITING_USER_CONFIRMATION", outcome
    # the payer confirms at Airtm; its webhook reaches the airtm-mode API, which Signals the workflow
    confirmed = await control.post(f"/airtm/payins/{topup.topup_id}/confirm", json={"email": email})
    assert confirmed.status_code == 200, confirmed.text
    result = await client.get_workflow_handle(topup.topup_id, result_type=TopUpResult).result()
    assert result.credited, result
    return topup.topup_id


async def compare(
    name: str,
    product: Callable[[], Awaitable[str]],
    base: Callable[[], Awaitable[str]],
    cpu_used: dict[str, dict[str, float]],
) -> list[dict[str, Any]]:
    """Product and baseline alternating, at each concurrency, medians of the repeats."""
    cases = []
    print(f"\n{name}\n{'concurrency':>11} {'product/s':>10} {'baseline/s':>11} {'ratio':>6}")
    for concurrency in CONCURRENCY:
        real: list[float] = []
        baseline: list[float] = []
        for _ in range(REPEATS):
            real.append(await rate(product, concurrency, count(concurrency), cpu_used.setdefault("product", {})))
            baseline.append(await rate(base, concurrency, count(concurrency), cpu_used.setdefault("baseline", {})))
        point = case(name, concurrency, real, baseline)
        figures = f"{point['product_per_s']:>10.2f} {point['baseline_per_s']:>11.2f} {point['ratio']:>6.2f}"
        print(f"{concurrency:>11} {figures}", flush=True)
        cases.append(point)
    return cases


def count(concurrency: int) -> int:
    return 2 * concurrency + 8  # as bench/lifecycle.py


async def main() -> dict[str, Any]:
    from tests.api.withdrawals_support import external_account
    from tests.support import create_key, crypto_user, start_stack

    items = REPEATS * sum(count(c) for c in CONCURRENCY) + 1  # + the one whose history is read
    each = (items // USERS + 2) * WITHDRAWAL // 100  # dollars per crypto user
    stack = await asyncio.to_thread(start_stack, BENCH_STACK)
    cpu.track(str(stack.root))  # its PostgreSQL daemon left our process tree
    try:
        airtm = await asyncio.to_thread(stack.start_airtm)
        client = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter)
        sandbox = f"http://127.0.0.1:{stack.sandbox_port}/_sandbox"
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
            httpx.AsyncClient(base_url=airtm.api_url, timeout=60) as airtm_api,
            httpx.AsyncClient(base_url=sandbox, timeout=60) as control,
        ):
            key = await create_key(api, stack.master_key, ["read", "write"], name="bench")
            headers = {"Authorization": f"Bearer {key['key']}"}
            # crypto users with funded wallets; destinations outside the product
            payers = [await crypto_user(api, headers) for _ in range(USERS)]
            for payer in payers:
                await control.post(
                    "/faucet/usdc", json={"address": payer["wallet"]["public_key"], "amount": f"{each}.00"}
                )
            destinations = [await external_account(stack) for _ in range(DESTINATIONS)]
            await deposits_credited(api, headers, payers, f"{each}.00")
            # Airtm users, linked, with the money to pay every top-up
            linked = []
            for _ in range(USERS):
                email = f"bench-{secrets.token_hex(5)}@example.com"
                made = await control.post("/airtm/users", json={"email": email, "balance": "100000.00"})
                assert made.status_code == 201, made.text
                user = await airtm_api.post(
                    "/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers=headers
                )
                assert user.status_code == 201, user.text
                link = await airtm_api.post(
                    f"/users/{user.json()['id']}/airtm/link", json={"email": email}, headers=headers
                )
                assert link.status_code == 200, link.text
                linked.append((user.json()["id"], email))

            withdrawers = itertools.cycle([(p["id"], d) for p, d in zip(payers, itertools.cycle(destinations))])
            payers_in = itertools.cycle(linked)
            queue = f"bench-shape-{uuid.uuid4().hex[:6]}"
            cpu_used: dict[str, dict[str, dict[str, float]]] = {"withdrawal": {}, "topup": {}}

            def one_withdrawal() -> Awaitable[str]:
                return withdrawal(client, stack.task_queue, *next(withdrawers))

            def one_topup() -> Awaitable[str]:
                return topup(client, airtm.task_queue, control, *next(payers_in))

            async with Worker(client, task_queue=queue, workflows=[ShapeBaselineWorkflow], activities=[noop]):
                cases = await compare(
                    "crypto withdrawal",
                    one_withdrawal,
                    lambda: shaped(client, queue, WITHDRAWAL_SHAPE),
                    cpu_used["withdrawal"],
                )
                cases += await compare(
                    "airtm top-up", one_topup, lambda: shaped(client, queue, TOPUP_SHAPE), cpu_used["topup"]
                )
                histories = {
                    "crypto withdrawal": {
                        "product": await history_shape(client, await one_withdrawal()),
                        "baseline": await history_shape(client, await shaped(client, queue, WITHDRAWAL_SHAPE)),
                    },
                    "airtm top-up": {
                        "product": await history_shape(client, await one_topup()),
                        "baseline": await history_shape(client, await shaped(client, queue, TOPUP_SHAPE)),
                    },
                }
        total = REPEATS * sum(count(c) for c in CONCURRENCY)
        cpu_ms = {
            flow: {side: cpu_per_item(used, total) for side, used in sides.items()} for flow, sides in cpu_used.items()
        }
        print(f"\nCPU ms per item, all runs ({total} of each; the baseline worker runs in the bench process):")
        for flow, sides in cpu_ms.items():
            for side, per_role in sides.items():
                print(f"  {flow:<10} {side:<8} " + " ".join(f"{role}={ms:.1f}" for role, ms in per_role.items()))
        print("\nhistory events per item:")
        for flow, shapes in histories.items():
            print(f"  {flow}: product {shapes['product']['events']}, baseline {shapes['baseline']['events']}")
        results: dict[str, Any] = {
            "cases": cases,
            "repeats": REPEATS,
            "items": {str(c): count(c) for c in CONCURRENCY},
            "shapes": {"crypto withdrawal": WITHDRAWAL_SHAPE, "airtm top-up": TOPUP_SHAPE},
            "cpu_ms_per_item": cpu_ms,
            "history_events_per_item": histories,
        }
    finally:
        await asyncio.to_thread(stack.stop)
    save("money_flows", results)
    return results


if __name__ == "__main__":
    uvloop.run(main())  # the event loop the worker runs on, so the baseline's worker gets it too

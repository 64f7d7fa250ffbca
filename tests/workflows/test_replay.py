"""Workflow histories replay under the full workflow sandbox (architecture.md, Temporal conventions).

Two sources: the histories in `tests/histories/` recorded by an earlier version of the code
(a change that would break a running workflow fails here: it needs `workflow.patched`), and
every history this test session recorded. The worker passes our `workflows` package through
the sandbox (imported once, not per run); replaying with the default restrictions keeps the
sandbox's checks on clocks, randomness and I/O in workflow code.

Re-record `tests/histories/` with `OFFERHUB_RECORD_HISTORIES=1 pytest tests/workflows/test_replay.py`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from api.payload_codec import data_converter, decode_messages, payload_codec
from tests.api.orders_support import act, funded_order, funded_user
from tests.api.test_disputes import disputed_order
from tests.api.withdrawals_support import external_account
from tests.support import Stack, assert_eventually, stack_settings
from worker import WORKFLOWS

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
ESCROW_STEPS = ["reserve", "escrow", "escrow/fund"]
# the product's workflows only: other tests start workflows of their own (test_database_refusals)
PRODUCT_TYPES = ", ".join(f"'{workflow.__name__}'" for workflow in WORKFLOWS)
COMPLETED = f"ExecutionStatus = 'Completed' AND WorkflowType IN ({PRODUCT_TYPES})"
MAX_HISTORIES = 300  # bounds the test when it runs after the whole suite


async def drive_scenarios(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], airtm_client: httpx.AsyncClient
) -> dict[str, str]:
    """A released order, a two-milestone order, a split dispute, a crypto withdrawal paid out,
    an Airtm top-up credited: scenario -> workflow ID."""
    buyer, _, single = await funded_order(client, stack, headers, "12.00", ESCROW_STEPS)
    await act(client, headers, single["id"], "resolution/release", {"reason": "delivered"})
    _, _, staged = await funded_order(
        client,
        stack,
        headers,
        "20.00",
        ESCROW_STEPS,
        milestones=[
            {"milestone_ref": "draft", "title": "Draft", "amount": "5.00"},
            {"milestone_ref": "final", "title": "Final", "amount": "15.00"},
        ],
    )
    for ref in ("draft", "final"):
        await act(client, headers, staged["id"], f"milestones/{ref}/complete", {"note": "done"})
        await act(client, headers, staged["id"], f"milestones/{ref}/approve")
    _, _, disputed, dispute = await disputed_order(client, stack, headers, "30.00")
    for action, body in (
        ("assign", {"assigned_to": "agent-01"}),
        ("resolve", {"decision": "SPLIT", "release_amount": "10.00", "refund_amount": "20.00"}),
    ):
        decided = await client.post(f"/disputes/{dispute['id']}/{action}", json=body, headers=headers)
        assert decided.status_code == 200, decided.text
    withdrawal = await paid_withdrawal(client, stack, headers)
    airtm_topup = await credited_airtm_topup(airtm_client, stack, headers)
    milestones = (await client.get(f"/orders/{staged['id']}/milestones", headers=headers)).json()["data"]
    topups = (await client.get("/topups", params={"user_id": buyer["id"]}, headers=headers)).json()["data"]
    return {
        "order-single-release": single["id"],
        "order-milestones": staged["id"],
        "milestone-draft": milestones[0]["id"],
        "order-disputed": disputed["id"],
        "dispute-split": dispute["id"],
        "wallet-setup": buyer["wallet"]["id"],
        "topup-crypto": topups[0]["id"],
        "withdrawal-crypto": withdrawal,
        "topup-airtm": airtm_topup,
    }


async def paid_withdrawal(client: httpx.AsyncClient, stack: Stack, headers: dict[str, str]) -> str:
    """A crypto withdrawal committed at creation and completed on chain."""
    user = await funded_user(client, stack, headers, "15.00")
    destination = await external_account(stack)
    body = {"user_id": user["id"], "amount": "10.00", "destination_type": "crypto", "destination_ref": destination}
    created = await client.post("/withdrawals", json=body, headers=headers)
    assert created.status_code == 201 and created.json()["status"] == "WITHDRAWAL_COMPLETED", created.text
    withdrawal_id: str = created.json()["id"]
    return withdrawal_id


async def credited_airtm_topup(airtm_client: httpx.AsyncClient, stack: Stack, headers: dict[str, str]) -> str:
    """An Airtm top-up: created with its pay-in, confirmed at the sandbox, credited by refresh."""
    email = f"replay-{secrets.token_hex(5)}@example.com"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as sandbox:
        made = await sandbox.post("/airtm/users", json={"email": email, "balance": "100.00"})
        assert made.status_code == 201, made.text
        user = await airtm_client.post(
            "/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers=headers
        )
        assert user.status_code == 201, user.text
        user_id = user.json()["id"]
        linked = await airtm_client.post(f"/users/{user_id}/airtm/link", json={"email": email}, headers=headers)
        assert linked.status_code == 200, linked.text
        created = await airtm_client.post("/topups", json={"user_id": user_id, "amount": "8.00"}, headers=headers)
        assert created.status_code == 201, created.text
        topup_id: str = created.json()["id"]
        confirmed = await sandbox.post(f"/airtm/payins/{topup_id}/confirm", json={"email": email})
        assert confirmed.status_code == 200, confirmed.text
    refreshed = await airtm_client.post(f"/topups/{topup_id}/refresh", headers=headers)
    assert refreshed.status_code == 200 and refreshed.json()["status"] == "TOPUP_SUCCEEDED", refreshed.text
    return topup_id


async def test_this_sessions_histories_replay_in_the_default_sandbox(
    client: httpx.AsyncClient, airtm_client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    scenarios = await drive_scenarios(client, stack, full_key, airtm_client)
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))
    statuses: dict[str, Any] = {}

    async def all_completed() -> bool:
        for workflow_id in scenarios.values():
            statuses[workflow_id] = (await temporal.get_workflow_handle(workflow_id).describe()).status
        return all(status == WorkflowExecutionStatus.COMPLETED for status in statuses.values())

    try:
        await assert_eventually(all_completed, timeout=30)
    except AssertionError:
        raise AssertionError(f"the scenario workflows did not complete: {statuses}") from None
    if os.environ.get("OFFERHUB_RECORD_HISTORIES"):
        await _record(temporal, scenarios, stack)

    # the default sandbox, and the session's converter: its histories are encrypted by the payload codec
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(stack_settings(stack)))
    histories = temporal.list_workflows(COMPLETED, limit=MAX_HISTORIES).map_histories()
    results = await replayer.replay_workflows(histories, raise_on_replay_failure=False)
    assert {run_id: str(failure) for run_id, failure in results.replay_failures.items()} == {}


async def test_recorded_histories_replay_against_the_current_code() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    recorded = [json.loads(path.read_text()) for path in files]
    assert {
        "OrderWorkflow",
        "MilestoneWorkflow",
        "DisputeWorkflow",
        "TopUpWorkflow",
        "WithdrawalWorkflow",
        "WalletSetupWorkflow",
    } <= {r["workflow_type"] for r in recorded}

    async def histories() -> Any:
        for entry in recorded:
            yield WorkflowHistory.from_json(entry["workflow_id"], entry["history"])

    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    assert {run_id: str(failure) for run_id, failure in results.replay_failures.items()} == {}


async def _record(temporal: Client, scenarios: dict[str, str], stack: Stack) -> None:
    """Recorded in clear (payloads decoded), so they replay with or without a payload key."""
    codec = payload_codec(stack_settings(stack))
    HISTORIES.mkdir(exist_ok=True)
    for old in HISTORIES.glob("*.json"):
        old.unlink()
    for scenario, workflow_id in scenarios.items():
        handle = temporal.get_workflow_handle(workflow_id)
        description = await handle.describe()
        history = await handle.fetch_history()
        if codec is not None:
            await decode_messages(codec, history.events)
        entry = {
            "workflow_id": workflow_id,
            "workflow_type": description.workflow_type,
            "history": json.loads(history.to_json()),
        }
        (HISTORIES / f"{scenario}.json").write_text(json.dumps(entry, indent=1) + "\n")

"""The secrets scan of issue #14's acceptance, on the real stack (payload codec on).

A representative scenario runs through the API: an API key (and one revoked), a user-bound
token, a webhook endpoint receiving signed events, a buyer with an e-mail funded through the
sandbox faucet, an order reserved, escrowed and funded, then disputed, commented, assigned to
an agent's e-mail and split, a crypto withdrawal. It goes through an API at DEBUG level, with a
DEBUG worker beside the session's. Then every place the product writes text is searched for
every secret it handled (master key, wallet and payload encryption keys, the token signing
key, provider credentials, API keys, the token, the webhook secret, every wallet's seed):

- Temporal histories of every workflow run, as `offerhub history export` writes them
  (decoded) and as Temporal stores them (fetched by a client without the codec, and the dev
  server's SQLite file byte for byte): no secret; in the stored form, no e-mail or dispute
  comment in clear either;
- every log file of the stack (API, worker, sandbox, PostgreSQL, Redis, Temporal);
- every row of every table of the public schema, as text (hashes and sealed values are fine);
- the API's answers: every error body of the scenario, `/me`, `/config`, `/health`, `/metrics`.

A failure lists which secret was found where, never the secret itself.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from stellar_sdk import Keypair
from temporalio.client import Client, WorkflowHistory

from api.payload_codec import payloads_in
from models.webhook_delivery import verify
from providers.stellar.keyvault import KeyVault, wallet_context
from tests.api.orders_support import act, funded_user, order_in
from tests.api.test_idempotency import pg_dsn
from tests.api.test_payload_codec import offerhub
from tests.api.test_users import balance_of, faucet
from tests.api.webhook_receiver import Receiver, receiver
from tests.api.withdrawals_support import external_account, withdraw
from tests.support import Stack, assert_eventually, bearer, crypto_user, stack_settings

HISTORY_EXPORT = "history export"
STORED_HISTORY = "stored history"
LOGS = "logs"
DATABASE = "database"
ANSWERS = "API answers"
EVERYWHERE = frozenset({HISTORY_EXPORT, STORED_HISTORY, LOGS, DATABASE, ANSWERS})
MIN_FORM = 12  # shorter fragments would match by chance

pytestmark = pytest.mark.timeout(300)  # the scenario, then one `offerhub history export` per run


@dataclass(frozen=True)
class Secret:
    """A value that must not be found, in each of the text forms it could be written in."""

    name: str
    forms: tuple[str, ...] = field(repr=False)  # a failing test's report shows the names only
    forbidden_in: frozenset[str] = EVERYWHERE
    raw: tuple[bytes, ...] = field(default=(), repr=False)  # the key's own bytes, searched in binary files

    def in_bytes(self, data: bytes) -> bool:
        return any(form.encode() in data for form in self.forms) or any(raw in data for raw in self.raw)


def text_secret(name: str, value: str, prefix: str = "", forbidden_in: frozenset[str] = EVERYWHERE) -> Secret:
    """The value, and what follows its public prefix (`ohk_test_`, `whsec_`): that part is the secret."""
    body = value.removeprefix(prefix) if prefix else value
    forms = {value} | ({body} if len(body) >= MIN_FORM else set())
    return Secret(name, tuple(sorted(forms)), forbidden_in)


def bytes_forms(raw: bytes) -> set[str]:
    """Hex (also how PostgreSQL prints bytea) and base64 of a raw key."""
    return {
        raw.hex(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def raw_secret(name: str, raw: bytes, *text_forms: str) -> Secret:
    return Secret(name, tuple(sorted({*text_forms, *bytes_forms(raw)})), raw=(raw,))


def hex_key_secret(name: str, key_hex: str) -> Secret:
    return raw_secret(name, bytes.fromhex(key_hex), key_hex, key_hex.lower())


def seed_secret(name: str, raw_seed: bytes) -> Secret:
    return raw_secret(name, raw_seed, Keypair.from_raw_ed25519_seed(raw_seed).secret)


@dataclass
class Scenario:
    secrets: list[Secret] = field(default_factory=list)
    workflows: list[tuple[str, str]] = field(default_factory=list)  # (workflow id, run id)
    answers: dict[str, str] = field(default_factory=dict, repr=False)  # "<method> <path> → <status> #n": body
    decoded_witnesses: list[str] = field(default_factory=list)  # names of the values a decoded export shows
    ids: dict[str, str] = field(default_factory=dict)  # what the scenario made (they show in logs and rows)
    started: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(seconds=1))


def found(secrets_: Iterable[Secret], place: str, texts: dict[str, str] | dict[str, bytes]) -> list[str]:
    """`<secret> in <place>: <location>` for each secret found (the secret itself is not printed)."""
    hits: list[str] = []
    for secret in secrets_:
        if place not in secret.forbidden_in:
            continue
        for location, text in texts.items():
            if secret.in_bytes(text) if isinstance(text, bytes) else any(form in text for form in secret.forms):
                hits.append(f"{secret.name} in {place}: {location}")
    return hits


def history_text(history: WorkflowHistory) -> str:
    """A history's JSON plus every payload's bytes, as text and as hex (a raw key would show there)."""
    payloads = [p.data for event in history.events for p in payloads_in(event)]
    return "\n".join([history.to_json(), *(d.decode(errors="replace") for d in payloads), *(d.hex() for d in payloads)])


@pytest.fixture(scope="module")
def debug_api(stack: Stack) -> Iterator[str]:
    """An API at LOG_LEVEL=DEBUG (the scenario goes through it) and a second worker at DEBUG on
    the session's queue (it takes a share of the tasks): what an operator debugging would log."""
    debug = {"LOG_LEVEL": "DEBUG"}
    url = stack.spawn_api("api-debug", debug)
    worker = stack.spawn("worker-debug", ["worker"], env={**stack.env, **debug})
    asyncio.run(
        assert_eventually(
            lambda: asyncio.sleep(0, "worker polling task queue" in stack.log_text("worker-debug")),
            timeout=30,
            message="worker-debug never started polling",
        )
    )
    yield url
    for process in stack.processes[:]:
        if process.name in ("api-debug", "worker-debug"):
            process.stop()
            stack.processes.remove(process)
    assert worker not in stack.processes


@pytest.fixture(scope="module")
def scenario(stack: Stack, debug_api: str) -> Scenario:
    return asyncio.run(play(stack, debug_api))


async def play(stack: Stack, api_url: str) -> Scenario:
    tag = secrets.token_hex(6)
    played = Scenario()
    email = f"buyer.{tag}@example.com"
    comment = f"internal: the seller admits the files are late {tag}"
    played.secrets += [
        text_secret("the buyer's e-mail", email, forbidden_in=frozenset({STORED_HISTORY})),
        text_secret("the dispute comment", comment, forbidden_in=frozenset({STORED_HISTORY})),
        text_secret("the support agent's e-mail", f"agent.{tag}@example.com", forbidden_in=frozenset({STORED_HISTORY})),
    ]
    # the comment and the assignee reach the dispute workflow (the buyer's e-mail no workflow needs)
    played.decoded_witnesses = ["the dispute comment", "the support agent's e-mail"]

    async def record(response: httpx.Response) -> None:
        await response.aread()
        if response.status_code >= 400:
            name = f"{response.request.method} {response.request.url.path} → {response.status_code}"
            played.answers[f"{name} #{len(played.answers)}"] = response.text

    async with httpx.AsyncClient(base_url=api_url, timeout=30, event_hooks={"response": [record]}) as client:
        master = bearer(stack.master_key)
        created = await client.post(
            "/auth/api-keys",
            json={"name": f"scan-{tag}", "scopes": ["read", "write", "support"]},
            headers={**master, "Idempotency-Key": f"scan-key-{tag}"},
        )
        assert created.status_code == 201, created.text
        api_key = created.json()
        headers = bearer(api_key["key"])
        revoked = await client.post(
            "/auth/api-keys", json={"name": f"scan-revoked-{tag}", "scopes": ["read"]}, headers=master
        )
        assert revoked.status_code == 201, revoked.text
        deleted = await client.delete(f"/auth/api-keys/{revoked.json()['id']}", headers=master)
        assert deleted.status_code in (200, 204), deleted.text
        played.secrets += [
            text_secret("the API key", api_key["key"], api_key["key"][:9]),
            text_secret("the revoked API key", revoked.json()["key"], revoked.json()["key"][:9]),
        ]

        async with receiver() as box:
            endpoint = await client.post(
                "/webhook-endpoints",
                json={"url": box.url, "event_types": ["user.*", "dispute.*"], "description": "scan"},
                headers={**headers, "Idempotency-Key": f"scan-endpoint-{tag}"},
            )
            assert endpoint.status_code == 201, endpoint.text
            webhook_secret = endpoint.json()["secret"]
            played.ids["endpoint"] = endpoint.json()["id"]
            played.secrets.append(text_secret("the webhook endpoint secret", webhook_secret, "whsec_"))
            try:
                await business(
                    stack, client, headers, played, email=email, comment=comment, agent=f"agent.{tag}@example.com"
                )
                await signed_delivery(box, webhook_secret)
            finally:
                await client.delete(f"/webhook-endpoints/{endpoint.json()['id']}", headers=headers)

        await provoke_errors(stack, client, headers, api_key, revoked.json()["key"], played)
        for path in ("/me", "/config", "/health"):
            shown = await client.get(path, headers=headers)
            played.answers[f"GET {path} → {shown.status_code}"] = shown.text
        metrics = await client.get(api_url.removesuffix("/api/v1") + "/metrics")
        played.answers[f"GET /metrics → {metrics.status_code}"] = metrics.text

    played.secrets += await stack_secrets(stack, [played.ids["buyer"], played.ids["seller"]])
    played.workflows = await workflows_since(stack, played.started)
    return played


async def business(
    stack: Stack,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    played: Scenario,
    *,
    email: str,
    comment: str,
    agent: str,
) -> None:
    """Deposit, order, dispute split, a user-bound token, a crypto withdrawal."""
    buyer = await crypto_user(client, headers, email=email)
    await faucet(stack, buyer["wallet"]["public_key"], "120.00")

    async def credited() -> bool:
        return bool((await balance_of(client, headers, buyer["id"]))["available"] == "120.00")

    await assert_eventually(credited, timeout=10, message="deposit not credited")
    seller = await funded_user(client, stack, headers, "0")
    order = await order_in(client, headers, buyer["id"], seller["id"], "120.00", ["reserve", "escrow", "escrow/fund"])
    opened = await client.post(
        f"/orders/{order['id']}/resolution/dispute",
        headers=headers,
        json={"opened_by": "BUYER", "reason": "QUALITY_ISSUE", "description": "does not match the brief"},
    )
    assert opened.status_code == 201, opened.text
    dispute_id = opened.json()["id"]
    commented = await client.post(
        f"/disputes/{dispute_id}/comments",
        headers=headers,
        json={"author_type": "BUYER", "author_id": buyer["id"], "message": comment},
    )
    assert commented.status_code == 201, commented.text
    assigned = await client.post(f"/disputes/{dispute_id}/assign", json={"assigned_to": agent}, headers=headers)
    assert assigned.status_code == 200, assigned.text
    resolved = await client.post(
        f"/disputes/{dispute_id}/resolve",
        headers=headers,
        json={"decision": "SPLIT", "release_amount": "80.00", "refund_amount": "40.00", "note": "partial delivery"},
    )
    assert resolved.status_code == 200, resolved.text
    played.ids.update(
        buyer=buyer["id"],
        seller=seller["id"],
        buyer_wallet=buyer["wallet"]["id"],
        order=order["id"],
        dispute=dispute_id,
    )

    async def closed() -> bool:
        got = (await client.get(f"/orders/{order['id']}", headers=headers)).json()
        return bool(got["status"] == "CLOSED")

    await assert_eventually(closed, timeout=30, message="the split order did not close")

    issued = await client.post(
        "/auth/token",
        json={"scopes": ["read"], "user_id": buyer["id"]},
        headers={**headers, "Idempotency-Key": f"scan-token-{secrets.token_hex(4)}"},
    )
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    played.secrets.append(text_secret("the token", token))
    played.secrets.append(text_secret("the token's signature", token.rsplit(".", 1)[-1]))
    as_buyer = await client.get(f"/users/{buyer['id']}/balance", headers=bearer(token))
    assert as_buyer.status_code == 200 and as_buyer.json()["available"] == "40.00", as_buyer.text
    # a read token may not write: its 403 is one of the error bodies scanned
    refused = await act(client, bearer(token), order["id"], "reserve", expect=403)
    assert refused["error"]["code"] == "INSUFFICIENT_SCOPE"

    destination = await external_account(stack)
    paid = await withdraw(
        client, headers, user_id=buyer["id"], amount="40.00", destination_type="crypto", destination_ref=destination
    )
    assert paid["status"] == "WITHDRAWAL_COMPLETED", paid
    assert Decimal((await balance_of(client, headers, buyer["id"]))["available"]) == 0


async def signed_delivery(box: Receiver, webhook_secret: str) -> None:
    """The endpoint's secret is in use (a delivery arrived signed with it): the scan looks for a live secret."""

    async def delivered() -> bool:
        return any(r.status == 200 for r in box.requests)

    await assert_eventually(delivered, timeout=30, message="no webhook was delivered")
    first = box.answered(200)[0]
    assert verify(webhook_secret, first.headers["offerhub-signature"], first.body, now=int(time.time()))


async def provoke_errors(
    stack: Stack,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    api_key: dict[str, Any],
    revoked_key: str,
    played: Scenario,
) -> None:
    """Error answers that could echo a credential: each must name the problem, not the secret."""
    master = bearer(stack.master_key)
    answers = [
        await client.get("/me", headers=bearer(revoked_key)),
        await client.get("/me", headers=bearer(api_key["key"][:-1] + ("A" if api_key["key"][-1] != "A" else "B"))),
        await client.post("/auth/token", json={"scopes": ["read"]}, headers=master),
        await client.post("/auth/token", json={"api_key_id": api_key["id"], "scopes": ["nope"]}, headers=master),
        await client.post("/webhook-endpoints", json={"url": "javascript:x", "event_types": []}, headers=headers),
        await client.post(
            "/webhooks/trustless-work",
            content=b'{"type": "escrow.funded"}',
            headers={"content-type": "application/json", "x-signature": "forged"},
        ),
    ]
    assert all(a.status_code >= 400 for a in answers), [a.status_code for a in answers]
    assert len(played.answers) >= len(answers)


async def stack_secrets(stack: Stack, user_ids: list[str]) -> list[Secret]:
    """The stack's own secrets: master key, encryption keys, the token signing key, provider
    credentials (every SecretStr setting that is set), and the seeds of the wallets involved
    (the users' and the platform's)."""
    settings = stack_settings(stack)
    found_: list[Secret] = [
        text_secret("the master key", stack.master_key, "ohk_master_"),
        hex_key_secret("WALLET_ENCRYPTION_KEY", stack.env["WALLET_ENCRYPTION_KEY"]),
        hex_key_secret("TEMPORAL_PAYLOAD_ENCRYPTION_KEY", stack.env["TEMPORAL_PAYLOAD_ENCRYPTION_KEY"]),
        raw_secret("the token signing key", settings.token_secret),
    ]
    for name in (
        "TRUSTLESS_WORK_API_KEY",
        "TRUSTLESS_WORK_WEBHOOK_SECRET",
        "AIRTM_API_KEY",
        "AIRTM_API_SECRET",
        "AIRTM_WEBHOOK_SECRET",
        "TEMPORAL_API_KEY",
        "TEMPORAL_CODEC_SERVER_TOKEN",
        "OFFERHUB_TOKEN_SECRET",
    ):
        if stack.env.get(name):
            found_.append(text_secret(name, stack.env[name], "whsec_" if name == "AIRTM_WEBHOOK_SECRET" else ""))
    vault = KeyVault(stack.env["WALLET_ENCRYPTION_KEY"])
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        wallets = await conn.fetch(
            "SELECT id, user_id, purpose, secret_encrypted FROM wallets "
            "WHERE user_id = ANY($1::text[]) OR user_id IS NULL ORDER BY id",
            user_ids,
        )
    finally:
        await conn.close()
    purposes = {w["purpose"] for w in wallets}
    assert sum(w["purpose"] == "USER" for w in wallets) == 2 and "TREASURY" in purposes, purposes
    for wallet in wallets:
        owner = wallet["user_id"] or f"platform:{wallet['purpose']}"
        raw = vault.open_bytes(wallet["secret_encrypted"], wallet_context(wallet["id"], owner))
        label = f"the seed of wallet {wallet['id']} ({wallet['purpose']})"
        found_.append(seed_secret(label, raw))
        sealed = wallet["secret_encrypted"]
        # the sealed form may sit in the database, nowhere else
        found_.append(Secret(f"the sealed seed of wallet {wallet['id']}", (sealed,), EVERYWHERE - {DATABASE}))
    return found_


async def workflows_since(stack: Stack, started: datetime) -> list[tuple[str, str]]:
    """Every run the scenario started, and the runs of the deposit monitor open during it
    (the session's other tests keep their own workflows)."""
    plain = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
    runs = [
        (w.id, w.run_id)
        async for w in plain.list_workflows()
        if w.start_time >= started or (w.id == "deposit-monitor" and (w.close_time or started) >= started)
    ]
    assert len(runs) >= 5, runs
    return runs


async def test_histories_hold_no_secret_and_no_email_or_comment_in_clear(
    stack: Stack, scenario: Scenario, tmp_path: Path
) -> None:
    plain = await Client.connect(stack.env["TEMPORAL_ADDRESS"])  # no codec: what Temporal stores
    stored: dict[str, str] = {}
    for workflow_id, run_id in scenario.workflows:
        history = await plain.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        stored[f"{workflow_id} (run {run_id})"] = history_text(history)
    # and Temporal's own storage, byte for byte (the dev server's SQLite file and its journal)
    files = {str(f.relative_to(stack.root)): f.read_bytes() for f in (stack.root / "temporal").glob("temporal.db*")}
    assert any(scenario.ids["dispute"].encode() in data for data in files.values())

    semaphore = asyncio.Semaphore(2)  # two cores are shared

    async def export(workflow_id: str, run_id: str) -> tuple[str, str]:
        target = tmp_path / f"{workflow_id}-{run_id}.json"
        async with semaphore:
            result = await asyncio.to_thread(
                offerhub, stack.env, "history", "export", workflow_id, "--run-id", run_id, "-o", str(target)
            )
        assert result.returncode == 0, f"export of {workflow_id}: {result.stderr[-2000:]}"
        document = WorkflowHistory.from_json(workflow_id, target.read_text())
        return f"{workflow_id} (run {run_id})", history_text(document) + result.stdout + result.stderr

    exported = dict(await asyncio.gather(*(export(w, r) for w, r in scenario.workflows)))
    # the export is decoded: the comment and the agent's e-mail are there, so the search is a real one
    decoded = "".join(exported.values())
    for secret in scenario.secrets:
        if secret.name in scenario.decoded_witnesses:
            assert any(form in decoded for form in secret.forms), f"{secret.name} not in any decoded export"
    for made in ("order", "dispute", "buyer_wallet"):
        assert any(name.startswith(scenario.ids[made]) for name in exported), f"no history of the {made}"
    leaks = [
        *found(scenario.secrets, STORED_HISTORY, stored),
        *found(scenario.secrets, STORED_HISTORY, files),
        *found(scenario.secrets, HISTORY_EXPORT, exported),
    ]
    print(f"{len(scenario.workflows)} workflow runs, stored and exported, {len(scenario.secrets)} secrets: {leaks}")
    assert not leaks, f"{len(scenario.workflows)} workflow runs scanned:\n" + "\n".join(leaks)


def log_files(stack: Stack) -> list[Path]:
    """Every log the stack writes: its processes' (logs/), PostgreSQL's, Redis's, Temporal's."""
    return sorted({*stack.root.rglob("*.log"), stack.root / "postgres" / "log"} & set(stack.root.rglob("*")))


async def test_logs_hold_no_secret(stack: Stack, scenario: Scenario) -> None:
    def worker_logs() -> str:
        # the session's worker writes worker-N.log once a durability test has replaced it
        return "".join(f.read_text(errors="replace") for f in sorted((stack.root / "logs").glob("worker*.log")))

    async def deliveries_logged() -> bool:
        # the worker writes a delivery's line once the receiver has answered: the scan waits for it
        return scenario.ids["endpoint"] in worker_logs()

    await assert_eventually(deliveries_logged, timeout=15, message="no delivery of the endpoint in the worker's logs")
    files = [f for f in log_files(stack) if f.is_file()]
    assert {"api-debug.log", "worker.log", "worker-debug.log", "sandbox.log", "temporal.log", "log"} <= {
        f.name for f in files
    }
    logs = {str(f.relative_to(stack.root)): f.read_text(errors="replace") for f in files}
    # the scenario is in the logs the scan reads (its requests, its workflows)
    assert scenario.ids["dispute"] in logs["logs/api-debug.log"]
    assert scenario.ids["endpoint"] in worker_logs()  # its deliveries
    assert '"level": "debug"' in logs["logs/api-debug.log"] + logs["logs/worker-debug.log"]
    leaks = found(scenario.secrets, LOGS, logs)
    print(f"{len(logs)} log files ({sum(map(len, logs.values()))} characters): {leaks}")
    assert not leaks, f"{len(logs)} log files scanned:\n" + "\n".join(leaks)


async def test_database_text_holds_no_secret(stack: Stack, scenario: Scenario) -> None:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        rows: dict[str, str] = {}
        for table in (t["table_name"] for t in tables):
            quoted = '"' + table.replace('"', '""') + '"'
            texts = await conn.fetch(f"SELECT t::text AS row FROM {quoted} t")
            rows[table] = "\n".join(r["row"] for r in texts)
    finally:
        await conn.close()
    assert {"users", "wallets", "api_keys", "webhook_endpoints", "dispute_comments", "idempotency_keys"} <= set(rows)
    # the rows read are the scenario's: its e-mail and comment are in the database (where they belong)
    witnesses = [s for s in scenario.secrets if s.forbidden_in == {STORED_HISTORY}]
    assert len(found([Secret(s.name, s.forms, frozenset({DATABASE})) for s in witnesses], DATABASE, rows)) >= 2
    leaks = found(scenario.secrets, DATABASE, rows)
    print(f"{len(rows)} tables ({sum(r.count(chr(10)) + 1 for r in rows.values())} rows): {leaks}")
    assert not leaks, f"{len(rows)} tables scanned:\n" + "\n".join(leaks)


async def test_api_answers_hold_no_secret(scenario: Scenario) -> None:
    assert any(name.startswith("GET /api/v1/me → 401") for name in scenario.answers), list(scenario.answers)
    leaks = found(scenario.secrets, ANSWERS, scenario.answers)
    print(f"{len(scenario.answers)} answers: {leaks}")
    assert not leaks, f"{len(scenario.answers)} answers scanned:\n" + "\n".join(leaks)

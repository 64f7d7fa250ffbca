"""The `offerhub` command (operations.md §1)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="OFFER-HUB Orchestrator: run, operate and inspect the payments orchestrator.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys (through the API, master key).", no_args_is_help=True)
token_app = typer.Typer(help="Short-lived tokens.", no_args_is_help=True)
maintenance_app = typer.Typer(help="Maintenance mode (master key).", no_args_is_help=True)
sandbox_app = typer.Typer(help="The local provider sandbox.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger (direct PostgreSQL).", no_args_is_help=True)
wallets_app = typer.Typer(help="Platform wallets (direct).", no_args_is_help=True)
disputes_app = typer.Typer(
    help="Dispute decisions as Temporal Signals (direct), as from the Temporal UI.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(ledger_app, name="ledger")
app.add_typer(wallets_app, name="wallets")
app.add_typer(disputes_app, name="disputes")
history_app = typer.Typer(help="Workflow histories (direct Temporal).", no_args_is_help=True)
app.add_typer(history_app, name="history")

ApiUrl = Annotated[str, typer.Option("--api-url", envvar="OFFERHUB_API_URL")]
MasterKey = Annotated[str | None, typer.Option("--master-key", envvar="OFFERHUB_MASTER_KEY", show_default=False)]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="OFFERHUB_API_KEY", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON unchanged.")]
AsReport = Annotated[bool, typer.Option("--json", help="Print the report as one JSON document.")]
DEFAULT_API_URL = "http://127.0.0.1:4000/api/v1"


@app.command()
def dev(
    provider: Annotated[str | None, typer.Option(help="crypto or airtm (default: PAYMENT_PROVIDER or crypto)")] = None,
    reset: Annotated[bool, typer.Option(help="Wipe .data/ first (asks for confirmation).")] = False,
) -> None:
    """Run the whole system locally on the embedded stack (what `make dev` runs)."""
    from cli.dev import DevStack

    root = Path.cwd()
    if reset and typer.confirm(f"Delete {root / '.data'} and start from scratch?"):
        import shutil

        shutil.rmtree(root / ".data", ignore_errors=True)
    chosen = provider or os.environ.get("PAYMENT_PROVIDER", "crypto")
    if chosen not in ("crypto", "airtm"):
        raise typer.BadParameter("--provider must be crypto or airtm")
    raise typer.Exit(DevStack(root, chosen).run())


@app.command()
def api() -> None:
    """Run one API server (uvicorn) with the environment's settings."""
    import uvicorn

    from api.app import create_app
    from cli.logs import configure_logging
    from cli.startup import freeze_startup_objects
    from settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    application = create_app(settings)
    freeze_startup_objects()
    uvicorn.run(application, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False)


@app.command()
def worker() -> None:
    """Run one Temporal worker (same as `python worker.py`)."""
    import worker as worker_module

    worker_module.main()


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic upgrade head); idempotent. Exit 3 when the database
    cannot be reached."""
    import migrations
    from cli.direct import EXIT_UNREACHABLE, fail, load_settings

    try:
        migrations.upgrade(load_settings().database_url.get_secret_value())
    except OSError as exc:
        fail(f"cannot reach the database: {exc}", EXIT_UNREACHABLE)
    typer.echo("database schema is up to date")


@app.command()
def openapi(output: Annotated[Path | None, typer.Option("-o", "--output")] = None) -> None:
    """Write the OpenAPI document (stdout by default)."""
    from api.app import openapi_document

    document = json.dumps(openapi_document(), indent=2)
    if output is None:
        typer.echo(document)
    else:
        output.write_text(document)


@app.command("codec-server")
def codec_server(
    port: int = 8081,
    host: Annotated[str, typer.Option(help="Bind address; off loopback TEMPORAL_CODEC_SERVER_TOKEN is required.")] = (
        "127.0.0.1"
    ),
    ui_origin: Annotated[
        list[str] | None, typer.Option("--ui-origin", help="Temporal UI origin allowed by CORS (repeatable).")
    ] = None,
) -> None:
    """Serve the Temporal UI's remote codec (POST /decode, /encode) with TEMPORAL_PAYLOAD_ENCRYPTION_KEY.

    Point the UI at it (Data Encoder settings, or TEMPORAL_CODEC_ENDPOINT) to read encrypted
    payloads; see docs/operators.md. Exit 2 when the key is missing or the bind needs a token."""
    import uvicorn

    from cli.codec_server import DEFAULT_UI_ORIGINS, build
    from cli.direct import EXIT_USAGE, fail

    origins = ui_origin or list(DEFAULT_UI_ORIGINS)
    try:
        codec_app, codec, authenticated = build(host, origins)
    except ValueError as exc:
        fail(f"codec-server: {exc}", EXIT_USAGE)
    auth = "Bearer token required" if authenticated else "no token (loopback only)"
    typer.echo(
        f"codec server on http://{host}:{port} for {', '.join(origins)}; encrypts with key {codec.current_id}, "
        f"decrypts {', '.join(codec.key_ids)}; {auth}"
    )
    uvicorn.run(codec_app, host=host, port=port, log_level="warning")


@ledger_app.command("check")
def ledger_check(as_json: AsReport = False) -> None:
    """Every invariant of domain.md §3.5 (1-7) in one REPEATABLE READ snapshot; exit 1 on a violation."""
    from activities.ledger_check import check_ledger
    from cli.direct import database, load_settings

    settings = load_settings()

    async def run() -> Any:
        async with database(settings) as engine:
            return await check_ledger(engine)

    report = asyncio.run(run())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "checks": [{"name": c.name, "ok": c.ok, "violations": c.violations} for c in report.checks],
                },
                indent=2,
                default=str,
            )
        )
    else:
        for check in report.checks:
            typer.echo(f"  {check.name:28} {'ok' if check.ok else f'VIOLATED {check.violations}'}")
    raise typer.Exit(0 if report.ok else 1)


@wallets_app.command("init-platform")
def wallets_init_platform(as_json: AsReport = False) -> None:
    """Create and activate the missing platform wallets (treasury, resolver; agents in airtm mode).

    On mainnet the treasury is imported first (`offerhub wallets import-treasury`)."""
    from activities.context import WorkerContext
    from activities.wallets import ensure_platform_wallets
    from cli.direct import EXIT_PROBLEM, database, fail, load_settings
    from providers.errors import ProviderError

    settings = load_settings()

    async def run() -> dict[str, str]:
        async with database(settings):
            pass  # reachable (exit 3 otherwise)
        ctx = WorkerContext.build(settings)
        try:
            return await ensure_platform_wallets(ctx)
        except ProviderError as exc:
            fail(f"{type(exc).__name__}: {exc}", EXIT_PROBLEM)
        finally:
            await ctx.close()

    wallets = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(wallets, indent=2))
        return
    for purpose, address in wallets.items():
        typer.echo(f"  {purpose:14} {address}")


TREASURY_SECRET_ENV = "OFFERHUB_TREASURY_SECRET"


def _read_secret(env_name: str) -> str:
    """The seed from the environment variable, else one line of standard input (hidden on a TTY)."""
    secret = os.environ.get(env_name, "").strip()
    if not secret:
        if sys.stdin.isatty():
            import getpass

            secret = getpass.getpass("Treasury secret seed (S…, not echoed): ").strip()
        else:
            secret = sys.stdin.readline().strip()
    if not secret:
        typer.echo(f"no secret seed: set {env_name} or pipe it on standard input", err=True)
        raise typer.Exit(2)
    return secret


@wallets_app.command("import-treasury")
def wallets_import_treasury(
    secret_env: Annotated[
        str, typer.Option("--secret-env", help="Environment variable holding the secret seed (else read from stdin).")
    ] = TREASURY_SECRET_ENV,
    replace: Annotated[
        bool, typer.Option("--replace", help="Retire a different active treasury (its row and key are kept).")
    ] = False,
    as_json: AsReport = False,
) -> None:
    """Import a Stellar secret seed (S…) as the TREASURY wallet, sealed with WALLET_ENCRYPTION_KEY.

    Mainnet needs this before `offerhub wallets init-platform`, which then activates it.

    The seed is read from $OFFERHUB_TREASURY_SECRET, else from standard input; never from the command line.

    Importing the active treasury again changes nothing; a different one is refused (exit 1) unless --replace."""
    from stellar_sdk.exceptions import Ed25519SecretSeedInvalidError

    from cli.direct import EXIT_PROBLEM, EXIT_USAGE, database, fail, load_settings
    from cli.wallets import Imported, ImportRefused, import_treasury

    settings = load_settings()
    secret = _read_secret(secret_env)

    async def run() -> Imported:
        async with database(settings) as engine:
            return await import_treasury(settings, engine, secret, replace=replace)

    try:
        imported = asyncio.run(run())
    except Ed25519SecretSeedInvalidError:
        fail("not a Stellar secret seed (56 characters starting with S)", EXIT_USAGE)
    except ImportRefused as exc:
        fail(str(exc), EXIT_PROBLEM)
    if as_json:
        typer.echo(json.dumps(imported.report(), indent=2))
        return
    verb = "imported" if imported.created else "already the active treasury:"
    typer.echo(f"TREASURY {verb} {imported.wallet_id} {imported.public_key}")
    if imported.replaced:
        typer.echo(f"retired the previous treasury {imported.replaced}")
    if imported.created:
        typer.echo("next: `offerhub wallets init-platform` activates it and creates the other platform wallets")


@wallets_app.command("rotate-key")
def wallets_rotate_key(
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 200,
    as_json: AsReport = False,
) -> None:
    """Re-seal every wallet seed and webhook endpoint secret under WALLET_ENCRYPTION_KEY.

    Older values are opened with WALLET_ENCRYPTION_PREVIOUS_KEYS (the key their kid names).

    Idempotent, and safe beside running processes. Exit 1 if a value no configured key opens remains."""
    from cli.direct import database, load_settings
    from cli.wallets import Rotation, rotate_keys

    settings = load_settings()

    async def run() -> Rotation:
        async with database(settings) as engine:
            return await rotate_keys(settings, engine, batch_size=batch_size)

    rotation = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(rotation.report(), indent=2))
    else:
        typer.echo(f"current key {rotation.key_id}")
        for name, tally in (("wallets", rotation.wallets), ("webhook endpoints", rotation.webhook_endpoints)):
            typer.echo(
                f"  {name:18} checked {tally.checked:>6}  resealed {tally.resealed:>6}  "
                f"current {tally.current:>6}  unreadable {len(tally.unreadable)}"
            )
            for problem in tally.unreadable:
                typer.echo(f"  ! {problem}")
        if rotation.ok and settings.wallet_encryption_previous_keys:
            typer.echo("every secret is sealed under the current key: WALLET_ENCRYPTION_PREVIOUS_KEYS can be removed")
    raise typer.Exit(0 if rotation.ok else 1)


@history_app.command("export")
def history_export(
    workflow_id: str,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (stdout by default).")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="A given run (default: the latest).")] = None,
    as_json: AsReport = False,
) -> None:
    """The workflow's event history as JSON, as `temporal workflow show --output json` writes it.

    Payloads encrypted by the payload codec are decoded with TEMPORAL_PAYLOAD_ENCRYPTION_KEY
    (or one of TEMPORAL_PAYLOAD_ENCRYPTION_PREVIOUS_KEYS); the others are written as stored
    (base64 of their JSON).

    Exit 1 when the workflow is not found or a payload's key is unknown, 3 when Temporal
    cannot be reached."""
    from api.payload_codec import PayloadKeyError
    from cli.direct import EXIT_PROBLEM, load_settings
    from cli.history import WorkflowNotFound, export_history

    settings = load_settings()
    try:
        exported = asyncio.run(export_history(settings, workflow_id, run_id))
    except (WorkflowNotFound, PayloadKeyError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_PROBLEM) from None
    if exported.still_encrypted:
        typer.echo(
            f"warning: {exported.still_encrypted} payloads are encrypted and TEMPORAL_PAYLOAD_ENCRYPTION_KEY "
            "is not set; written as stored",
            err=True,
        )
    if output is None:
        typer.echo(exported.document)
        raise typer.Exit(0)
    output.write_text(exported.document + "\n")
    summary = {"workflow_id": workflow_id, "events": exported.events, "decoded_payloads": exported.decoded}
    summary["file"] = str(output)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(f"wrote {exported.events} events of {workflow_id} to {output}")


def _dispute_signal(dispute_id: str, name: str, payload: dict[str, Any], print_only: bool) -> None:
    """Send the Signal support staff would paste into the Temporal UI, then show the outcome."""
    import shlex

    from cli.direct import database, load_settings, temporal

    settings = load_settings()
    command = (
        f"temporal workflow signal --address {settings.temporal_address} --workflow-id {dispute_id} "
        f"--name {name} --input {shlex.quote(json.dumps(payload))}"
    )
    if print_only:
        typer.echo(command)
        return

    async def run() -> dict[str, Any]:
        from sqlalchemy import select
        from sqlmodel import col

        from models.tables import AuditLog, Dispute

        failure = (col(AuditLog.resource_id) == dispute_id, col(AuditLog.result) == "FAILURE")
        client = await temporal(settings)
        async with database(settings) as engine:
            # a rejection of an earlier Signal is not this one's outcome
            async with engine.connect() as conn:
                earlier = list((await conn.execute(select(col(AuditLog.id)).where(*failure))).scalars())
            await client.get_workflow_handle(dispute_id).signal(name, payload)
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                async with engine.connect() as conn:
                    dispute = (await conn.execute(select(Dispute).where(col(Dispute.id) == dispute_id))).first()
                    refused = (
                        await conn.execute(
                            select(col(AuditLog.error))
                            .where(*failure, col(AuditLog.id).not_in(earlier))
                            .order_by(col(AuditLog.occurred_at).desc())
                            .limit(1)
                        )
                    ).scalar()
                target = "UNDER_REVIEW" if name == "assign" else "RESOLVED"
                if dispute is not None and dispute.status == target:
                    return {
                        "status": dispute.status,
                        "assigned_to": dispute.assigned_to,
                        "resolution_decision": dispute.resolution_decision,
                        "resolved_by": dispute.resolved_by,
                    }
                if refused or asyncio.get_running_loop().time() > deadline:
                    return {"status": dispute.status if dispute else None, "refused": refused}
                await asyncio.sleep(0.5)

    outcome = asyncio.run(run())
    typer.echo(json.dumps(outcome, indent=2, default=str))
    raise typer.Exit(1 if outcome.get("refused") else 0)


@disputes_app.command("assign")
def disputes_assign(
    dispute_id: str,
    to: Annotated[str, typer.Option("--to")],
    actor: Annotated[str, typer.Option("--actor")],
    note: Annotated[str | None, typer.Option("--note")] = None,
    print_temporal_command: Annotated[bool, typer.Option("--print-temporal-command")] = False,
) -> None:
    """Signal `assign` to workflow DSP_ID (OPEN -> UNDER_REVIEW)."""
    payload: dict[str, Any] = {"assigned_to": to, "actor": actor}
    if note:
        payload["note"] = note
    _dispute_signal(dispute_id, "assign", payload, print_temporal_command)


@disputes_app.command("resolve")
def disputes_resolve(
    dispute_id: str,
    decision: Annotated[str, typer.Option("--decision")],
    actor: Annotated[str, typer.Option("--actor")],
    release_amount: Annotated[str | None, typer.Option("--release-amount")] = None,
    refund_amount: Annotated[str | None, typer.Option("--refund-amount")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    print_temporal_command: Annotated[bool, typer.Option("--print-temporal-command")] = False,
) -> None:
    """Signal `resolve` to workflow DSP_ID: FULL_RELEASE, FULL_REFUND or SPLIT (with both amounts)."""
    payload: dict[str, Any] = {"decision": decision, "actor": actor}
    for field, value in (("release_amount", release_amount), ("refund_amount", refund_amount), ("note", note)):
        if value is not None:
            payload[field] = value
    _dispute_signal(dispute_id, "resolve", payload, print_temporal_command)


@sandbox_app.command("run")
def sandbox_run(
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SANDBOX_PORT")] = 8700,
) -> None:
    """Run the provider sandbox server."""
    import uvicorn

    from sandbox.app import create_sandbox_app
    from sandbox.core import SandboxConfig

    uvicorn.run(create_sandbox_app(SandboxConfig.from_env(port=port)), host=host, port=port, log_level="warning")


SandboxUrl = Annotated[str, typer.Option("--sandbox-url", envvar="SANDBOX_URL")]
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8700"
faults_app = typer.Typer(help="Sandbox fault injection.", no_args_is_help=True)
sandbox_app.add_typer(faults_app, name="faults")


def _sandbox(method: str, url: str, body: Any = None) -> Any:
    import httpx

    try:
        response = httpx.request(method, url, json=body, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the sandbox at {url}: {type(exc).__name__}", err=True)
        raise typer.Exit(3) from None
    data = response.json()
    if response.status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        typer.echo(f"{error.get('code', response.status_code)}: {error.get('message', response.text)}", err=True)
        raise typer.Exit(1)
    return data


@sandbox_app.command("fund")
def sandbox_fund(
    target: Annotated[str, typer.Argument(help="a G… address, or a usr_… ID (its deposit address via the API)")],
    amount: Annotated[str, typer.Argument(help="USDC, e.g. 150.00")],
    sandbox_url: SandboxUrl = DEFAULT_SANDBOX_URL,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
) -> None:
    """Send sandbox USDC from the faucet to an address (a real transaction)."""
    address = target
    if target.startswith("usr_"):
        deposit = _call("GET", f"{api_url}/users/{target}/wallet/deposit", api_key)
        address = deposit["address"]
    typer.echo(
        json.dumps(
            _sandbox("POST", f"{sandbox_url}/_sandbox/faucet/usdc", {"address": address, "amount": amount}), indent=2
        )
    )


@sandbox_app.command("confirm-topup")
def sandbox_confirm_topup(
    topup_id: str, email: Annotated[str | None, typer.Option()] = None, sandbox_url: SandboxUrl = DEFAULT_SANDBOX_URL
) -> None:
    """Confirm an Airtm pay-in as its user would on the checkout page."""
    body = {"email": email} if email else {}
    typer.echo(json.dumps(_sandbox("POST", f"{sandbox_url}/_sandbox/airtm/payins/{topup_id}/confirm", body), indent=2))


@sandbox_app.command("fail-payout")
def sandbox_fail_payout(
    withdrawal_id: str,
    reason_code: Annotated[str, typer.Option()] = "415073",
    sandbox_url: SandboxUrl = DEFAULT_SANDBOX_URL,
) -> None:
    """Fail an Airtm payout (funds return to the enterprise balance)."""
    body = {"reason_code": reason_code, "reason_description": "failed from the command line"}
    typer.echo(
        json.dumps(_sandbox("POST", f"{sandbox_url}/_sandbox/airtm/payouts/{withdrawal_id}/fail", body), indent=2)
    )


@faults_app.command("set")
def sandbox_faults_set(
    config: Annotated[str, typer.Argument(help="JSON, or @path to a JSON file (providers.md §5.9)")],
    sandbox_url: SandboxUrl = DEFAULT_SANDBOX_URL,
) -> None:
    """Replace the fault configuration."""
    text = Path(config[1:]).read_text() if config.startswith("@") else config
    typer.echo(json.dumps(_sandbox("PUT", f"{sandbox_url}/_sandbox/faults", json.loads(text)), indent=2))


@faults_app.command("clear")
def sandbox_faults_clear(sandbox_url: SandboxUrl = DEFAULT_SANDBOX_URL) -> None:
    """Remove every fault rule."""
    _sandbox("DELETE", f"{sandbox_url}/_sandbox/faults")
    typer.echo("faults cleared")


@sandbox_app.command("status")
def sandbox_status(sandbox_url: SandboxUrl = DEFAULT_SANDBOX_URL, as_json: AsJson = False) -> None:
    """Ledger, invariants and pending webhooks of the sandbox; exit 1 if an invariant fails."""
    info = _sandbox("GET", f"{sandbox_url}/_sandbox/info")
    invariants = _sandbox("GET", f"{sandbox_url}/_sandbox/invariants")
    pending = _sandbox("GET", f"{sandbox_url}/_sandbox/webhooks?status=PENDING&limit=1000")
    if as_json:
        typer.echo(json.dumps({"info": info, "invariants": invariants, "pending_webhooks": len(pending)}, indent=2))
        raise typer.Exit(0 if invariants["ok"] else 1)
    typer.echo(
        f"ledger {info['ledger']['sequence']} at {info['ledger']['closed_at']}; "
        f"USDC issuer {info['usdc']['issuer']}; pending webhooks {len(pending)}"
    )
    for check in invariants["checks"]:
        typer.echo(f"  {check['name']:28} {'ok' if check['ok'] else 'VIOLATED ' + check['detail']}")
    raise typer.Exit(0 if invariants["ok"] else 1)


# --- commands that act through the API -------------------------------------------------


def _call(method: str, url: str, secret: str | None, body: dict[str, Any] | None = None) -> Any:
    import httpx

    if not secret:
        typer.echo("a credential is required: set OFFERHUB_MASTER_KEY / OFFERHUB_API_KEY or pass the option", err=True)
        raise typer.Exit(2)
    try:
        response = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the API at {url}: {type(exc).__name__}", err=True)
        raise typer.Exit(3) from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        request_id = response.headers.get("x-request-id") or "no request id"
        if isinstance(error, dict):
            typer.echo(f"{error.get('code')}: {error.get('message')} ({request_id})", err=True)
        else:
            typer.echo(f"HTTP_{response.status_code}: {response.text[:200]} ({request_id})", err=True)
        raise typer.Exit(1)
    return data


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows: list[dict[str, Any]] = data["data"] if isinstance(data, dict) and "data" in data else [data]
    for row in rows:
        typer.echo("  ".join(f"{k}={v}" for k, v in row.items() if not isinstance(v, dict | list) or v))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option()],
    scopes: Annotated[str, typer.Option(help="comma-separated: read,write,support")],
    api_url: ApiUrl = DEFAULT_API_URL,
    master_key: MasterKey = None,
    as_json: AsJson = False,
) -> None:
    """Create an API key; its secret is printed once."""
    data = _call(
        "POST",
        f"{api_url}/auth/api-keys",
        master_key,
        {"name": name, "scopes": [s.strip() for s in scopes.split(",") if s.strip()]},
    )
    _print(data, as_json)
    if not as_json:
        typer.echo("warning: the key is shown only now; store it safely", err=True)


@keys_app.command("list")
def keys_list(api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """List API keys (never their secrets)."""
    _print(_call("GET", f"{api_url}/auth/api-keys?limit=100", master_key), as_json)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str, api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False
) -> None:
    """Revoke an API key and every token minted from it."""
    _print(_call("DELETE", f"{api_url}/auth/api-keys/{key_id}", master_key), as_json)


@token_app.command("create")
def token_create(
    key_id: Annotated[str | None, typer.Option("--key-id")] = None,
    scopes: Annotated[str | None, typer.Option()] = None,
    ttl: Annotated[int, typer.Option()] = 900,
    api_url: ApiUrl = DEFAULT_API_URL,
    master_key: MasterKey = None,
    api_key: ApiKeyOpt = None,
    as_json: AsJson = False,
) -> None:
    """Issue a short-lived token (master key with --key-id, or an API key for itself)."""
    body: dict[str, Any] = {"ttl_seconds": ttl}
    if key_id:
        body["api_key_id"] = key_id
    if scopes:
        body["scopes"] = [s.strip() for s in scopes.split(",")]
    _print(_call("POST", f"{api_url}/auth/token", api_key or master_key, body), as_json)


@maintenance_app.command("status")
def maintenance_status(
    api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False
) -> None:
    """Whether maintenance mode is on, its message and Retry-After (master key)."""
    _print(_call("GET", f"{api_url}/admin/maintenance/status", master_key), as_json)


MAINTENANCE_MESSAGE = "System maintenance in progress"


@maintenance_app.command("enable")
def maintenance_enable(
    message: Annotated[
        str, typer.Option(help="Shown in every 503 MAINTENANCE answer.")
    ] = "System maintenance in progress",
    retry_after: Annotated[int, typer.Option(help="Retry-After seconds of those answers.")] = 300,
    api_url: ApiUrl = DEFAULT_API_URL,
    master_key: MasterKey = None,
    as_json: AsJson = False,
) -> None:
    """Refuse state-changing requests with 503 MAINTENANCE on every replica (reads and provider
    webhooks go on; workflows keep running)."""
    body = {"message": message, "retry_after_seconds": retry_after}
    _print(_call("POST", f"{api_url}/admin/maintenance/enable", master_key, body), as_json)


@maintenance_app.command("disable")
def maintenance_disable(
    api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False
) -> None:
    """End maintenance mode: state-changing requests are accepted again."""
    _print(_call("POST", f"{api_url}/admin/maintenance/disable", master_key), as_json)


@app.command()
def reconcile(
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run and print its report.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run with --wait.")] = 600,
    api_url: ApiUrl = DEFAULT_API_URL,
    master_key: MasterKey = None,
    as_json: AsJson = False,
) -> None:
    """Trigger a reconciliation run (the one in progress, if any); with --wait, print its
    checks and findings and exit 1 on findings or an error."""
    import time

    run = _call("POST", f"{api_url}/admin/reconciliation/run", master_key)
    deadline = time.monotonic() + timeout
    while wait and run["status"] == "RUNNING":
        if time.monotonic() > deadline:
            typer.echo(f"run {run['id']} still RUNNING after {timeout:g} s", err=True)
            raise typer.Exit(1)
        time.sleep(1.0)
        run = _call("GET", f"{api_url}/admin/reconciliation/runs/{run['id']}", master_key)
    if as_json:
        typer.echo(json.dumps(run, indent=2))
    else:
        typer.echo(f"run {run['id']}: {run['status']}" + (f" ({run['error']})" if run["error"] else ""))
        for name, counts in run["checks"].items():
            typer.echo(f"  {name:20} checked {counts['checked']:>6}  findings {counts['findings']}")
        for finding in run["findings"]:
            typer.echo(
                f"  ! {finding['check']} {finding['resource_type']} {finding['resource_id']}: "
                f"expected {json.dumps(finding['expected'])}, actual {json.dumps(finding['actual'])}"
            )
    raise typer.Exit(1 if run["status"] in ("FINDINGS", "ERROR") else 0)


@app.command()
def health(api_url: ApiUrl = DEFAULT_API_URL, as_json: AsJson = False) -> None:
    """`GET /health` as a table; exit 1 when degraded, 3 when unreachable."""
    import httpx

    try:
        response = httpx.get(f"{api_url}/health", timeout=15)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the API at {api_url}: {type(exc).__name__}", err=True)
        raise typer.Exit(3) from None
    report = response.json()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(f"status: {report['status']}  ({report['payment_provider']} mode, {report['environment']})")
        for name, check in report["checks"].items():
            typer.echo(f"  {name:16} {check['status']:8} {check['latency_ms'] or '':>6} {check['error'] or ''}")
    raise typer.Exit(0 if response.status_code == 200 else 1)


@app.command()
def demo(
    api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, sandbox_url: SandboxUrl = DEFAULT_SANDBOX_URL
) -> None:
    """A narrated tour of the running stack through the SDK (users, a milestone order, a split
    dispute, a withdrawal, balances, Temporal UI links, ledger check); exit 1 if a step fails."""
    from cli.demo import run_demo

    raise typer.Exit(run_demo(api_url, master_key, sandbox_url, echo=typer.echo))


@app.command()
def chaos(
    seed: Annotated[int, typer.Option(help="Seeds every choice: the same seed replays the same plan.")] = 16,
    duration: Annotated[
        float | None, typer.Option(help="Seconds of activity (default: 180 crypto, 150 airtm).", show_default=False)
    ] = None,
    provider: Annotated[str, typer.Option(help="crypto or airtm")] = "crypto",
    max_operations: Annotated[int, typer.Option(help="Operations (state-changing calls) at most.")] = 600,
    users: Annotated[int, typer.Option(help="Marketplace users taking part.")] = 8,
    keep: Annotated[bool, typer.Option(help="Keep the run's directory (logs, databases).")] = False,
    as_json: AsReport = False,
) -> None:
    """A seeded reliability run on its own embedded stack (docs/chaos.md): random valid activity
    under sandbox faults, process kills and restarts; prints the figures, exit 1 on any violation."""
    from cli.chaos.run import DEFAULT_DURATION, Options, run_chaos

    if provider not in ("crypto", "airtm"):
        raise typer.BadParameter("--provider must be crypto or airtm")
    options = Options(seed, provider, duration or DEFAULT_DURATION[provider], max_operations, users, keep)
    report = run_chaos(options, echo=lambda line: typer.echo(line, err=as_json))
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        report.print(typer.echo)
    raise typer.Exit(1 if report.violations else 0)


def main() -> None:
    """The `offerhub` command. Once a command that loaded Temporal's client is done, the process
    leaves without interpreter teardown: the client's Rust threads can still hand back the GIL
    while Python finalizes, which aborts the process (SIGABRT) instead of exiting with the
    command's code (temporalio/sdk-python#300; seen as exit -6 for an unreachable Temporal)."""
    try:
        app()
        code = 0
    except SystemExit as exit_:
        code = exit_code(exit_.code)
    if "temporalio.bridge" not in sys.modules:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def exit_code(code: object) -> int:
    """SystemExit's code as the process's exit status (a message is printed and counts as 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()

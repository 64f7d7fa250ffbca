"""`offerhub ledger`, `wallets`, `history` and `disputes`: operations run directly against
PostgreSQL, the wallets' keys and Temporal (operations.md §1), not through the API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import AsReport

ledger_app = typer.Typer(help="The ledger (direct PostgreSQL).", no_args_is_help=True)
wallets_app = typer.Typer(help="Platform wallets (direct).", no_args_is_help=True)
disputes_app = typer.Typer(
    help="Dispute decisions as Temporal Signals (direct), as from the Temporal UI.", no_args_is_help=True
)
history_app = typer.Typer(help="Workflow histories (direct Temporal).", no_args_is_help=True)
# what every dispute decision takes: who decided, a note, and whether to print the Temporal CLI
# command instead of sending the Signal
Actor = Annotated[str, typer.Option("--actor")]
PrintTemporalCommand = Annotated[bool, typer.Option("--print-temporal-command")]
Note = Annotated[str | None, typer.Option("--note")]


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
    actor: Actor,
    note: Note = None,
    print_temporal_command: PrintTemporalCommand = False,
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
    actor: Actor,
    release_amount: Annotated[str | None, typer.Option("--release-amount")] = None,
    refund_amount: Annotated[str | None, typer.Option("--refund-amount")] = None,
    note: Note = None,
    print_temporal_command: PrintTemporalCommand = False,
) -> None:
    """Signal `resolve` to workflow DSP_ID: FULL_RELEASE, FULL_REFUND or SPLIT (with both amounts)."""
    payload: dict[str, Any] = {"decision": decision, "actor": actor}
    for field, value in (("release_amount", release_amount), ("refund_amount", refund_amount), ("note", note)):
        if value is not None:
            payload[field] = value
    _dispute_signal(dispute_id, "resolve", payload, print_temporal_command)

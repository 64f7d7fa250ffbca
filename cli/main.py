"""The `offerhub` command (operations.md §1)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.api_commands import call_api, keys_app, maintenance_app, token_app
from cli.ops_commands import disputes_app, history_app, ledger_app, wallets_app
from cli.options import DEFAULT_API_URL, DEFAULT_SANDBOX_URL, ApiUrl, AsJson, AsReport, MasterKey, SandboxUrl
from cli.sandbox_commands import sandbox_app

app = typer.Typer(
    help="OFFER-HUB Orchestrator: run, operate and inspect the payments orchestrator.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(ledger_app, name="ledger")
app.add_typer(wallets_app, name="wallets")
app.add_typer(disputes_app, name="disputes")
app.add_typer(history_app, name="history")


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

    run = call_api("POST", f"{api_url}/admin/reconciliation/run", master_key)
    deadline = time.monotonic() + timeout
    while wait and run["status"] == "RUNNING":
        if time.monotonic() > deadline:
            typer.echo(f"run {run['id']} still RUNNING after {timeout:g} s", err=True)
            raise typer.Exit(1)
        time.sleep(1.0)
        run = call_api("GET", f"{api_url}/admin/reconciliation/runs/{run['id']}", master_key)
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

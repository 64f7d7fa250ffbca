"""`offerhub sandbox`: run the local provider sandbox, and drive it (fund, confirm a top-up,
fail a payout, fault injection, status)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.api_commands import call_api
from cli.options import DEFAULT_API_URL, DEFAULT_SANDBOX_URL, ApiKeyOpt, ApiUrl, AsJson, SandboxUrl

sandbox_app = typer.Typer(help="The local provider sandbox.", no_args_is_help=True)
faults_app = typer.Typer(help="Sandbox fault injection.", no_args_is_help=True)
sandbox_app.add_typer(faults_app, name="faults")


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
        deposit = call_api("GET", f"{api_url}/users/{target}/wallet/deposit", api_key)
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

"""`offerhub keys`, `token` and `maintenance`: commands that act through the API with the
master key or an API key, and the call and printing they share with `reconcile`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli.options import DEFAULT_API_URL, ApiKeyOpt, ApiUrl, AsJson, MasterKey

keys_app = typer.Typer(help="API keys (through the API, master key).", no_args_is_help=True)
token_app = typer.Typer(help="Short-lived tokens.", no_args_is_help=True)
maintenance_app = typer.Typer(help="Maintenance mode (master key).", no_args_is_help=True)


def call_api(method: str, url: str, secret: str | None, body: dict[str, Any] | None = None) -> Any:
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


def show(data: Any, as_json: bool) -> None:
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
    data = call_api(
        "POST",
        f"{api_url}/auth/api-keys",
        master_key,
        {"name": name, "scopes": [s.strip() for s in scopes.split(",") if s.strip()]},
    )
    show(data, as_json)
    if not as_json:
        typer.echo("warning: the key is shown only now; store it safely", err=True)


@keys_app.command("list")
def keys_list(api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False) -> None:
    """List API keys (never their secrets)."""
    show(call_api("GET", f"{api_url}/auth/api-keys?limit=100", master_key), as_json)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str, api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False
) -> None:
    """Revoke an API key and every token minted from it."""
    show(call_api("DELETE", f"{api_url}/auth/api-keys/{key_id}", master_key), as_json)


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
    show(call_api("POST", f"{api_url}/auth/token", api_key or master_key, body), as_json)


@maintenance_app.command("status")
def maintenance_status(
    api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False
) -> None:
    """Whether maintenance mode is on, its message and Retry-After (master key)."""
    show(call_api("GET", f"{api_url}/admin/maintenance/status", master_key), as_json)


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
    show(call_api("POST", f"{api_url}/admin/maintenance/enable", master_key, body), as_json)


@maintenance_app.command("disable")
def maintenance_disable(
    api_url: ApiUrl = DEFAULT_API_URL, master_key: MasterKey = None, as_json: AsJson = False
) -> None:
    """End maintenance mode: state-changing requests are accepted again."""
    show(call_api("POST", f"{api_url}/admin/maintenance/disable", master_key), as_json)

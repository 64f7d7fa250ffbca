"""The options several `offerhub` commands share: where the API and the sandbox are, which
credential to use, and how to print."""

from __future__ import annotations

from typing import Annotated

import typer

ApiUrl = Annotated[str, typer.Option("--api-url", envvar="OFFERHUB_API_URL")]
MasterKey = Annotated[str | None, typer.Option("--master-key", envvar="OFFERHUB_MASTER_KEY", show_default=False)]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="OFFERHUB_API_KEY", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON unchanged.")]
AsReport = Annotated[bool, typer.Option("--json", help="Print the report as one JSON document.")]
DEFAULT_API_URL = "http://127.0.0.1:4000/api/v1"
SandboxUrl = Annotated[str, typer.Option("--sandbox-url", envvar="SANDBOX_URL")]
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8700"

"""`offerhub history export`: a workflow's event history as JSON, through the Temporal client.

The document is the one `temporal workflow show --output json` writes and
`WorkflowHistory.from_json` / the `Replayer` read (tests/histories/ holds such files)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cli.direct import temporal
from settings import Settings


class WorkflowNotFound(Exception):
    pass


@dataclass(frozen=True)
class ExportedHistory:
    document: str
    events: int


async def export_history(settings: Settings, workflow_id: str, run_id: str | None = None) -> ExportedHistory:
    from temporalio.service import RPCError, RPCStatusCode

    client = await temporal(settings)
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        history = await handle.fetch_history()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            where = f" (run {run_id})" if run_id else ""
            raise WorkflowNotFound(
                f"NOT_FOUND: no workflow {workflow_id}{where} in namespace {settings.temporal_namespace}"
            ) from None
        raise
    document = json.dumps(history.to_json_dict(), indent=2)
    return ExportedHistory(document=document, events=len(history.events))

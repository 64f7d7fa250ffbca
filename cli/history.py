"""`offerhub history export`: a workflow's event history as JSON, through the Temporal client.

The document is the one `temporal workflow show --output json` writes and
`WorkflowHistory.from_json` / the `Replayer` read (tests/histories/ holds such files), with
every payload the payload codec encrypted decoded (api/payload_codec.py), so operators read
titles, comments and amounts in clear and the file replays with or without a key."""

from __future__ import annotations

import json
from dataclasses import dataclass

from api.payload_codec import count_encrypted, decode_messages, payload_codec
from cli.direct import temporal
from settings import Settings


class WorkflowNotFound(Exception):
    pass


@dataclass(frozen=True)
class ExportedHistory:
    document: str
    events: int
    decoded: int  # payloads that were encrypted and are now in clear
    still_encrypted: int  # encrypted payloads left as stored (no TEMPORAL_PAYLOAD_ENCRYPTION_KEY)


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
    codec = payload_codec(settings)
    if codec is None:
        decoded, still_encrypted = 0, count_encrypted(history.events)
    else:
        decoded, still_encrypted = await decode_messages(codec, history.events), 0
    document = json.dumps(history.to_json_dict(), indent=2)
    return ExportedHistory(document, len(history.events), decoded, still_encrypted)

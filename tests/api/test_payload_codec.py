"""Temporal payload encryption on the real stack (the session runs with TEMPORAL_PAYLOAD_ENCRYPTION_KEY).

What Temporal stores of an order and its dispute (title, metadata, description, comments, an
operator's e-mail) is ciphertext; operators read it through `offerhub history export` and
the codec server; a Signal typed as plain JSON (the Temporal UI, `temporal workflow signal`)
is still accepted; after a key rotation the old histories still open.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory

from api.payload_codec import ENCODING, KEY_ID, is_encrypted, key_id, payloads_in
from cli.stack import LOOPBACK, free_port, wait_for_port
from tests.api.orders_support import funded_order
from tests.support import Process, Stack, assert_eventually

UI_ORIGIN = "http://localhost:8233"


def offerhub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=60
    )


def stored_text(history: WorkflowHistory) -> str:
    """Everything Temporal stores of a history, payload bytes included, as one text."""
    raw = [p.data.decode(errors="replace") for event in history.events for p in payloads_in(event)]
    return history.to_json() + "\n".join(raw)


def codec_server(stack: Stack, name: str, env: dict[str, str] | None = None, *args: str) -> tuple[str, Process]:
    port = free_port()
    server = stack.spawn(name, ["codec-server", "--port", str(port), *args], env=env or stack.env)
    wait_for_port(port, timeout=30, process=server.process, name=name)
    return f"http://{LOOPBACK}:{port}", server


def stop(stack: Stack, server: Process) -> None:
    server.stop()
    stack.processes.remove(server)


@pytest.fixture(scope="module")
def codec_url(stack: Stack) -> Iterator[str]:
    url, server = codec_server(stack, "codec-server")
    yield url
    stop(stack, server)


@pytest.fixture(scope="module")
def disputed(stack: Stack) -> dict[str, Any]:
    """An order with a title and metadata, disputed, commented, assigned by a plain-JSON Signal
    (as typed in the Temporal UI) and resolved by an operator through `offerhub disputes`."""
    return asyncio.run(dispute_lifecycle(stack))


async def dispute_lifecycle(stack: Stack) -> dict[str, Any]:
    tag = secrets.token_hex(6)
    secrets_of_the_case = {
        "title": f"Brand book {tag}",
        "metadata": f"project-{tag}",
        "description": f"the colours are wrong {tag}",
        "comment": f"internal: the seller admits it {tag}",
        "note": f"refund agreed {tag}",
        "email": f"ops-{tag}@example.com",
    }
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        key = await client.post(
            "/auth/api-keys",
            json={"name": "codec", "scopes": ["read", "write", "support"]},
            headers={"Authorization": f"Bearer {stack.master_key}"},
        )
        headers = {"Authorization": f"Bearer {key.json()['key']}"}
        buyer, _, order = await funded_order(
            client,
            stack,
            headers,
            "30.00",
            ["reserve", "escrow", "escrow/fund"],
            title=secrets_of_the_case["title"],
            metadata={"project": secrets_of_the_case["metadata"]},
        )
        opened = await client.post(
            f"/orders/{order['id']}/resolution/dispute",
            headers=headers,
            json={"opened_by": "BUYER", "reason": "QUALITY_ISSUE", "description": secrets_of_the_case["description"]},
        )
        assert opened.status_code == 201, opened.text
        dispute_id = opened.json()["id"]
        comment = await client.post(
            f"/disputes/{dispute_id}/comments",
            headers=headers,
            json={"author_type": "BUYER", "author_id": buyer["id"], "message": secrets_of_the_case["comment"]},
        )
        assert comment.status_code == 201, comment.text

        # the Temporal UI without a codec endpoint: a client with the default converter, no codec
        typed_in_the_ui = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
        await typed_in_the_ui.get_workflow_handle(dispute_id).signal(
            "assign", {"assigned_to": "agent-desk", "actor": "support-desk"}
        )

        async def under_review() -> bool:
            got = (await client.get(f"/disputes/{dispute_id}", headers=headers)).json()
            return bool(got["status"] == "UNDER_REVIEW" and got["assigned_to"] == "agent-desk")

        await assert_eventually(under_review, timeout=15, message="the plain-JSON Signal was not accepted")
        resolved = await asyncio.to_thread(
            offerhub,
            stack.env,
            "disputes",
            "resolve",
            dispute_id,
            "--decision",
            "FULL_REFUND",
            "--note",
            secrets_of_the_case["note"],
            "--actor",
            secrets_of_the_case["email"],
        )
        assert resolved.returncode == 0, resolved.stdout + resolved.stderr

        async def closed() -> bool:
            got = (await client.get(f"/orders/{order['id']}", headers=headers)).json()
            return bool(got["status"] == "CLOSED")

        await assert_eventually(closed, timeout=30, message="the refunded order did not close")
    return {"order_id": order["id"], "dispute_id": dispute_id, "secrets": secrets_of_the_case}


async def raw_history(stack: Stack, workflow_id: str) -> WorkflowHistory:
    """The history as Temporal stores it: fetched by a client without the codec."""
    plain = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
    return await plain.get_workflow_handle(workflow_id).fetch_history()


async def test_histories_hold_no_title_metadata_comment_or_email_in_clear(
    stack: Stack, disputed: dict[str, Any]
) -> None:
    stored = ""
    key_ids: list[bytes] = []
    for workflow_id in (disputed["order_id"], disputed["dispute_id"]):
        history = await raw_history(stack, workflow_id)
        stored += stored_text(history)
        key_ids += [p.metadata[KEY_ID] for event in history.events for p in payloads_in(event) if is_encrypted(p)]
    for name, value in disputed["secrets"].items():
        assert value not in stored, f"the {name} is stored in clear"
    # each sealed payload names its key (rotation picks the key by it); the key itself is nowhere
    key = stack.env["TEMPORAL_PAYLOAD_ENCRYPTION_KEY"]
    assert len(key_ids) > 10 and set(key_ids) == {key_id(bytes.fromhex(key)).encode()}
    assert key not in stored
    # what the Temporal UI typed as plain JSON stays as it was sent
    assert "agent-desk" in stored


async def test_history_export_decodes_every_payload(stack: Stack, disputed: dict[str, Any], tmp_path: Path) -> None:
    exported = ""
    for workflow_id in (disputed["order_id"], disputed["dispute_id"]):
        target = tmp_path / f"{workflow_id}.json"
        result = await asyncio.to_thread(
            offerhub, stack.env, "history", "export", workflow_id, "-o", str(target), "--json"
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["decoded_payloads"] > 0
        history = WorkflowHistory.from_json(workflow_id, target.read_text())
        assert not any(is_encrypted(p) for event in history.events for p in payloads_in(event))
        exported += stored_text(history)
    for name, value in disputed["secrets"].items():
        assert value in exported, f"the {name} is not in the decoded export"


async def test_the_codec_server_decodes_for_the_temporal_ui(
    stack: Stack, disputed: dict[str, Any], codec_url: str
) -> None:
    history = await raw_history(stack, disputed["dispute_id"])
    sealed = [p for event in history.events for p in payloads_in(event) if is_encrypted(p)]
    body = {"payloads": [json_format.MessageToDict(p) for p in sealed]}
    async with httpx.AsyncClient(base_url=codec_url, timeout=10) as http:
        headers = {"Origin": UI_ORIGIN, "X-Namespace": "default"}
        decoded = await http.post("/decode", json=body, headers=headers)
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
        payloads = [json_format.ParseDict(p, Payload()) for p in decoded.json()["payloads"]]
        assert len(payloads) == len(sealed) and not any(is_encrypted(p) for p in payloads)
        text = b"".join(p.data for p in payloads).decode()
        assert disputed["secrets"]["comment"] in text and disputed["secrets"]["email"] in text

        # the CLI's templated endpoint (`--codec-endpoint http://…/{namespace}`) and the UI's own Signals
        typed = Payload(metadata={"encoding": b"json/plain"}, data=b'{"assigned_to": "agent-2"}')
        encoded = await http.post("/default/encode", json={"payloads": [json_format.MessageToDict(typed)]})
        [sealed_again] = encoded.json()["payloads"]
        assert base64.b64decode(sealed_again["metadata"]["encoding"]) == ENCODING
        assert KEY_ID in sealed_again["metadata"]
        back = await http.post("/default/decode", json={"payloads": [sealed_again]})
        assert json_format.ParseDict(back.json()["payloads"][0], Payload()) == typed

        # CORS for the UI's origin only; a preflight needs no credential
        preflight = await http.options(
            "/decode",
            headers={
                "Origin": UI_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == UI_ORIGIN
        elsewhere = await http.post("/decode", json=body, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in elsewhere.headers
        assert (await http.post("/decode", content=b"not json")).status_code == 400


async def test_off_loopback_the_codec_server_requires_a_token(stack: Stack) -> None:
    refused = await asyncio.to_thread(offerhub, stack.env, "codec-server", "--host", "0.0.0.0", "--port", "1")
    assert refused.returncode == 2 and "TEMPORAL_CODEC_SERVER_TOKEN" in refused.stderr
    token = secrets.token_urlsafe(32)
    url, server = codec_server(stack, "codec-server-token", {**stack.env, "TEMPORAL_CODEC_SERVER_TOKEN": token})
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert (await http.post("/decode", json={"payloads": []})).status_code == 401
            wrong = await http.post("/decode", json={"payloads": []}, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            right = await http.post("/decode", json={"payloads": []}, headers={"Authorization": f"Bearer {token}"})
            assert right.status_code == 200
    finally:
        stop(stack, server)


async def test_after_a_key_rotation_old_histories_still_decode(
    stack: Stack, disputed: dict[str, Any], tmp_path: Path
) -> None:
    old = stack.env["TEMPORAL_PAYLOAD_ENCRYPTION_KEY"]
    rotated = {**stack.env, "TEMPORAL_PAYLOAD_ENCRYPTION_KEY": secrets.token_hex(32)}
    forgot = await asyncio.to_thread(offerhub, rotated, "history", "export", disputed["dispute_id"])
    assert forgot.returncode == 1 and key_id(bytes.fromhex(old)) in forgot.stderr
    rotated["TEMPORAL_PAYLOAD_ENCRYPTION_PREVIOUS_KEYS"] = f"{secrets.token_hex(32)},{old}"
    target = tmp_path / "rotated.json"
    exported = await asyncio.to_thread(
        offerhub, rotated, "history", "export", disputed["dispute_id"], "-o", str(target)
    )
    assert exported.returncode == 0, exported.stderr
    assert disputed["secrets"]["comment"] in stored_text(WorkflowHistory.from_json("d", target.read_text()))

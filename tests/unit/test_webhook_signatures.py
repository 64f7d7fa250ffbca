"""Inbound webhook signatures: what the sandbox signs verifies; anything else is refused."""

from __future__ import annotations

import base64
import time

import pytest

from models.webhook_signatures import SignatureInvalid, svix_key, verify_svix, verify_trustless_work
from sandbox import webhooks as sandbox_signer
from sandbox.core import DEFAULTS

TW_SECRET = DEFAULTS["SANDBOX_TW_WEBHOOK_SECRET"]
SVIX_SECRET = DEFAULTS["SANDBOX_AIRTM_WEBHOOK_SECRET"]
BODY = b'{"type":"escrow.funded","event_id":"twevt_1","data":{"contract_id":"C1"}}'
NOW = time.time()


def svix(
    body: bytes = BODY,
    *,
    message_id: str | None = "msg_2abc",
    timestamp: str | None = None,
    signature: str | None = None,
    secret: str = SVIX_SECRET,
    now: float = NOW,
) -> None:
    stamp = str(int(NOW)) if timestamp is None else timestamp
    if signature is None:
        signed_at = int(stamp) if stamp.lstrip("-").isdecimal() else int(NOW)
        signature = sandbox_signer.svix_signature(secret, "msg_2abc", signed_at, BODY)
    verify_svix(
        SVIX_SECRET,
        body,
        message_id=message_id,
        timestamp=stamp,
        signature=signature,
        now=now,
        tolerance_seconds=300,
    )


def test_the_sandboxs_trustless_work_signature_verifies() -> None:
    verify_trustless_work(TW_SECRET, BODY, sandbox_signer.tw_signature(TW_SECRET, BODY))


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        sandbox_signer.tw_signature("another-secret", BODY),  # wrong secret
        sandbox_signer.tw_signature(TW_SECRET, BODY + b" "),  # tampered body
        sandbox_signer.tw_signature(TW_SECRET, BODY).upper(),  # not the lower-case hex
        "é" * 64,  # not ASCII (headers arrive decoded as latin-1)
        "\u200b" + sandbox_signer.tw_signature(TW_SECRET, BODY),
    ],
)
def test_a_trustless_work_webhook_without_the_right_signature_is_refused(signature: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        verify_trustless_work(TW_SECRET, BODY, signature)


def test_the_sandboxs_svix_signature_verifies() -> None:
    svix()


def test_one_matching_v1_entry_among_several_suffices() -> None:
    good = sandbox_signer.svix_signature(SVIX_SECRET, "msg_2abc", int(NOW), BODY)
    other = sandbox_signer.svix_signature("whsec_" + base64.b64encode(b"old key").decode(), "msg_2abc", int(NOW), BODY)
    svix(signature=f"{other} v2,{good.removeprefix('v1,')} {good}")
    svix(signature=f"{good}  {other}")
    with pytest.raises(SignatureInvalid):
        svix(signature=f"{other} v2,{good.removeprefix('v1,')}")  # the right value under another version


@pytest.mark.parametrize(
    "case",
    [
        {"secret": "whsec_" + base64.b64encode(b"wrong key").decode()},
        {"body": BODY + b" "},
        {"message_id": "msg_other"},
        {"timestamp": str(int(NOW) - 301)},
        {"timestamp": str(int(NOW) + 301)},
        {"now": NOW + 400},
        {"timestamp": "١٧٠٠٠٠٠٠٠٠"},  # digits, but not ASCII ones
        {"timestamp": "-5"},
        {"timestamp": "1e9"},
        {"signature": "v1,"},
        {"signature": "v1"},
        {"signature": "v1,é"},
        {"message_id": "msg_é"},
        {"message_id": None},
        {"timestamp": ""},
        {"signature": ""},
    ],
)
def test_an_airtm_webhook_without_the_right_svix_signature_is_refused(case: dict[str, object]) -> None:
    with pytest.raises(SignatureInvalid):
        svix(**case)  # type: ignore[arg-type]


def test_a_timestamp_within_the_tolerance_verifies() -> None:
    svix(now=NOW + 299)
    svix(now=NOW - 299)


def test_the_svix_key_is_the_base64_after_whsec() -> None:
    assert svix_key(SVIX_SECRET) == b"offerhub-sandbox-airtm-webhook-key"
    with pytest.raises(ValueError):
        svix_key("whsec_not base64!")

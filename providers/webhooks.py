"""Inbound provider webhook signatures (providers.md §3.8, §4.6), checked on the raw body
before it is parsed; every comparison is constant-time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def verify_trustless_work(secret: str, body: bytes, signature: str | None) -> bool:
    """`X-TW-Signature` = lower-case hex HMAC-SHA256(secret, raw body)."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def verify_svix(
    secret: str,
    body: bytes,
    message_id: str | None,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float,
    tolerance_seconds: int,
) -> bool:
    """Airtm (Svix): base64 HMAC-SHA256 over `<id>.<timestamp>.<body>`, any `v1` entry, fresh timestamp."""
    if not message_id or not timestamp or not signature:
        return False
    try:
        sent_at = int(timestamp)
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except (ValueError, binascii.Error):
        return False
    if abs(now - sent_at) > tolerance_seconds:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in signature.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value):
            return True
    return False
